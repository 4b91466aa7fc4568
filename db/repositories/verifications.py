"""Reading verifications."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from db.models.tickets import Ticket
from db.models.verifications import Verification
from nirvana.states import VerificationState

#: States that keep a ticket's own task from being verified again: pending or done.
_BLOCKING = (VerificationState.QUEUED, VerificationState.RUNNING, VerificationState.SUCCEEDED)


def get_verification(session: Session, verification_id: uuid.UUID, *, with_ticket: bool = False) -> Verification | None:
    """The verification, with its ticket loaded when ``with_ticket`` (to see its uploader)."""
    if not with_ticket:
        return session.get(Verification, verification_id)
    return session.scalar(
        select(Verification).options(joinedload(Verification.ticket)).where(Verification.id == verification_id)
    )


def lock_own_task(session: Session, ticket: Ticket) -> Verification | None:
    """Lock ``ticket``'s row until the transaction ends (so two requests to queue it
    again are serialised) and return a verification on its own task that is queued,
    running or succeeded, if there is one (the latest)."""
    session.execute(select(Ticket.id).where(Ticket.id == ticket.id).with_for_update())
    return session.scalar(
        select(Verification)
        .where(Verification.ticket_id == ticket.id, Verification.task == ticket.task, Verification.state.in_(_BLOCKING))
        .order_by(Verification.created_at.desc())
        .limit(1)
    )


def count_by_state(session: Session) -> dict[str, int]:
    """Verifications per state (the queue's depth is ``queued``)."""
    rows = session.execute(select(Verification.state, func.count()).group_by(Verification.state)).all()
    return {state: count for state, count in rows}


@dataclass(frozen=True)
class DurationHistogram:
    """Finished verifications' run times: how many took at most each bound (cumulative,
    in the order of the bounds), how many in all and their sum, in seconds."""

    at_most: list[int]
    count: int
    total_seconds: float


def duration_histogram(session: Session, bounds: Sequence[float]) -> DurationHistogram:
    """``DurationHistogram`` of every verification that started and finished."""
    seconds = func.extract("epoch", Verification.finished_at - Verification.started_at)
    timed = select(seconds.label("s")).where(Verification.finished_at.is_not(None), Verification.started_at.is_not(None)).subquery()
    columns = [func.count().filter(timed.c.s <= bound) for bound in bounds]
    row = session.execute(select(*columns, func.count(), func.coalesce(func.sum(timed.c.s), 0.0))).one()
    return DurationHistogram(at_most=[int(n) for n in row[: len(bounds)]], count=int(row[-2]), total_seconds=float(row[-1]))


def latest_states(session: Session, ticket_ids: Sequence[str], task: str) -> dict[str, str]:
    """The state of each ticket's latest verification on ``task`` (tickets without one
    are absent): what a task page shows for a ticket that has no verdict yet."""
    if not ticket_ids:
        return {}
    rows = session.execute(
        select(Verification.ticket_id, Verification.state)
        .where(Verification.ticket_id.in_(list(ticket_ids)), Verification.task == task)
        .order_by(Verification.created_at)
    ).all()
    return {ticket_id: state for ticket_id, state in rows}  # the latest one wins
