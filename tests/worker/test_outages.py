"""Workers through database outages and dead peers: a result that ends during a
PostgreSQL restart is kept and written once the database is back (while the lease
lasts, and never after); a dead worker's job is reaped on a timer while every living
worker is busy, and by ``nirvana serve``'s reaper with no worker at all.

The outage tests run real worker processes against a PostgreSQL cluster of their own
(``tests/support/cluster.py``), which they stop and start.
"""

from __future__ import annotations

import multiprocessing
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
from db.migrate import upgrade
from db.models.verifications import Verification
from db.session import make_engine, make_sessionmaker, unit_of_work
from service.serve import reaping
from tests.factories.tickets import store_queued
from tests.support import cluster as pg_cluster
from tests.support import postgres
from tests.worker.entries import TOLD_RESULT, serve

TOLD = "tests.worker.entries:finish_when_told"
SPIN = "tests.worker.entries:spin"

needs_cluster = pytest.mark.skipif(not pg_cluster.available(), reason="needs PostgreSQL 15's initdb and pg_ctl")


def _until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception:  # the database restarting under the test's own reads
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Stack:
    """A database, blob storage and spawned worker processes for one test."""

    def __init__(self, database_url: str, tmp_path: Path) -> None:
        self.url = database_url
        self.storage = LocalBlobStorage(tmp_path / "blobs")
        self.pid_dir = tmp_path / "pids"
        self.pid_dir.mkdir()
        self.engine: Engine = make_engine(database_url)
        self.factory: sessionmaker[Session] = make_sessionmaker(self.engine)
        self.processes: list[BaseProcess] = []

    def queue_job(self, **ticket: Any) -> uuid.UUID:
        with unit_of_work(self.factory) as session:
            _, job = store_queued(session, self.storage, **ticket)
            return job.id

    def job(self, vid: uuid.UUID) -> Verification:
        with self.factory() as session:
            row = session.get(Verification, vid)
            assert row is not None
            return row

    def start_worker(self, entry: str, **overrides: Any) -> None:
        settings = {
            "database_url": self.url, "blob_dir": str(self.storage.root), "device": "cpu", "threads": 1,
            "heartbeat_seconds": 0.2, "lease_seconds": 30.0, "poll_seconds": 0.5, "kill_grace_seconds": 1.0,
            **overrides,
        }  # fmt: skip
        process = multiprocessing.get_context("spawn").Process(target=serve, args=(settings, entry, str(self.pid_dir)))
        process.start()
        self.processes.append(process)

    def child_started(self, vid: uuid.UUID) -> bool:
        return any(self.pid_dir.glob(f"{vid}-*"))

    def children(self, vid: uuid.UUID) -> int:
        return len(list(self.pid_dir.glob(f"{vid}-*")))

    def tell_children_to_finish(self) -> None:
        (self.pid_dir / "go").touch()

    def close(self) -> None:
        for process in self.processes:
            process.terminate()
            process.join(timeout=15)
            if process.is_alive():
                process.kill()
                process.join()
        self.engine.dispose()


def _migrated(server_url: str) -> str:
    url = postgres.create_database(server_url, "nirvana_worker_outage")
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def own_cluster() -> Iterator[pg_cluster.Cluster]:
    with pg_cluster.running_cluster() as cluster:
        yield cluster


@pytest.fixture
def on_own_cluster(own_cluster: pg_cluster.Cluster, tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(_migrated(own_cluster.url), tmp_path)
    yield stack
    stack.close()


@pytest.fixture
def on_shared_server(fresh_database_url: str, tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(fresh_database_url, tmp_path)
    yield stack
    stack.close()


@needs_cluster
def test_a_result_that_ends_during_a_database_restart_is_kept_and_written_when_it_is_back(
    own_cluster: pg_cluster.Cluster, on_own_cluster: Stack
) -> None:
    stack = on_own_cluster
    vid = stack.queue_job()
    stack.start_worker(TOLD, lease_seconds=60.0)
    _until(lambda: stack.child_started(vid), 60, "the child to start")
    own_cluster.stop()
    stack.tell_children_to_finish()
    time.sleep(3)  # the worker tries to record the result and backs off meanwhile
    own_cluster.start()
    _until(lambda: stack.job(vid).finished, 60, "the result to be recorded")
    job = stack.job(vid)
    assert (job.state, job.attempts, job.result) == ("succeeded", 1, TOLD_RESULT)
    assert stack.children(vid) == 1  # trained once: nothing thrown away


@needs_cluster
def test_a_result_whose_lease_lapsed_during_the_outage_is_not_written(
    own_cluster: pg_cluster.Cluster, on_own_cluster: Stack
) -> None:
    stack = on_own_cluster
    vid = stack.queue_job()
    # The lease outlasts a reported child's exit (kill_grace_seconds), when no heartbeat runs.
    stack.start_worker(TOLD, lease_seconds=3.0, heartbeat_seconds=0.5, reap_seconds=0.2)
    _until(lambda: stack.child_started(vid), 60, "the child to start")
    own_cluster.stop()
    stack.tell_children_to_finish()
    time.sleep(8)  # well past the lease: the worker gives up on its result
    own_cluster.start()
    # The lapsed job is reaped and run again; only the second run's result is written.
    _until(lambda: stack.job(vid).finished, 60, "the job to run again and finish")
    job = stack.job(vid)
    # Attempt 2 is the rerun: the first result was never written. (Both runs may share
    # one process: the worker keeps its training child warm across jobs.)
    assert (job.state, job.attempts) == ("succeeded", 2)


def test_a_dead_workers_job_is_reaped_while_every_worker_is_busy(on_shared_server: Stack) -> None:
    stack = on_shared_server
    busy = stack.queue_job()
    stack.start_worker(SPIN, reap_seconds=0.2)
    _until(lambda: stack.child_started(busy), 60, "the living worker to be busy")
    orphan = stack.queue_job(seed=1)
    with unit_of_work(stack.factory) as session:
        claim = queue.claim_next(session, worker_id="dead:1", lease_seconds=0.5)
    assert claim is not None and claim.verification_id == orphan
    # The only living worker spins on its job forever and never goes idle to claim.
    _until(lambda: stack.job(orphan).state == "queued", 30, "the dead worker's job to be reaped")
    job = stack.job(orphan)
    assert job.lease_token is None and "dead:1" in (job.error or "")
    assert stack.job(busy).state == "running"


def test_the_serve_reaper_takes_back_a_lapsed_job_with_no_worker_running(on_shared_server: Stack) -> None:
    stack = on_shared_server
    vid = stack.queue_job()
    with unit_of_work(stack.factory) as session:
        assert queue.claim_next(session, worker_id="dead:2", lease_seconds=0.3) is not None
    with reaping(stack.url):
        _until(lambda: stack.job(vid).state == "queued", 30, "the lapsed job to be reaped")
    assert stack.job(vid).attempts == 1
