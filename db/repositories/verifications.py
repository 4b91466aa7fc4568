"""Reading verifications."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from db.models.verifications import Verification


def get_verification(session: Session, verification_id: uuid.UUID) -> Verification | None:
    return session.get(Verification, verification_id)
