"""The bottom layer: plain records, the Recipe, threads, paired timing, lanes, paths and the machine's
description (torch and nothing of ours)."""
