"""Persistence: SQLAlchemy 2 models, sessions, repositories, blob storage and the job
queue. Imports neither torch nor FastAPI."""
