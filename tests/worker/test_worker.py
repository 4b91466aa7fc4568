"""Real worker processes against a real, committed PostgreSQL: end to end, cancel,
crashes of the training child, user errors, and shutdown."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from db import queue
from db.blobs import LocalBlobStorage
from db.models.tickets import Ticket
from db.models.verifications import Verification
from db.session import make_engine, make_sessionmaker, unit_of_work
from tests.factories.tickets import store_queued
from tests.worker.entries import serve
from worker.child import DEFAULT_ENTRY
from worker.main import run_worker
from worker.settings import WorkerSettings

SPIN = "tests.worker.entries:spin"
HEARTBEAT = 0.2


@pytest.fixture
def engine(fresh_database_url: str) -> Iterator[Engine]:
    engine = make_engine(fresh_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def storage(tmp_path: Path) -> LocalBlobStorage:
    return LocalBlobStorage(tmp_path / "blobs")


def _queue_job(factory: sessionmaker[Session], storage: LocalBlobStorage, **kwargs: Any) -> uuid.UUID:
    with unit_of_work(factory) as session:
        _, job = store_queued(session, storage, **kwargs)
        return job.id


def _job(factory: sessionmaker[Session], vid: uuid.UUID) -> Verification:
    with factory() as session:
        row = session.get(Verification, vid)
        assert row is not None
        return row


def _until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _alive(pid: int) -> bool:
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


@pytest.fixture
def workers(fresh_database_url: str, storage: LocalBlobStorage, tmp_path: Path) -> Iterator[Workers]:
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    started = Workers(fresh_database_url, storage.root, pid_dir)
    yield started
    started.stop_all()


def test_python_m_worker_verifies_a_ticket_end_to_end(
    fresh_database_url: str, factory: sessionmaker[Session], storage: LocalBlobStorage
) -> None:
    vid = _queue_job(factory, storage)
    env = {
        **os.environ,
        "DATABASE_URL": fresh_database_url,
        "NIRVANA_BLOB_DIR": str(storage.root),
        "NIRVANA_DEVICE": "cpu",
        "NIRVANA_THREADS": "1",
        "NIRVANA_POLL_SECONDS": "0.5",
        "NIRVANA_HEARTBEAT_SECONDS": "0.5",
    }
    process = subprocess.Popen([sys.executable, "-m", "worker"], env=env)
    try:
        _until(lambda: _job(factory, vid).finished, 60, "the verification to finish")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    job = _job(factory, vid)
    assert (job.state, job.attempts, job.error, job.progress) == ("succeeded", 1, None, 1.0)
    assert job.result is not None
    assert set(job.result["runs"]) == {"ticket", "reinit", "random_mask", "dense"}
    assert job.result["task"] == "digits" and job.result["device"] == "cpu"
    with factory() as session:
        ticket = session.get(Ticket, job.ticket_id)
        assert ticket is not None
    accuracy = job.result["runs"]["ticket"]["test_accuracy"]
    assert (ticket.verified, ticket.winning) == (job.result["reproduced"], job.result["winning"])
    assert ticket.verified_accuracy == ticket.accuracy == accuracy


def test_cancel_stops_the_child_within_a_heartbeat(
    factory: sessionmaker[Session], storage: LocalBlobStorage, workers: Workers
) -> None:
    vid = _queue_job(factory, storage)
    workers.start()
    [pid] = _until(lambda: workers.child_pids(vid), 30, "the child to start")
    _until(lambda: _job(factory, vid).progress > 0, 10, "progress to be recorded")
    with unit_of_work(factory) as session:
        queue.request_cancel(session, vid)
    asked = time.monotonic()
    _until(lambda: _job(factory, vid).state == "cancelled", 5, "the job to be cancelled")
    # One heartbeat to notice, plus the child's SIGTERM and the database round trips.
    assert time.monotonic() - asked < HEARTBEAT + 1.5
    assert not _alive(pid)
    assert _job(factory, vid).attempts == 1


def test_a_killed_child_is_retried_then_failed(
    factory: sessionmaker[Session], storage: LocalBlobStorage, workers: Workers
) -> None:
    vid = _queue_job(factory, storage, max_attempts=2)
    workers.start()
    killed: set[int] = set()
    for attempt in (1, 2):
        [pid] = _until(lambda: set(workers.child_pids(vid)) - killed, 30, f"child of attempt {attempt}")
        os.kill(pid, signal.SIGKILL)
        killed.add(pid)
    _until(lambda: _job(factory, vid).finished, 10, "the job to fail")
    job = _job(factory, vid)
    assert (job.state, job.attempts) == ("failed", 2)
    assert job.error == "gave up after 2 attempts; last: the training process was killed by SIGKILL"


def test_a_missing_blob_is_retried_then_failed(
    factory: sessionmaker[Session], storage: LocalBlobStorage, workers: Workers
) -> None:
    with unit_of_work(factory) as session:
        ticket, job = store_queued(session, storage, max_attempts=2)
        vid = job.id
    storage.delete(ticket.mask_sha256)
    workers.start(entry=DEFAULT_ENTRY)
    _until(lambda: _job(factory, vid).finished, 40, "the job to fail")
    job = _job(factory, vid)
    assert (job.state, job.attempts) == ("failed", 2)
    assert job.error is not None and "BlobNotFoundError" in job.error and ticket.mask_sha256 in job.error


def test_a_ticket_that_does_not_fit_the_task_fails_without_retry(
    factory: sessionmaker[Session], storage: LocalBlobStorage, workers: Workers
) -> None:
    # A transfer evaluation on mnist1d (40 inputs) of a mask made for digits (64).
    vid = _queue_job(factory, storage, task="mnist1d")
    workers.start(entry=DEFAULT_ENTRY)
    _until(lambda: _job(factory, vid).finished, 40, "the job to fail")
    job = _job(factory, vid)
    assert (job.state, job.attempts) == ("failed", 1)
    assert job.error is not None and "shape" in job.error


def test_sigterm_stops_the_child_and_hands_the_job_back(
    factory: sessionmaker[Session], storage: LocalBlobStorage, workers: Workers
) -> None:
    vid = _queue_job(factory, storage)
    process = workers.start()
    [pid] = _until(lambda: workers.child_pids(vid), 30, "the child to start")
    assert process.pid is not None
    os.kill(process.pid, signal.SIGTERM)
    process.join(timeout=10)
    assert process.exitcode == 0
    assert not _alive(pid)
    job = _job(factory, vid)
    assert (job.state, job.attempts, job.lease_token) == ("queued", 0, None)


def test_the_child_dies_with_a_killed_worker_and_the_job_is_reaped(
    factory: sessionmaker[Session], storage: LocalBlobStorage, workers: Workers
) -> None:
    vid = _queue_job(factory, storage)
    process = workers.start(lease_seconds=1.0, heartbeat_seconds=0.2)
    [pid] = _until(lambda: workers.child_pids(vid), 30, "the child to start")
    assert process.pid is not None
    os.kill(process.pid, signal.SIGKILL)
    _until(lambda: not _alive(pid), 5, "the orphaned child to die")
    # A second worker reaps the lapsed lease and runs the job again.
    workers.start()
    _until(lambda: len(workers.child_pids(vid)) == 2, 30, "the job to be claimed again")
    assert _job(factory, vid).attempts == 2


def test_once_returns_when_the_queue_is_empty(fresh_database_url: str, storage: LocalBlobStorage) -> None:
    settings = WorkerSettings(database_url=fresh_database_url, blob_dir=storage.root, poll_seconds=30)
    started = time.monotonic()
    run_worker(settings, once=True)
    assert time.monotonic() - started < 5


def test_a_lease_shorter_than_two_heartbeats_is_refused(fresh_database_url: str) -> None:
    with pytest.raises(ValueError, match="twice"):
        WorkerSettings(database_url=fresh_database_url, lease_seconds=5, heartbeat_seconds=5)
