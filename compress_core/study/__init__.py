"""Many measurements: sweeps, per-layer sensitivity, the results store, the budget solver and the executors that
spread the work."""
