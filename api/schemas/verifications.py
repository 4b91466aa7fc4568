"""Verification payloads."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict


class VerificationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    ticket_id: str
    task: str
    state: str
    progress: float
    attempts: int
    max_attempts: int
    cancel_requested: bool
    recipe: dict[str, Any]
    claimed_accuracy: float
    result: dict[str, Any] | None
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
