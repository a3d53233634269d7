"""The bottom layer: plain records, the Recipe, measurement settings, threads, paired timing, lanes, paths and
the machine's description (torch and nothing of ours)."""
