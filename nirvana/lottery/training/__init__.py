"""Training recipes and the training loop."""
