"""Verifications: state, progress, attempts and result; cancelling."""

from __future__ import annotations

import uuid

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from api.deps import SessionDep, SettingsDep, StorageDep, WriterDep, require_scope
from api.errors import ProblemError
from api.schemas.verifications import TransferCreate, VerificationRead
from api.owners import ensure_owner
from api.tickets import ticket_or_404
from api.transfers import queue_again, queue_transfer
from db.models.users import ApiToken
from db.models.verifications import Verification
from db.queue import request_cancel
from db.repositories.verifications import get_verification

router = APIRouter(tags=["verifications"])


def _get_or_404(session: SessionDep, verification_id: uuid.UUID) -> Verification:
    verification = get_verification(session, verification_id)
    if verification is None:
        raise ProblemError(404, "verification_not_found", f"no verification {verification_id}")
    return verification


@router.get("/verifications/{verification_id}", response_model=VerificationRead)
def read_verification(verification_id: uuid.UUID, session: SessionDep) -> Verification:
    return _get_or_404(session, verification_id)


@router.post("/verifications/{verification_id}/cancel", response_model=VerificationRead)
def cancel_verification(verification_id: uuid.UUID, session: SessionDep, token: WriterDep) -> Verification:
    """A queued verification is cancelled at once; a running one stops within one
    heartbeat of its worker. A finished one is returned unchanged. Only the ticket's
    uploader, whoever queued it and admins may (else ``403 not_owner``)."""
    verification = get_verification(session, verification_id, with_ticket=True)
    if verification is None:
        raise ProblemError(404, "verification_not_found", f"no verification {verification_id}")
    ensure_owner(
        token,
        uploader_id=verification.ticket.submitter_id,
        requested_by_id=verification.requested_by_id,
        action="cancel it",
    )
    return request_cancel(session, verification_id)


@router.post("/tickets/{ref}/verifications", response_model=VerificationRead, status_code=202)
def create_transfer_verification(
    ref: str,
    body: TransferCreate,
    response: Response,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    token: Annotated[ApiToken, Depends(require_scope("verify", "write"))],
) -> Verification:
    """Queue a verification of a stored ticket on another task (a transfer evaluation),
    with that task's default recipe unless one is given. Needs the ``verify`` scope:
    it spends worker time.

    On the ticket's own task, it queues the ticket again under its own recipe and claim
    (no ``recipe`` or ``claimed_accuracy`` then), when its last verification there was
    cancelled or failed; for its uploader (``write``) or an admin."""
    ticket = ticket_or_404(session, ref)
    if body.task == ticket.task:
        with_terms = body.recipe is not None or body.claimed_accuracy is not None
        verification = queue_again(session, ticket, token, with_terms=with_terms)
    else:
        if not token.allows("verify"):
            raise ProblemError(403, "insufficient_scope", "the token lacks the 'verify' scope")
        verification = queue_transfer(
            session,
            storage,
            ticket,
            task=body.task,
            recipe=body.recipe,
            claimed_accuracy=body.claimed_accuracy,
            max_steps=settings.max_steps,
            max_examples=settings.max_examples,
            data_dir=settings.task_data_dir,
            requested_by_id=token.user_id,
        )
    session.flush()
    session.refresh(verification)
    response.headers["Location"] = f"/api/v1/verifications/{verification.id}"
    return verification

