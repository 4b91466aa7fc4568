"""What a worker process is configured with (environment variables ``NIRVANA_*``)."""

from __future__ import annotations

import os
import socket
from typing import Literal

from pydantic import Field, model_validator

from db.settings import StorageSettings
from worker.reaper import DEFAULT_INTERVAL as REAP_SECONDS


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
    #: Seconds between two passes of the reaper thread (jobs of dead workers go back).
    reap_seconds: float = Field(default=REAP_SECONDS, gt=0)
    #: ``None``: CUDA when the child sees a GPU, else the CPU.
    device: str | None = None
    #: torch CPU threads of the training child; ``None``: torch's default (all cores).
    threads: int | None = Field(default=None, ge=1)
    worker_id: str = Field(default_factory=default_worker_id)
    #: Train a verification's runs together (``auto``: when faster on this device and
    #: architecture; ``on``/``off`` force it); see ``nirvana.lottery.training.execution``.
    verify_batch: Literal["auto", "on", "off"] = "auto"
    #: At most this many runs in one batch (``None``: as many as the device's memory fits).
    verify_max_batch: int | None = Field(default=None, ge=1)
    #: ``torch.compile`` the training step on CUDA (pays on long recipes only).
    verify_compile: bool = False
    #: How long a child has to exit after SIGTERM before it gets SIGKILL.
    kill_grace_seconds: float = Field(default=5.0, ge=0)
    #: Replicates per arm of a verification (``NIRVANA_VERIFY_REPLICATES``).
    verify_replicates: int = Field(default=3, ge=1, le=20)

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
