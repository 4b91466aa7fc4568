"""Architectures (the zoo, named OpenLTH-style) and their initialisation."""
