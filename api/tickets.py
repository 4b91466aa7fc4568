"""Resolving a ticket reference in a URL, with the API's errors."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from sqlalchemy.orm import Session

from api.errors import ProblemError
from db.models.tickets import Ticket
from db.repositories.tickets import MIN_PREFIX, AmbiguousTicketRefError, InvalidTicketRefError, find_ticket

# What normalise_ref accepts, stated in the schema; the route still answers a miss with
# 422 invalid_ticket_id rather than FastAPI's generic validation_error.
TicketRef = Annotated[
    str,
    Path(
        description=f"the full id, or a unique prefix of at least {MIN_PREFIX} hex characters",
        json_schema_extra={"pattern": rf"^\s*[0-9A-Fa-f]{{{MIN_PREFIX},64}}\s*$"},
    ),
]


def ticket_or_404(session: Session, ref: str, *, with_details: bool = False) -> Ticket:
    """The ticket ``ref`` names (full id or unique prefix of >= 12 hex characters)."""
    try:
        ticket = find_ticket(session, ref, with_details=with_details)
    except InvalidTicketRefError as exc:
        raise ProblemError(422, "invalid_ticket_id", str(exc)) from None
    except AmbiguousTicketRefError as exc:
        raise ProblemError(409, "ambiguous_ticket_id", str(exc)) from None
    if ticket is None:
        raise ProblemError(404, "ticket_not_found", f"no ticket {ref!r}")
    return ticket
