"""Verifications: state, progress, attempts and result; cancelling."""

from __future__ import annotations

import uuid

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from api.deps import SessionDep, SettingsDep, StorageDep, WriterDep, require_scope
from api.errors import ProblemError
from api.schemas.verifications import TransferCreate, VerificationRead
from api.openapi import problems
from api.tickets import TicketRef, ticket_or_404
from api.transfers import queue_transfer
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


@router.get("/verifications/{verification_id}", response_model=VerificationRead, responses=problems(404))
def read_verification(verification_id: uuid.UUID, session: SessionDep) -> Verification:
    return _get_or_404(session, verification_id)


@router.post("/verifications/{verification_id}/cancel", response_model=VerificationRead, responses=problems(403, 404, 409))
def cancel_verification(verification_id: uuid.UUID, session: SessionDep, _token: WriterDep) -> Verification:
    """A queued verification is cancelled at once; a running one stops within one
    heartbeat of its worker. A finished one is returned unchanged."""
    _get_or_404(session, verification_id)
    return request_cancel(session, verification_id)


@router.post(
    "/tickets/{ref}/verifications", response_model=VerificationRead, status_code=202, responses=problems(400, 403, 404, 409)
)
def create_transfer_verification(
    ref: TicketRef,
    body: TransferCreate,
    response: Response,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    _token: Annotated[ApiToken, Depends(require_scope("verify"))],
) -> Verification:
    """Queue a verification of a stored ticket on another task (a transfer evaluation),
    with that task's default recipe unless one is given. Needs the ``verify`` scope:
    it spends worker time."""
    ticket = ticket_or_404(session, ref)
    verification = queue_transfer(
        session,
        storage,
        ticket,
        task=body.task,
        recipe=body.recipe,
        claimed_accuracy=body.claimed_accuracy,
        max_steps=settings.max_steps,
        max_examples=settings.max_examples,
        data_dir=settings.data_dir,
    )
    session.flush()
    session.refresh(verification)
    response.headers["Location"] = f"/api/v1/verifications/{verification.id}"
    return verification
