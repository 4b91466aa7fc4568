"""Settings every process kind shares: where the database and the blobs are."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    """``NIRVANA_HOME``, else the user's data directory (``~/.local/share/nirvana``)."""
    env = os.environ.get("NIRVANA_HOME")
    return Path(env) if env else Path(platformdirs.user_data_dir("nirvana"))


def normalise_database_url(url: str) -> str:
    """Make a plain ``postgresql://`` or ``postgres://`` URL use the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class StorageSettings(BaseSettings):
    """Database and blob storage: the fields the API, the worker and the CLI share."""

    model_config = SettingsConfigDict(env_prefix="NIRVANA_", extra="ignore", populate_by_name=True)

    database_url: str = Field(validation_alias=AliasChoices("DATABASE_URL", "NIRVANA_DATABASE_URL"))
    home: Path = default_home()
    blob_dir: Path | None = None

    @field_validator("database_url")
    @classmethod
    def _use_psycopg(cls, value: str) -> str:
        return normalise_database_url(value)

    @property
    def blob_root(self) -> Path:
        return self.blob_dir if self.blob_dir is not None else self.home / "blobs"
