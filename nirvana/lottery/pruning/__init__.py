"""Masks and the pruning strategies that make them, iterative magnitude pruning included."""
