"""What the worker tests share: starting real worker processes, queueing jobs."""

from __future__ import annotations

import multiprocessing
import uuid
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db.blobs import LocalBlobStorage
from db.models.verifications import Verification
from db.session import unit_of_work
from tests.factories.tickets import store_queued
from tests.worker.entries import serve

SPIN = "tests.worker.entries:spin"
HEARTBEAT = 0.2


def queue_job(factory: sessionmaker[Session], storage: LocalBlobStorage, **kwargs: Any) -> uuid.UUID:
    with unit_of_work(factory) as session:
        _, job = store_queued(session, storage, **kwargs)
        return job.id


def job_row(factory: sessionmaker[Session], vid: uuid.UUID) -> Verification:
    with factory() as session:
        row = session.get(Verification, vid)
        assert row is not None
        return row


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


class Workers:
    """Starts ``run_worker`` processes (spawned) and cleans up after the test."""

    def __init__(self, url: str, blob_root: Path, pid_dir: Path) -> None:
        self.url, self.blob_root, self.pid_dir = url, blob_root, pid_dir
        self.started: list[BaseProcess] = []

    def start(self, entry: str = SPIN, **overrides: Any) -> BaseProcess:
        settings = {
            "database_url": self.url,
            "blob_dir": str(self.blob_root),
            "device": "cpu",
            "threads": 1,
            "heartbeat_seconds": HEARTBEAT,
            "lease_seconds": 10.0,
            "poll_seconds": 0.5,
            "kill_grace_seconds": 1.0,
            **overrides,
        }
        ctx = multiprocessing.get_context("spawn")
        process = ctx.Process(target=serve, args=(settings, entry, str(self.pid_dir)))
        process.start()
        self.started.append(process)
        return process

    def child_pids(self, vid: uuid.UUID) -> list[int]:
        return [int(p.name.rsplit("-", 1)[1]) for p in self.pid_dir.glob(f"{vid}-*")]

    def stop_all(self) -> None:
        for process in self.started:
            if process.is_alive():
                process.terminate()
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
