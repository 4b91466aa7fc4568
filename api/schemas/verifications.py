"""Verification payloads."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from db.models.verifications import VerificationState
from nirvana.lottery.training.recipes import Recipe


class VerificationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    ticket_id: str
    task: str
    state: VerificationState
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


class TransferCreate(BaseModel):
    """A request to verify a stored ticket on another task."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=100)
    recipe: Recipe | None = None
    claimed_accuracy: float | None = Field(default=None, ge=0, le=1)
