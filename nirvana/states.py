"""The states a verification goes through: one enum for the server's rows
(``db.models.verifications``) and the client's answers (``nirvana.hub_types``)."""

from __future__ import annotations

import enum


class VerificationState(enum.StrEnum):
    """Where a verification is; the last three are final."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (VerificationState.SUCCEEDED, VerificationState.FAILED, VerificationState.CANCELLED)
