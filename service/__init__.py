"""The service on top of the library: the all-in-one ``nirvana serve`` (embedded
PostgreSQL, API, workers) and the commands that touch the database directly.

Run from the repository, never installed with the library."""
