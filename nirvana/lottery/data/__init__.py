"""Tasks: data sets with fixed splits, read from local files or generated."""
