"""Resolving a ticket reference in a URL, with the API's errors."""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.errors import ProblemError
from db.models.tickets import Ticket
from db.repositories.tickets import AmbiguousTicketRefError, InvalidTicketRefError, find_ticket


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
