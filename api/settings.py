"""Settings of the HTTP service, validated once at startup."""

from __future__ import annotations

from ipaddress import ip_network
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from api.callers import ProxyNetwork
from db.settings import StorageSettings
from nirvana.lottery.training.recipes import MAX_EXAMPLES


class ApiSettings(StorageSettings):
    """What ``create_app`` needs. Environment variables carry the ``NIRVANA_`` prefix
    (``NIRVANA_MAX_UPLOAD_BYTES``), except ``DATABASE_URL``."""

    # Whole request bodies above this are refused with 413 before they are read.
    max_upload_bytes: int = 256 * 1024 * 1024
    # Compute bound on one verification run; bigger recipes are refused at upload.
    max_steps: int = 100_000
    # ... and on steps x batch size, the examples it trains on (what its time grows with).
    max_examples: int = MAX_EXAMPLES
    # Uploads validated at once per API process, on threads of their own; more wait
    # their turn without holding a thread that serves requests.
    validation_threads: int = 2
    # Requests a minute per client (token, else address); 0: no limit.
    rate_limit_api_per_minute: int = 1200
    rate_limit_downloads_per_minute: int = 600
    # Where the counters live: "memory" (this process only), "postgres" (every API
    # process on the database) or "redis"; NIRVANA_REDIS_URL set means "redis".
    rate_limit_store: Literal["memory", "postgres", "redis"] = "memory"
    redis_url: str | None = None
    # Names the counters in the shared store, so several deployments can share one.
    rate_limit_prefix: str = "nirvana"
    # Proxies whose X-Forwarded-For names the client (addresses or CIDR networks,
    # comma-separated: NIRVANA_TRUSTED_PROXIES="10.0.0.2,fd00::/8"); empty: none.
    trusted_proxies: Annotated[list[ProxyNetwork], NoDecode] = []
    # Requests served at once per API process; more are answered 503 with Retry-After.
    max_in_flight: int = 100
    # Database connections per API process: all kept open (no churn), none beyond.
    db_pool_size: int = 10
    # Test each pooled connection before use (one round trip a request); off, a dead
    # connection fails one request and the pool is renewed.
    db_pre_ping: bool = False
    # Downloads handed to nginx: the API checks, then answers X-Accel-Redirect to this
    # internal location plus the blob's key (``/_blobs/`` with deploy/nginx.conf).
    accel_redirect_prefix: str | None = None
    # Downloads redirected (307) to this URL plus the blob's key: a bucket or a CDN.
    blob_url_base: str | None = None
    # Memory for answers to anonymous reads, kept until the database changes
    # (``api.readcache``); 0: every read runs its query.
    read_cache_mb: int = Field(default=64, ge=0)
    # Memory for mask and init files (immutable, so never stale), each file at most an
    # eighth of it; 0: every download reads storage.
    blob_memory_mb: int = Field(default=256, ge=0)
    # Where clients reach this server (https://nirvana.example); absolute links in
    # responses start with it. Unset: links are relative, never built from ``Host``.
    public_url: str | None = None

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [ip_network(part.strip()) for part in value.split(",") if part.strip()]
        return value
