"""Evaluation and training sets as normalised tensors (quick and full splits), and your own image folders."""
