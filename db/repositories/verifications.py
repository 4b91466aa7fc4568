"""Reading verifications."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from db.models.tickets import Ticket
from db.models.verifications import Verification, VerificationState

#: States that keep a ticket's own task from being verified again: pending or done.
_BLOCKING = (VerificationState.QUEUED.value, VerificationState.RUNNING.value, VerificationState.SUCCEEDED.value)


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
