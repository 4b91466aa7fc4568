"""What a worker process is configured with (environment variables ``NIRVANA_*``)."""

from __future__ import annotations

import os
import socket

from pydantic import Field, model_validator

from db.settings import StorageSettings


def default_worker_id() -> str:
    """``host:pid``: unique among live workers, and says where to look in the logs."""
    return f"{socket.gethostname()}:{os.getpid()}"


class WorkerSettings(StorageSettings):
    """Settings of one worker; every field reads ``NIRVANA_<FIELD>`` (e.g.
    ``NIRVANA_LEASE_SECONDS``), the database ``DATABASE_URL``.

    ``lease_seconds`` must comfortably exceed ``heartbeat_seconds``: a lease that lapses
    between two heartbeats hands a healthy job to another worker.
    """

    lease_seconds: float = Field(default=60.0, gt=0)
    heartbeat_seconds: float = Field(default=5.0, gt=0)
    poll_seconds: float = Field(default=5.0, gt=0)
    #: ``None``: CUDA when the child sees a GPU, else the CPU.
    device: str | None = None
    #: torch CPU threads of the training child; ``None``: torch's default (all cores).
    threads: int | None = Field(default=None, ge=1)
    worker_id: str = Field(default_factory=default_worker_id)
    #: How long a child has to exit after SIGTERM before it gets SIGKILL.
    kill_grace_seconds: float = Field(default=5.0, ge=0)

    @model_validator(mode="after")
    def _lease_outlives_heartbeats(self) -> WorkerSettings:
        if not self.database_url:
            raise ValueError("DATABASE_URL is empty")
        if self.lease_seconds <= 2 * self.heartbeat_seconds:
            raise ValueError(
                f"lease_seconds ({self.lease_seconds}) must be more than twice "
                f"heartbeat_seconds ({self.heartbeat_seconds})"
            )
        return self
