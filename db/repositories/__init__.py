"""Every SELECT lives here; routes and services never build SQL."""
