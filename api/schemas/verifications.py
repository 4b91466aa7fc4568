"""Verification payloads."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nirvana.states import VerificationState
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
    #: Result schema 2 (``result.schema == 2``) or, written before it, schema 1.
    result: dict[str, Any] | None
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @field_validator("result")
    @classmethod
    def _mark_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        # A result the migration did not see (restored from a dump) is still schema 1.
        if value is not None and "schema" not in value:
            return {**value, "schema": 1}
        return value


class TransferCreate(BaseModel):
    """A request to verify a stored ticket on another task."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=100)
    recipe: Recipe | None = None
    claimed_accuracy: float | None = Field(default=None, ge=0, le=1)
