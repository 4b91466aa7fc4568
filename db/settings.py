"""Settings every process kind shares: where the database and the blobs are."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from db.blobs import BlobConfig
from nirvana.paths import default_home


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

    # Seconds. A request gives up on the database after these, answering 503 (the API)
    # or retrying (the worker); see db/session.py and db/liveness.py.
    db_connect_timeout: int = Field(default=2, ge=2)  # libpq's minimum
    db_statement_timeout: float | None = Field(default=5.0, gt=0)
    db_pool_timeout: float = Field(default=1.0, gt=0)
    # How long the postmaster may take to answer a liveness probe; 0: no probes.
    db_probe_timeout: float = Field(default=0.75, ge=0)

    # "s3": an S3-compatible bucket instead of files (needs the ``s3`` extra).
    blob_backend: Literal["local", "s3"] = "local"
    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str | None = None

    #: Task data (``mnist``, ``cifar10``); None: ``$NIRVANA_HOME/data``, where ``nirvana
    #: data fetch`` puts it. The tasks look there, then in the system's folders.
    data_dir: Path | None = None

    @property
    def task_data_dir(self) -> Path:
        return self.data_dir if self.data_dir is not None else self.home / "data"

    @property
    def blob_root(self) -> Path:
        return self.blob_dir if self.blob_dir is not None else self.home / "blobs"

    @property
    def blob_config(self) -> BlobConfig:
        """What ``db.blobs.make_storage`` needs, as plain values."""
        return BlobConfig(
            backend=self.blob_backend,
            root=self.blob_root,
            bucket=self.s3_bucket,
            prefix=self.s3_prefix,
            endpoint_url=self.s3_endpoint_url,
            region=self.s3_region,
        )
