"""Reading verifications."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models.verifications import Verification


def get_verification(session: Session, verification_id: uuid.UUID) -> Verification | None:
    return session.get(Verification, verification_id)


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
