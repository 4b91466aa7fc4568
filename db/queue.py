"""The verification queue: the ``verifications`` row is the job.

A job is ``queued`` until a worker claims it (``running``, under a lease: a fresh
``lease_token`` and a ``lease_expires_at`` that heartbeats push forward), and ends
``succeeded``, ``failed`` or ``cancelled``. Every write a worker makes after claiming
names its lease token, so a worker whose lease lapsed (and whose job someone else now
holds) gets ``LeaseLostError`` instead of overwriting the new holder's work.

Contract shared by every function here: it flushes and never commits; the caller runs
each step in its own short transaction (``db.session.unit_of_work``) and trains
outside any transaction. ``docs/verification.md`` tells the whole life of a job.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, literal, select, update
from sqlalchemy.orm import Session

from db.models.tickets import Ticket
from db.models.verifications import Verification
from nirvana.states import VerificationState
from db.results import dense_accuracy_of, ticket_accuracy_of, verdict_of

_FINAL = (VerificationState.SUCCEEDED, VerificationState.FAILED, VerificationState.CANCELLED)


class LeaseLostError(RuntimeError):
    """The job is no longer ``running`` under this lease token: it was reaped (and maybe
    re-claimed by another worker) or finished. The holder must stop and write nothing."""


class VerificationNotFoundError(LookupError):
    pass


@dataclass(frozen=True)
class Claim:
    """What a worker needs to run a claimed job: plain values, no ORM objects, so that
    it crosses process boundaries and outlives the claiming session."""

    verification_id: uuid.UUID
    ticket_id: str
    lease_token: uuid.UUID
    task: str
    recipe: dict[str, Any]
    claimed_accuracy: float
    attempts: int
    max_attempts: int


def enqueue_verification(
    session: Session,
    *,
    ticket_id: str,
    task: str,
    recipe: Mapping[str, Any],
    claimed_accuracy: float,
    requested_by_id: uuid.UUID | None = None,
    max_attempts: int = 3,
) -> Verification:
    """Add a ``queued`` verification of ``ticket_id`` on ``task`` (flushed, not committed),
    on behalf of the user ``requested_by_id``.

    The migration's trigger NOTIFYs idle workers when the caller's transaction commits.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    verification = Verification(
        ticket_id=ticket_id,
        task=task,
        recipe=dict(recipe),
        claimed_accuracy=claimed_accuracy,
        requested_by_id=requested_by_id,
        state=VerificationState.QUEUED,
        attempts=0,
        max_attempts=max_attempts,
        progress=0.0,
        cancel_requested=False,
    )
    session.add(verification)
    session.flush()
    return verification


def _lease_until(lease_seconds: float) -> Any:
    if lease_seconds <= 0:
        raise ValueError("lease_seconds must be positive")
    return func.now() + dt.timedelta(seconds=lease_seconds)


def reap_expired(session: Session, *, now: dt.datetime | None = None) -> int:
    """Take back every ``running`` job whose lease expired before ``now`` (default: the
    database clock, the one leases are written with). Each goes back to ``queued``
    while attempts remain, else to ``failed`` with the reason; one whose cancel was
    requested becomes ``cancelled``. Returns how many rows changed.

    Rows another transaction holds are skipped, so concurrent reapers never wait on
    each other and never take back the same job twice.
    """
    cutoff: Any = func.now() if now is None else literal(now)
    rows = session.scalars(
        select(Verification)
        .where(Verification.state == VerificationState.RUNNING, Verification.lease_expires_at < cutoff)
        .order_by(Verification.lease_expires_at)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    ).all()
    for row in rows:
        last = row.worker_id or "an unknown worker"
        if row.cancel_requested:
            _requeue_or_end(row, VerificationState.CANCELLED, row.error)
        elif row.attempts < row.max_attempts:
            _requeue_or_end(row, VerificationState.QUEUED, f"attempt {row.attempts}: the lease of {last} expired")
        else:
            _requeue_or_end(
                row, VerificationState.FAILED, f"the worker running it stopped {row.attempts} times (last: {last})"
            )
    session.flush()
    return len(rows)


def claim_next(session: Session, *, worker_id: str, lease_seconds: float) -> Claim | None:
    """Claim the oldest ``queued`` job in one statement, or return ``None``.

    ``FOR UPDATE SKIP LOCKED`` lets any number of workers claim at once without
    waiting on each other or taking the same row; the claim counts an attempt, takes a
    fresh lease token and resets ``progress``.
    """
    oldest = (
        select(Verification.id)
        .where(Verification.state == VerificationState.QUEUED, ~Verification.cancel_requested)
        .order_by(Verification.created_at, Verification.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    stmt = (
        update(Verification)
        .where(Verification.id == oldest)
        .values(
            state=VerificationState.RUNNING,
            attempts=Verification.attempts + 1,
            lease_token=func.gen_random_uuid(),
            lease_expires_at=_lease_until(lease_seconds),
            worker_id=worker_id,
            started_at=func.coalesce(Verification.started_at, func.now()),
            heartbeat_at=func.now(),
            progress=0.0,
        )
        .returning(
            Verification.id,
            Verification.ticket_id,
            Verification.lease_token,
            Verification.task,
            Verification.recipe,
            Verification.claimed_accuracy,
            Verification.attempts,
            Verification.max_attempts,
        )
        .execution_options(synchronize_session="fetch")
    )
    row = session.execute(stmt).one_or_none()
    session.flush()
    if row is None:
        return None
    return Claim(
        verification_id=row.id,
        ticket_id=row.ticket_id,
        lease_token=row.lease_token,
        task=row.task,
        recipe=dict(row.recipe),
        claimed_accuracy=row.claimed_accuracy,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
    )


def _ids(claim_or_id: Claim | uuid.UUID, token: uuid.UUID | None) -> tuple[uuid.UUID, uuid.UUID]:
    if isinstance(claim_or_id, Claim):
        return claim_or_id.verification_id, token if token is not None else claim_or_id.lease_token
    if token is None:
        raise ValueError("a lease token is required with a bare verification id")
    return claim_or_id, token


def _held(verification_id: uuid.UUID, token: uuid.UUID) -> Any:
    """The WHERE clause of every write a lease holder makes."""
    return and_(
        Verification.id == verification_id,
        Verification.lease_token == token,
        Verification.state == VerificationState.RUNNING,
    )


def heartbeat(
    session: Session,
    claim_or_id: Claim | uuid.UUID,
    token: uuid.UUID | None = None,
    *,
    progress: float,
    lease_seconds: float,
) -> bool:
    """Renew the lease and record ``progress`` (clamped to [0, 1]).

    Returns whether a cancel was requested (the caller stops the job and finishes it
    ``cancelled``). Raises ``LeaseLostError`` when the lease is no longer held.
    """
    verification_id, token = _ids(claim_or_id, token)
    stmt = (
        update(Verification)
        .where(_held(verification_id, token))
        .values(
            heartbeat_at=func.now(),
            lease_expires_at=_lease_until(lease_seconds),
            progress=min(1.0, max(0.0, float(progress))),
        )
        .returning(Verification.cancel_requested)
        .execution_options(synchronize_session="fetch")
    )
    cancel = session.execute(stmt).scalar_one_or_none()
    if cancel is None:
        raise LeaseLostError(f"verification {verification_id}: lease {token} is no longer held")
    session.flush()
    return bool(cancel)


def finish(
    session: Session,
    claim_or_id: Claim | uuid.UUID,
    token: uuid.UUID | None = None,
    *,
    state: VerificationState | str,
    result: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """Record the end of a job the caller holds: ``succeeded``, ``failed`` or ``cancelled``.

    A ``succeeded`` result on the ticket's own task also updates the ticket
    (``verified``, ``verified_accuracy``, ``accuracy``, ``winning``, ``verdict``); a result on
    another task is a transfer evaluation and leaves the ticket's figures alone.
    Raises ``LeaseLostError`` when the lease is no longer held (nothing is written).
    """
    verification_id, token = _ids(claim_or_id, token)
    final = VerificationState(state)
    if final not in _FINAL:
        raise ValueError(f"finish needs a final state, not {final.value!r}")
    values: dict[str, Any] = {
        "state": final,
        "result": dict(result) if result is not None else None,
        "error": error,
        "finished_at": func.now(),
        "lease_token": None,
        "lease_expires_at": None,
    }
    if final is VerificationState.SUCCEEDED:
        values["progress"] = 1.0
    stmt = (
        update(Verification)
        .where(_held(verification_id, token))
        .values(**values)
        .returning(Verification.ticket_id, Verification.task)
        .execution_options(synchronize_session="fetch")
    )
    row = session.execute(stmt).one_or_none()
    if row is None:
        raise LeaseLostError(f"verification {verification_id}: lease {token} is no longer held")
    if final is VerificationState.SUCCEEDED and result is not None:
        _record_on_ticket(session, ticket_id=row.ticket_id, task=row.task, result=result)
    session.flush()


def _record_on_ticket(session: Session, *, ticket_id: str, task: str, result: Mapping[str, Any]) -> None:
    accuracy = ticket_accuracy_of(result)
    verdict = verdict_of(result)
    session.execute(
        update(Ticket)
        # Only a verification on the task the ticket was found on speaks for its claim.
        .where(Ticket.id == ticket_id, Ticket.task == task)
        .values(
            verified=verdict != "not_reproduced",
            verified_accuracy=accuracy,
            accuracy=accuracy,
            winning=verdict == "winning",
            verdict=verdict,
            dense_accuracy=dense_accuracy_of(result),
        )
        .execution_options(synchronize_session="fetch")
    )


def _locked_held(session: Session, verification_id: uuid.UUID, token: uuid.UUID) -> Verification:
    row = session.scalars(
        select(Verification).where(_held(verification_id, token)).with_for_update().execution_options(populate_existing=True)
    ).one_or_none()
    if row is None:
        raise LeaseLostError(f"verification {verification_id}: lease {token} is no longer held")
    return row


def release_for_retry(
    session: Session, claim_or_id: Claim | uuid.UUID, token: uuid.UUID | None = None, *, error: str
) -> VerificationState:
    """After the training crashed: back to ``queued`` while attempts remain, else
    ``failed`` with ``error`` and the count; ``cancelled`` if a cancel was requested.
    Returns the new state. Raises ``LeaseLostError`` when the lease is not held."""
    verification_id, token = _ids(claim_or_id, token)
    row = _locked_held(session, verification_id, token)
    if row.cancel_requested:
        new, message = VerificationState.CANCELLED, None
    elif row.attempts < row.max_attempts:
        new, message = VerificationState.QUEUED, f"attempt {row.attempts} of {row.max_attempts}: {error}"
    else:
        new, message = VerificationState.FAILED, f"gave up after {row.attempts} attempts; last: {error}"
    _requeue_or_end(row, new, message)
    session.flush()
    return new


def release(session: Session, claim_or_id: Claim | uuid.UUID, token: uuid.UUID | None = None) -> None:
    """Hand a job back untouched because its worker is shutting down: ``queued`` again
    and the attempt not counted (nothing went wrong with the job). Raises
    ``LeaseLostError`` when the lease is not held."""
    verification_id, token = _ids(claim_or_id, token)
    row = _locked_held(session, verification_id, token)
    if row.cancel_requested:
        _requeue_or_end(row, VerificationState.CANCELLED, None)
    else:
        row.attempts = max(0, row.attempts - 1)
        _requeue_or_end(row, VerificationState.QUEUED, row.error)
    session.flush()


def _requeue_or_end(row: Verification, state: VerificationState, error: str | None) -> None:
    row.state = state
    row.error = error
    row.lease_token = None
    row.lease_expires_at = None
    if state is VerificationState.QUEUED:
        row.progress = 0.0
    else:
        # SQL, not a Python datetime: the database clock, the one leases are written with.
        row.finished_at = func.now()


def request_cancel(session: Session, verification_id: uuid.UUID) -> Verification:
    """Cancel a job: a ``queued`` one becomes ``cancelled`` at once; a ``running`` one
    gets ``cancel_requested`` and its worker stops it within one heartbeat; a finished
    one is left as it is. Returns the row. Raises ``VerificationNotFoundError``."""
    row = session.scalars(
        select(Verification)
        .where(Verification.id == verification_id)
        .with_for_update()
        # The caller may hold this row from before the lock: decide on its locked state.
        .execution_options(populate_existing=True)
    ).one_or_none()
    if row is None:
        raise VerificationNotFoundError(str(verification_id))
    if row.state == VerificationState.QUEUED:
        row.cancel_requested = True
        row.state = VerificationState.CANCELLED
        row.finished_at = func.now()
    elif row.state == VerificationState.RUNNING:
        row.cancel_requested = True
    session.flush()
    if row.state == VerificationState.CANCELLED:
        session.refresh(row, ["finished_at"])
    return row


__all__ = [
    "Claim",
    "LeaseLostError",
    "VerificationNotFoundError",
    "claim_next",
    "enqueue_verification",
    "finish",
    "heartbeat",
    "reap_expired",
    "release",
    "release_for_retry",
    "request_cancel",
]
