"""The command line (python -m compress_core, prunescope): models, evaluate, sweep, train, solve."""
