"""The Workbench: one loaded model with its caches, Recipe in and eager Result out; per-layer views;
saved artefacts measured alike."""
