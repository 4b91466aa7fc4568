"""Real worker processes against a real, committed PostgreSQL: end to end, cancel,
crashes of the training child, user errors, and shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy.orm import Session, sessionmaker

from db import queue
from db.blobs import LocalBlobStorage
from db.models.tickets import Ticket
from db.session import unit_of_work
from tests.factories.tickets import store_queued
from tests.worker.support import HEARTBEAT, Workers, alive, job_row, queue_job
from tests.support.polling import until
from worker.child import DEFAULT_ENTRY
from worker.main import run_worker
from worker.settings import WorkerSettings

def test_python_m_worker_verifies_a_ticket_end_to_end(
    fresh_database_url: str, factory: sessionmaker[Session], storage: LocalBlobStorage
) -> None:
    vid = queue_job(factory, storage)
    env = {
        **os.environ,
        "DATABASE_URL": fresh_database_url,
        "NIRVANA_BLOB_DIR": str(storage.root),
        "NIRVANA_DEVICE": "cpu",
        "NIRVANA_THREADS": "1",
        "NIRVANA_POLL_SECONDS": "0.5",
        "NIRVANA_HEARTBEAT_SECONDS": "0.5",
        "NIRVANA_VERIFY_REPLICATES": "1",
    }
    process = subprocess.Popen([sys.executable, "-m", "worker"], env=env)
    try:
        until(lambda: job_row(factory, vid).finished, 60, "the verification to finish")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    job = job_row(factory, vid)
    assert (job.state, job.attempts, job.error, job.progress) == ("succeeded", 1, None, 1.0)
    assert job.result is not None
    assert set(job.result["arms"]) == {"ticket", "reinit", "random_mask", "dense"}
    assert job.result["replicates"] == 1 and job.result["single_replicate"] is True
    assert job.result["task"] == "digits" and job.result["device"] == "cpu"
    with factory() as session:
        ticket = session.get(Ticket, job.ticket_id)
        assert ticket is not None
    accuracy = job.result["arms"]["ticket"]["early_stop_test_accuracy"]["mean"]
    assert (ticket.verified, ticket.verdict) == (job.result["reproduced"], job.result["verdict"])
    assert ticket.winning == (job.result["verdict"] == "winning")
    assert ticket.verified_accuracy == ticket.accuracy == accuracy


def test_cancel_stops_the_child_within_a_heartbeat(
    factory: sessionmaker[Session], storage: LocalBlobStorage, workers: Workers
) -> None:
    vid = queue_job(factory, storage)
    workers.start()
    [pid] = until(lambda: workers.child_pids(vid), 30, "the child to start")
    until(lambda: job_row(factory, vid).progress > 0, 10, "progress to be recorded")
    with unit_of_work(factory) as session:
        queue.request_cancel(session, vid)
    asked = time.monotonic()
    until(lambda: job_row(factory, vid).state == "cancelled", 5, "the job to be cancelled")
    # One heartbeat to notice, plus the child's SIGTERM and the database round trips.
    assert time.monotonic() - asked < HEARTBEAT + 1.5
    assert not alive(pid)
    assert job_row(factory, vid).attempts == 1


def test_a_killed_child_is_retried_then_failed(
    factory: sessionmaker[Session], storage: LocalBlobStorage, workers: Workers
) -> None:
    vid = queue_job(factory, storage, max_attempts=2)
    workers.start()
    killed: set[int] = set()
    for attempt in (1, 2):
        [pid] = until(lambda: set(workers.child_pids(vid)) - killed, 30, f"child of attempt {attempt}")
        os.kill(pid, signal.SIGKILL)
        killed.add(pid)
    until(lambda: job_row(factory, vid).finished, 10, "the job to fail")
    job = job_row(factory, vid)
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
    until(lambda: job_row(factory, vid).finished, 40, "the job to fail")
    job = job_row(factory, vid)
    assert (job.state, job.attempts) == ("failed", 2)
    assert job.error is not None and "BlobNotFoundError" in job.error and ticket.mask_sha256 in job.error


def test_a_ticket_that_does_not_fit_the_task_fails_without_retry(
    factory: sessionmaker[Session], storage: LocalBlobStorage, workers: Workers
) -> None:
    # A transfer evaluation on mnist1d (40 inputs) of a mask made for digits (64).
    vid = queue_job(factory, storage, task="mnist1d")
    workers.start(entry=DEFAULT_ENTRY)
    until(lambda: job_row(factory, vid).finished, 40, "the job to fail")
    job = job_row(factory, vid)
    assert (job.state, job.attempts) == ("failed", 1)
    assert job.error is not None and "shape" in job.error


def test_sigterm_stops_the_child_and_hands_the_job_back(
    factory: sessionmaker[Session], storage: LocalBlobStorage, workers: Workers
) -> None:
    vid = queue_job(factory, storage)
    process = workers.start()
    [pid] = until(lambda: workers.child_pids(vid), 30, "the child to start")
    assert process.pid is not None
    os.kill(process.pid, signal.SIGTERM)
    process.join(timeout=10)
    assert process.exitcode == 0
    assert not alive(pid)
    job = job_row(factory, vid)
    assert (job.state, job.attempts, job.lease_token) == ("queued", 0, None)


def test_the_child_dies_with_a_killed_worker_and_the_job_is_reaped(
    factory: sessionmaker[Session], storage: LocalBlobStorage, workers: Workers
) -> None:
    vid = queue_job(factory, storage)
    process = workers.start(lease_seconds=1.0, heartbeat_seconds=0.2)
    [pid] = until(lambda: workers.child_pids(vid), 30, "the child to start")
    assert process.pid is not None
    os.kill(process.pid, signal.SIGKILL)
    until(lambda: not alive(pid), 5, "the orphaned child to die")
    # A second worker reaps the lapsed lease and runs the job again.
    workers.start()
    until(lambda: len(workers.child_pids(vid)) == 2, 30, "the job to be claimed again")
    assert job_row(factory, vid).attempts == 2


def test_once_returns_when_the_queue_is_empty(fresh_database_url: str, storage: LocalBlobStorage) -> None:
    settings = WorkerSettings(database_url=fresh_database_url, blob_dir=storage.root, poll_seconds=30)
    started = time.monotonic()
    run_worker(settings, once=True)
    assert time.monotonic() - started < 5


def test_a_lease_shorter_than_two_heartbeats_is_refused(fresh_database_url: str) -> None:
    with pytest.raises(ValueError, match="twice"):
        WorkerSettings(database_url=fresh_database_url, lease_seconds=5, heartbeat_seconds=5)
