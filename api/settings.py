"""Settings of the HTTP service, validated once at startup."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from db.settings import StorageSettings


class ApiSettings(StorageSettings):
    """What ``create_app`` needs. Environment variables carry the ``NIRVANA_`` prefix
    (``NIRVANA_MAX_UPLOAD_BYTES``), except ``DATABASE_URL``."""

    # Whole request bodies above this are refused with 413 before they are read.
    max_upload_bytes: int = 256 * 1024 * 1024
    # Compute bound on one verification run; bigger recipes are refused at upload.
    max_steps: int = 100_000
    # Requests a minute per client (token, else address); 0: no limit.
    rate_limit_api_per_minute: int = 1200
    rate_limit_downloads_per_minute: int = 600
    # Where the counters live: "memory" (this process only), "postgres" (every API
    # process on the database) or "redis"; NIRVANA_REDIS_URL set means "redis".
    rate_limit_store: Literal["memory", "postgres", "redis"] = "memory"
    redis_url: str | None = None
    # Names the counters in the shared store, so several deployments can share one.
    rate_limit_prefix: str = "nirvana"
    # Requests served at once per API process; more are answered 503 with Retry-After.
    max_in_flight: int = 100
    # Database connections per API process: all kept open (no churn), none beyond.
    db_pool_size: int = 10
    # Seconds a request may wait for a connection before it is answered 503.
    db_pool_timeout: float = 10.0
    # Test each pooled connection before use (one round trip a request); off, a dead
    # connection fails one request and the pool is renewed.
    db_pre_ping: bool = False
    # Downloads handed to nginx: the API checks, then answers X-Accel-Redirect to this
    # internal location plus the blob's key (``/_blobs/`` with deploy/nginx.conf).
    accel_redirect_prefix: str | None = None
    # Downloads redirected (307) to this URL plus the blob's key: a bucket or a CDN.
    blob_url_base: str | None = None
    data_dir: Path | None = None
    public_url: str | None = None
