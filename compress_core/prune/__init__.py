"""Pruning: importance criteria, unstructured masks and structured (channel) removal."""
