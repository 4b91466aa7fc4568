"""Resolving a ticket reference in a URL, with the API's errors."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session

from api.errors import ProblemError
from db.models.tickets import Ticket
from db.repositories.tickets import (
    AmbiguousTicketRefError,
    BlobDigests,
    InvalidTicketRefError,
    count_by_task,
    find_blob_digests,
    find_ticket,
)

T = TypeVar("T")


def ticket_or_404(session: Session, ref: str, *, with_details: bool = False) -> Ticket:
    """The ticket ``ref`` names (full id or unique prefix of >= 12 hex characters)."""
    return _or_404(lambda: find_ticket(session, ref, with_details=with_details), ref)


def blob_digests_or_404(session: Session, ref: str) -> BlobDigests:
    """``ticket_or_404`` for downloads: only the digests of the ticket's files."""
    return _or_404(lambda: find_blob_digests(session, ref), ref)


def _or_404(find: Callable[[], T | None], ref: str) -> T:
    try:
        found = find()
    except InvalidTicketRefError as exc:
        raise ProblemError(422, "invalid_ticket_id", str(exc)) from None
    except AmbiguousTicketRefError as exc:
        raise ProblemError(409, "ambiguous_ticket_id", str(exc)) from None
    if found is None:
        raise ProblemError(404, "ticket_not_found", f"no ticket {ref!r}")
    return found


COUNTS_TTL_SECONDS = 10.0


class TicketCounts:
    """Tickets per task, counted at most once per ``ttl`` seconds in a process:
    counting reads every ticket (25 ms at 100,000), so the tasks list may lag by that
    much instead."""

    def __init__(self, ttl: float = COUNTS_TTL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self.counts: dict[str, int] | None = None
        self.counted_at = 0.0

    def get(self, session: Session) -> dict[str, int]:
        now = self.clock()
        if self.counts is None or now - self.counted_at >= self.ttl:
            self.counts, self.counted_at = count_by_task(session), now
        return self.counts
