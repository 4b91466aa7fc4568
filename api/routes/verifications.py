"""Verifications: state, progress, attempts and result; cancelling."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from api.deps import SessionDep, WriterDep
from api.errors import ProblemError
from api.schemas.verifications import VerificationRead
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
def cancel_verification(verification_id: uuid.UUID, session: SessionDep, _token: WriterDep) -> Verification:
    """A queued verification is cancelled at once; a running one stops within one
    heartbeat of its worker. A finished one is returned unchanged."""
    _get_or_404(session, verification_id)
    return request_cancel(session, verification_id)
