"""Settings of the HTTP service, validated once at startup."""

from __future__ import annotations

from pathlib import Path

from db.settings import StorageSettings


class ApiSettings(StorageSettings):
    """What ``create_app`` needs. Environment variables carry the ``NIRVANA_`` prefix
    (``NIRVANA_MAX_UPLOAD_BYTES``), except ``DATABASE_URL``."""

    # Whole request bodies above this are refused with 413 before they are read.
    max_upload_bytes: int = 256 * 1024 * 1024
    # Compute bound on one verification run; bigger recipes are refused at upload.
    max_steps: int = 100_000
    # Requests a minute per client (token, else address), per API process; 0: no limit.
    rate_limit_api_per_minute: int = 1200
    rate_limit_downloads_per_minute: int = 600
    data_dir: Path | None = None
    public_url: str | None = None
