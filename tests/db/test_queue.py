"""The verification queue on a real PostgreSQL: claiming, leases, reaping, cancelling,
finishing, and LISTEN/NOTIFY."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from db import queue
from db.blobs import LocalBlobStorage
from db.models.tickets import Ticket
from db.models.verifications import Verification
from nirvana.states import VerificationState
from db.notifications import ChannelListener, wait_for_work
from db.session import make_engine, make_sessionmaker, unit_of_work
from tests.factories.tickets import store_queued

LATER = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
RESULT = {"reproduced": True, "winning": False, "runs": {"ticket": {"test_accuracy": 0.91}}}


@pytest.fixture
def storage(tmp_path: Path) -> LocalBlobStorage:
    return LocalBlobStorage(tmp_path / "blobs")


def _row(session: Session, verification_id: uuid.UUID) -> Verification:
    session.expire_all()
    row = session.get(Verification, verification_id)
    assert row is not None
    return row


def test_claim_takes_the_oldest_queued_job_once(db_session: Session, storage: LocalBlobStorage) -> None:
    _, first = store_queued(db_session, storage)
    _, second = store_queued(db_session, storage, seed=1)
    # One transaction has one now(): date the rows apart to show the order.
    first.created_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)
    second.created_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    db_session.flush()
    a = queue.claim_next(db_session, worker_id="w1", lease_seconds=60)
    b = queue.claim_next(db_session, worker_id="w2", lease_seconds=60)
    assert a is not None and b is not None
    assert (a.verification_id, b.verification_id) == (first.id, second.id)
    assert a.attempts == 1 and a.lease_token != b.lease_token and a.recipe == first.recipe
    assert queue.claim_next(db_session, worker_id="w3", lease_seconds=60) is None
    row = _row(db_session, first.id)
    assert (row.state, row.worker_id, row.lease_token) == ("running", "w1", a.lease_token)
    db_session.expire(row)  # read back from the database: an enum, not a string
    assert row.state is VerificationState.RUNNING and not row.finished
    assert row.started_at is not None and row.lease_expires_at is not None


def test_expired_lease_is_reaped_reclaimed_then_failed_at_the_cap(
    db_session: Session, storage: LocalBlobStorage
) -> None:
    _, job = store_queued(db_session, storage, max_attempts=3)
    for attempt in (1, 2, 3):
        claim = queue.claim_next(db_session, worker_id=f"w{attempt}", lease_seconds=60)
        assert claim is not None and claim.attempts == attempt
        # Not yet expired on the database clock: nothing to reap.
        assert queue.reap_expired(db_session) == 0
        assert queue.reap_expired(db_session, now=LATER) == 1
    row = _row(db_session, job.id)
    assert row.state == "failed" and row.attempts == 3 and row.finished_at is not None
    assert row.error == "the worker running it stopped 3 times (last: w3)"
    assert queue.claim_next(db_session, worker_id="w4", lease_seconds=60) is None


def test_a_lost_lease_cannot_heartbeat_finish_or_overwrite(db_session: Session, storage: LocalBlobStorage) -> None:
    ticket, job = store_queued(db_session, storage)
    old = queue.claim_next(db_session, worker_id="slow", lease_seconds=60)
    assert old is not None
    queue.reap_expired(db_session, now=LATER)
    new = queue.claim_next(db_session, worker_id="fresh", lease_seconds=60)
    assert new is not None and new.verification_id == old.verification_id and new.attempts == 2
    with pytest.raises(queue.LeaseLostError):
        queue.heartbeat(db_session, old, progress=0.5, lease_seconds=60)
    with pytest.raises(queue.LeaseLostError):
        queue.finish(db_session, old, state="failed", error="stale")
    assert queue.heartbeat(db_session, new, progress=0.5, lease_seconds=60) is False
    queue.finish(db_session, new, state="succeeded", result=RESULT)
    with pytest.raises(queue.LeaseLostError):
        queue.finish(db_session, old.verification_id, old.lease_token, state="succeeded", result={"x": 1})
    row = _row(db_session, job.id)
    assert (row.state, row.result, row.error, row.worker_id, row.progress) == ("succeeded", RESULT, None, "fresh", 1.0)
    assert row.lease_token is None
    db_session.refresh(ticket)
    assert (ticket.verified, ticket.verified_accuracy, ticket.accuracy, ticket.winning) == (True, 0.91, 0.91, False)


def test_a_transfer_evaluation_leaves_the_ticket_alone(db_session: Session, storage: LocalBlobStorage) -> None:
    ticket, _ = store_queued(db_session, storage, task="mnist1d")
    claim = queue.claim_next(db_session, worker_id="w", lease_seconds=60)
    assert claim is not None and claim.task == "mnist1d"
    queue.finish(db_session, claim, state="succeeded", result=RESULT)
    db_session.refresh(ticket)
    assert (ticket.verified, ticket.verified_accuracy, ticket.accuracy) == (False, None, 0.9)


def test_heartbeat_renews_the_lease_and_records_progress(db_session: Session, storage: LocalBlobStorage) -> None:
    _, job = store_queued(db_session, storage)
    claim = queue.claim_next(db_session, worker_id="w", lease_seconds=1)
    assert claim is not None
    before = _row(db_session, job.id).lease_expires_at
    assert queue.heartbeat(db_session, claim, progress=1.7, lease_seconds=600) is False
    row = _row(db_session, job.id)
    assert row.progress == 1.0 and before is not None and row.lease_expires_at is not None
    assert row.lease_expires_at - before == dt.timedelta(seconds=599)


def test_cancel_queued_is_immediate_running_is_requested_finished_is_unchanged(
    db_session: Session, storage: LocalBlobStorage
) -> None:
    _, queued = store_queued(db_session, storage)
    row = queue.request_cancel(db_session, queued.id)
    assert row.state == "cancelled" and row.finished_at is not None
    assert queue.claim_next(db_session, worker_id="w", lease_seconds=60) is None

    _, running = store_queued(db_session, storage, seed=1)
    claim = queue.claim_next(db_session, worker_id="w", lease_seconds=60)
    assert claim is not None and claim.verification_id == running.id
    assert queue.request_cancel(db_session, running.id).state == "running"
    assert queue.heartbeat(db_session, claim, progress=0.1, lease_seconds=60) is True
    queue.finish(db_session, claim, state="cancelled")
    assert queue.request_cancel(db_session, running.id).state == "cancelled"
    with pytest.raises(queue.VerificationNotFoundError):
        queue.request_cancel(db_session, uuid.uuid4())


def test_a_cancelled_job_whose_worker_died_is_reaped_as_cancelled(
    db_session: Session, storage: LocalBlobStorage
) -> None:
    _, job = store_queued(db_session, storage)
    assert queue.claim_next(db_session, worker_id="w", lease_seconds=60) is not None
    queue.request_cancel(db_session, job.id)
    assert queue.reap_expired(db_session, now=LATER) == 1
    assert _row(db_session, job.id).state == "cancelled"


def test_release_for_retry_requeues_until_the_cap(db_session: Session, storage: LocalBlobStorage) -> None:
    _, job = store_queued(db_session, storage, max_attempts=2)
    first = queue.claim_next(db_session, worker_id="w", lease_seconds=60)
    assert first is not None
    assert queue.release_for_retry(db_session, first, error="killed by SIGKILL") == "queued"
    assert _row(db_session, job.id).error == "attempt 1 of 2: killed by SIGKILL"
    second = queue.claim_next(db_session, worker_id="w", lease_seconds=60)
    assert second is not None and second.attempts == 2
    with pytest.raises(queue.LeaseLostError):
        queue.release_for_retry(db_session, first, error="stale")
    assert queue.release_for_retry(db_session, second, error="killed by SIGKILL") == "failed"
    row = _row(db_session, job.id)
    assert row.state == "failed" and row.error == "gave up after 2 attempts; last: killed by SIGKILL"


def test_release_on_shutdown_does_not_count_an_attempt(db_session: Session, storage: LocalBlobStorage) -> None:
    _, job = store_queued(db_session, storage)
    claim = queue.claim_next(db_session, worker_id="w", lease_seconds=60)
    assert claim is not None
    queue.release(db_session, claim)
    row = _row(db_session, job.id)
    assert (row.state, row.attempts, row.lease_token) == ("queued", 0, None)


def test_concurrent_workers_never_claim_the_same_job(fresh_database_url: str, tmp_path: Path) -> None:
    jobs, workers = 40, 8
    engine = make_engine(fresh_database_url, pool_size=workers)
    factory = make_sessionmaker(engine)
    storage = LocalBlobStorage(tmp_path)
    with unit_of_work(factory) as session:
        ticket, _ = store_queued(session, storage)
        for _ in range(jobs - 1):
            queue.enqueue_verification(
                session, ticket_id=ticket.id, task="digits", recipe={}, claimed_accuracy=0.5
            )
    claimed: list[list[uuid.UUID]] = [[] for _ in range(workers)]
    start = threading.Barrier(workers)

    def work(i: int) -> None:
        start.wait()
        while True:
            with unit_of_work(factory) as session:
                claim = queue.claim_next(session, worker_id=f"w{i}", lease_seconds=60)
            if claim is None:
                return
            claimed[i].append(claim.verification_id)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    everything = [v for per in claimed for v in per]
    with factory() as session:
        all_ids = set(session.scalars(select(Verification.id)))
        states = set(session.scalars(select(Verification.state)))
        assert session.scalar(select(Ticket.id)) == ticket.id
    engine.dispose()
    assert len(everything) == jobs and set(everything) == all_ids  # each exactly once
    assert states == {"running"}
    assert sum(1 for per in claimed if per) > 1  # the workers really did overlap


def test_listener_wakes_when_a_job_is_queued(fresh_database_url: str, tmp_path: Path) -> None:
    engine = make_engine(fresh_database_url)
    factory = make_sessionmaker(engine)
    with ChannelListener(fresh_database_url) as listener:
        assert listener.wait(0.2) is False
        with unit_of_work(factory) as session:
            store_queued(session, LocalBlobStorage(tmp_path))
        # Queued while nobody was waiting: the subscription kept the notification.
        assert listener.wait(5.0) is True
        assert listener.wait(0.1) is False
    assert wait_for_work(fresh_database_url, 0.1) is False
    engine.dispose()


def test_cancel_decides_on_the_locked_row_not_a_stale_copy(fresh_database_url: str, tmp_path: Path) -> None:
    engine = make_engine(fresh_database_url)
    factory = make_sessionmaker(engine)
    with unit_of_work(factory) as session:
        _, job = store_queued(session, LocalBlobStorage(tmp_path))
    with factory() as api_session:
        assert api_session.get(Verification, job.id).state == "queued"  # type: ignore[union-attr]
        # A worker claims it after the API loaded the row, before it cancels.
        with unit_of_work(factory) as worker_session:
            claim = queue.claim_next(worker_session, worker_id="w", lease_seconds=60)
        assert claim is not None
        row = queue.request_cancel(api_session, job.id)
        api_session.commit()
        assert (row.state, row.cancel_requested) == ("running", True)
    with unit_of_work(factory) as worker_session:
        assert queue.heartbeat(worker_session, claim, progress=0.2, lease_seconds=60) is True
    engine.dispose()
