"""Reading tickets: by id or prefix, and filtered, sorted, keyset-paginated lists."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, case, func, select, tuple_
from sqlalchemy.orm import Session, joinedload, selectinload

from db.models.tickets import Ticket

SortKey = Literal["sparsity", "-sparsity", "accuracy", "-accuracy", "created", "-created", "rank"]
SORTS: tuple[SortKey, ...] = ("sparsity", "-sparsity", "accuracy", "-accuracy", "created", "-created", "rank")
#: ``verdict=`` filter values: a verdict, or ``pending`` (none yet).
VERDICT_FILTERS = ("winning", "not_winning", "not_reproduced", "pending")
#: ``rank``: winning first, then not winning, pending, not reproduced; sparsest first within each.
_RANKS = {"winning": 0, "not_winning": 1, "not_reproduced": 3}
_RANK = case(_RANKS, value=Ticket.verdict, else_=2)
MIN_PREFIX = 12
_HEX = re.compile(r"^[0-9a-f]+$")


class InvalidTicketRefError(ValueError):
    """Not a hex id or a prefix of at least 12 hex characters."""


class AmbiguousTicketRefError(LookupError):
    """The prefix names more than one ticket."""


class InvalidCursorError(ValueError):
    pass


def normalise_ref(ref: str) -> str:
    ref = ref.strip().lower()
    if not (MIN_PREFIX <= len(ref) <= 64) or not _HEX.match(ref):
        raise InvalidTicketRefError(
            f"{ref!r} is not a ticket id: give the 64 hex characters or a unique prefix of at least {MIN_PREFIX}"
        )
    return ref


def find_ticket(session: Session, ref: str, *, with_details: bool = False) -> Ticket | None:
    """The ticket whose id is ``ref`` or starts with it; None if there is none.

    Raises ``InvalidTicketRefError`` for a malformed ref and ``AmbiguousTicketRefError``
    when a prefix matches several tickets.
    """
    ref = normalise_ref(ref)
    query = select(Ticket)
    if with_details:
        query = query.options(joinedload(Ticket.submitter), selectinload(Ticket.verifications))
    if len(ref) == 64:
        return session.scalar(query.where(Ticket.id == ref))
    # A prefix scan on the primary key index; two rows are enough to tell ambiguity.
    rows = session.scalars(query.where(Ticket.id.startswith(ref, autoescape=True)).order_by(Ticket.id).limit(2)).all()
    if len(rows) > 1:
        raise AmbiguousTicketRefError(f"the prefix {ref!r} matches more than one ticket; give more characters")
    return rows[0] if rows else None


@dataclass(frozen=True)
class TicketFilters:
    task: str | None = None
    architecture: str | None = None
    tag: str | None = None
    min_sparsity: float | None = None
    max_sparsity: float | None = None
    verified: bool | None = None
    verdict: str | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = []
        if self.task is not None:
            clauses.append(Ticket.task == self.task)
        if self.architecture is not None:
            clauses.append(Ticket.architecture == self.architecture)
        if self.tag is not None:
            clauses.append(Ticket.tags.contains([self.tag]))
        # sparsity = 1 - density; filter on the indexed column.
        if self.min_sparsity is not None:
            clauses.append(Ticket.density <= 1 - self.min_sparsity)
        if self.max_sparsity is not None:
            clauses.append(Ticket.density >= 1 - self.max_sparsity)
        if self.verified is not None:
            clauses.append(Ticket.verified.is_(self.verified))
        if self.verdict == "pending":
            clauses.append(Ticket.verdict.is_(None))
        elif self.verdict is not None:
            clauses.append(Ticket.verdict == self.verdict)
        return clauses


def _sort_columns(sort: SortKey) -> tuple[list[Any], bool]:
    """(the columns keyed on, ascending?) — the id breaks ties in the same direction."""
    table: dict[str, tuple[list[Any], bool]] = {
        "sparsity": ([Ticket.density], False),
        "-sparsity": ([Ticket.density], True),
        "accuracy": ([Ticket.accuracy], True),
        "-accuracy": ([Ticket.accuracy], False),
        "created": ([Ticket.created_at], True),
        "-created": ([Ticket.created_at], False),
        "rank": ([_RANK, Ticket.density], True),
    }
    return table[sort]


def _rank_of(verdict: str | None) -> int:
    return _RANKS.get(verdict or "", 2)


def encode_cursor(sort: SortKey, ticket: Ticket) -> str:
    value: Any
    if sort == "rank":
        value = [_rank_of(ticket.verdict), ticket.density]
    else:
        value = getattr(ticket, _sort_columns(sort)[0][0].key)
    if isinstance(value, dt.datetime):
        value = value.isoformat()
    raw = json.dumps({"s": sort, "v": value, "id": ticket.id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(sort: SortKey, cursor: str) -> tuple[Any, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        if data["s"] != sort:
            raise InvalidCursorError(f"this cursor belongs to sort={data['s']}, not sort={sort}")
        value = data["v"]
        if sort in ("created", "-created"):
            value = dt.datetime.fromisoformat(value)
        elif sort == "rank":
            rank, density = value
            if not isinstance(rank, int) or not isinstance(density, (int, float)):
                raise TypeError
            value = (rank, density)
        elif not isinstance(value, (int, float)):
            raise TypeError
        ticket_id = normalise_ref(data["id"])
    except InvalidCursorError:
        raise
    except (ValueError, TypeError, KeyError, binascii.Error, InvalidTicketRefError):
        raise InvalidCursorError("the cursor is malformed; pass back the next_cursor of a previous page") from None
    return value, ticket_id


def list_tickets(
    session: Session, filters: TicketFilters, *, sort: SortKey = "-created", limit: int = 50, cursor: str | None = None
) -> tuple[list[Ticket], str | None]:
    """One page of tickets and the cursor of the next page (None on the last)."""
    columns, ascending = _sort_columns(sort)
    query: Select[Ticket] = select(Ticket).where(*filters.clauses())
    if cursor is not None:
        value, last_id = decode_cursor(sort, cursor)
        values = value if sort == "rank" else (value,)
        key = tuple_(*columns, Ticket.id)
        query = query.where(key > tuple_(*values, last_id) if ascending else key < tuple_(*values, last_id))
    keys = [*columns, Ticket.id]
    order = [k.asc() if ascending else k.desc() for k in keys]
    rows = list(session.scalars(query.order_by(*order).limit(limit + 1)))
    if len(rows) > limit:
        return rows[:limit], encode_cursor(sort, rows[limit - 1])
    return rows, None


def count_by_task(session: Session) -> dict[str, int]:
    rows = session.execute(select(Ticket.task, func.count()).group_by(Ticket.task)).all()
    return {task: count for task, count in rows}
