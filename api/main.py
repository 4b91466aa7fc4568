"""An app built from the environment, for ``uvicorn api.main:app_from_env --factory``."""

from __future__ import annotations

from fastapi import FastAPI

from api.app import create_app
from api.settings import ApiSettings


def app_from_env() -> FastAPI:
    """``create_app`` with ``ApiSettings`` read from the environment (``DATABASE_URL``,
    ``NIRVANA_BLOB_DIR``, ...)."""
    return create_app(ApiSettings())  # type: ignore[call-arg]
