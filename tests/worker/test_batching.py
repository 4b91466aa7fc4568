"""The worker's warm child and batched verification, with real worker processes
against a real PostgreSQL: batching forced on gives the verdict and accuracies of
batching forced off; one child serves job after job and dies with its worker; cancel
stops a child in the middle of a batch within a heartbeat."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db import queue
from db.blobs import LocalBlobStorage
from db.queue import enqueue_verification
from db.session import unit_of_work
from tests.factories.tickets import TINY_RECIPE, store_queued
from tests.worker.support import HEARTBEAT, Workers, alive, job_row
from tests.support.polling import until
from worker.child import DEFAULT_ENTRY
from worker.main import run_worker
from worker.settings import WorkerSettings

REPORT_PID = "tests.worker.entries:report_pid"


def _settings(url: str, storage: LocalBlobStorage, **overrides: Any) -> WorkerSettings:
    return WorkerSettings(database_url=url, blob_dir=storage.root, device="cpu", threads=1,
                          poll_seconds=0.5, **overrides)


def _requeue(factory: sessionmaker[Session], vid: uuid.UUID) -> uuid.UUID:
    """A second verification of the same ticket, task, recipe and claim."""
    first = job_row(factory, vid)
    with unit_of_work(factory) as session:
        job = enqueue_verification(session, ticket_id=first.ticket_id, task=first.task, recipe=first.recipe,
                                   claimed_accuracy=first.claimed_accuracy)
        return job.id


def test_batching_on_gives_the_verdict_and_accuracies_of_batching_off(
    fresh_database_url: str, factory: sessionmaker[Session], storage: LocalBlobStorage
) -> None:
    with unit_of_work(factory) as session:
        _, job = store_queued(session, storage, recipe={**TINY_RECIPE, "steps": 30})
        on = job.id
    run_worker(_settings(fresh_database_url, storage, verify_batch="on"), once=True)
    off = _requeue(factory, on)
    run_worker(_settings(fresh_database_url, storage, verify_batch="off"), once=True)
    a, b = job_row(factory, on), job_row(factory, off)
    assert (a.state, b.state) == ("succeeded", "succeeded")
    assert a.result is not None and b.result is not None
    assert (a.result["execution"]["batched"], b.result["execution"]["batched"]) == (True, False)
    n = 4 * a.result["replicates"]
    assert a.result["execution"]["batches"] == [n] and b.result["execution"]["batches"] == [1] * n
    assert (a.result["verdict"], a.result["reproduced"]) == (b.result["verdict"], b.result["reproduced"])
    for name, arm in a.result["arms"].items():
        for run, other in zip(arm["replicates"], b.result["arms"][name]["replicates"], strict=True):
            # Float-tolerance weights: the same accuracies but for an input on the boundary.
            for key in ("test_accuracy", "accuracy_at_init"):
                assert abs(run[key] - other[key]) <= 1 / 360
            assert abs(run["early_stop"]["test_accuracy"] - other["early_stop"]["test_accuracy"]) <= 1 / 360
            assert [s for s, _ in run["curve"]] == [s for s, _ in other["curve"]]
    # The barrier follows the batching (its 11 points together, or one at a time): the
    # same figure, but for a boundary input in its peak and one in its ends' mean.
    assert a.result["instability"] is not None and b.result["instability"] is not None
    assert abs(a.result["instability"] - b.result["instability"]) <= 2 / 360 + 1e-12
    assert a.progress == b.progress == 1.0


def test_one_warm_child_serves_every_job_and_stops_with_its_worker(
    fresh_database_url: str, factory: sessionmaker[Session], storage: LocalBlobStorage
) -> None:
    with unit_of_work(factory) as session:
        _, job = store_queued(session, storage)
        first = job.id
    second = _requeue(factory, first)
    run_worker(_settings(fresh_database_url, storage), once=True, entry=REPORT_PID)
    a, b = job_row(factory, first), job_row(factory, second)
    assert a.result is not None and b.result is not None
    assert (a.state, b.state) == ("succeeded", "succeeded")
    assert a.result["pid"] == b.result["pid"] != os.getpid()
    assert not alive(a.result["pid"])


def _training_children(pid: int) -> list[int]:
    """The live spawned children of ``pid`` (Linux ``/proc``), not multiprocessing's
    resource tracker."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return [c for c in found if alive(c) and b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def test_cancel_stops_a_batch_within_a_heartbeat(
    factory: sessionmaker[Session], storage: LocalBlobStorage, workers: Workers
) -> None:
    with unit_of_work(factory) as session:
        _, job = store_queued(session, storage, recipe={**TINY_RECIPE, "steps": 3_000})
        vid = job.id
    process = workers.start(entry=DEFAULT_ENTRY, verify_batch="on")
    assert process.pid is not None
    until(lambda: job_row(factory, vid).progress > 0, 240, "the batch to report progress")
    [child] = _training_children(process.pid)
    with unit_of_work(factory) as session:
        queue.request_cancel(session, vid)
    asked = time.monotonic()
    until(lambda: job_row(factory, vid).state == "cancelled", 10, "the job to be cancelled")
    # One heartbeat to notice, plus the child's SIGTERM and the database round trips.
    assert time.monotonic() - asked < HEARTBEAT + 1.5
    assert not alive(child)
    assert job_row(factory, vid).attempts == 1
