"""Reading tickets: by id or prefix, and filtered, sorted, keyset-paginated lists."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal, Unpack

from sqlalchemy import ColumnElement, Select, func, select, tuple_
from sqlalchemy.orm import Session, joinedload, load_only, selectinload

from db.models.tickets import Ticket

SortKey = Literal["-sparsity", "-accuracy", "-created"]
SORTS: tuple[SortKey, ...] = ("-sparsity", "-accuracy", "-created")
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
    query = select(Ticket)
    if with_details:
        query = query.options(joinedload(Ticket.submitter), selectinload(Ticket.verifications))
    row = _one_by_ref(session, query, ref)
    return None if row is None else row[0]


@dataclass(frozen=True)
class BlobDigests:
    """What a download needs of a ticket: its id and the digests of its files, the
    compact ones None until stored (``api.forms``)."""

    ticket_id: str
    mask_sha256: str
    init_sha256: str
    mask_packed_sha256: str | None
    init_kept_sha256: str | None


def find_blob_digests(session: Session, ref: str) -> BlobDigests | None:
    """``find_ticket`` for downloads: five short columns, not the whole row. Raises
    as ``find_ticket`` does."""
    columns = (Ticket.id, Ticket.mask_sha256, Ticket.init_sha256, Ticket.mask_packed_sha256, Ticket.init_kept_sha256)
    row = _one_by_ref(session, select(*columns), ref)
    return None if row is None else BlobDigests(*row)


def _one_by_ref(session: Session, query: Select[Unpack[tuple[Any, ...]]], ref: str) -> Any:
    """The row of ``query`` whose ticket id is ``ref`` or starts with it, or None."""
    ref = normalise_ref(ref)
    if len(ref) == 64:
        return session.execute(query.where(Ticket.id == ref)).unique().first()
    # A prefix scan on the primary key index; two rows are enough to tell ambiguity.
    rows = session.execute(query.where(Ticket.id.startswith(ref, autoescape=True)).order_by(Ticket.id).limit(2)).unique().all()
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
    max_params: int | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = []
        if self.task is not None:
            clauses.append(Ticket.task == self.task)
        if self.architecture is not None:
            clauses.append(Ticket.architecture == self.architecture)
        if self.tag is not None:
            clauses.append(Ticket.tags.contains([self.tag]))
        if self.max_params is not None:
            clauses.append(Ticket.parameters_kept <= self.max_params)
        # sparsity = 1 - density; filter on the indexed column.
        if self.min_sparsity is not None:
            clauses.append(Ticket.density <= 1 - self.min_sparsity)
        if self.max_sparsity is not None:
            clauses.append(Ticket.density >= 1 - self.max_sparsity)
        if self.verified is not None:
            clauses.append(Ticket.verified.is_(self.verified))
        return clauses


def _sort_columns(sort: SortKey) -> tuple[Any, bool]:
    """(the column keyed on, ascending?) — the id breaks ties in the same direction."""
    return {
        "-sparsity": (Ticket.density, True),
        "-accuracy": (Ticket.accuracy, False),
        "-created": (Ticket.created_at, False),
    }[sort]


def encode_cursor(sort: SortKey, ticket: Ticket) -> str:
    column, _ = _sort_columns(sort)
    value = getattr(ticket, column.key)
    if isinstance(value, dt.datetime):
        value = value.isoformat()
    raw = json.dumps({"s": sort, "v": value, "id": ticket.id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(sort: SortKey, cursor: str) -> tuple[Any, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise TypeError
        if data["s"] != sort:
            raise InvalidCursorError(f"this cursor belongs to sort={data['s']}, not sort={sort}")
        value = _cursor_value(sort, data["v"])
        ticket_id = normalise_ref(data["id"])
    except InvalidCursorError:
        raise
    except (ValueError, TypeError, KeyError, OverflowError, RecursionError, binascii.Error, InvalidTicketRefError):
        raise InvalidCursorError("the cursor is malformed; pass back the next_cursor of a previous page") from None
    return value, ticket_id


# The values the sort columns can hold (density and accuracy are fractions).
_CURSOR_RANGES: dict[str, tuple[float, float]] = {"-sparsity": (0.0, 1.0), "-accuracy": (0.0, 1.0)}


def _cursor_value(sort: SortKey, value: Any) -> Any:
    """The sort key a cursor carries, as the column's type; anything a page could not
    have produced (a boolean, a number beyond a float, a non-finite one) is refused
    here rather than by the database."""
    if sort == "-created":
        return dt.datetime.fromisoformat(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise TypeError
    low, high = _CURSOR_RANGES.get(sort, (-math.inf, math.inf))
    if not low <= value <= high:
        raise ValueError
    return float(value)
# What a list shows (api.schemas.tickets.TicketSummary, the task page): lists load only
# these; the JSON documents (manifest, recipe, layers) are two thirds of a row's bytes.
# Reading another column of a listed ticket raises instead of querying once per row.
SUMMARY_COLUMNS = (
    Ticket.id, Ticket.architecture, Ticket.task, Ticket.init_scheme, Ticket.seed, Ticket.rewind_step,
    Ticket.claimed_accuracy, Ticket.method, Ticket.title, Ticket.tags, Ticket.density, Ticket.remaining,
    Ticket.prunable, Ticket.accuracy, Ticket.verified, Ticket.verified_accuracy, Ticket.winning, Ticket.created_at,
    # The summary sends the digests and the footprint too (api.schemas.tickets.TicketSummary).
    Ticket.mask_digest, Ticket.init_digest, Ticket.init_kept_digest, Ticket.footprint,
)  # fmt: skip


def list_tickets(
    session: Session, filters: TicketFilters, *, sort: SortKey = "-created", limit: int = 50, cursor: str | None = None
) -> tuple[list[Ticket], str | None]:
    """One page of tickets and the cursor of the next page (None on the last)."""
    column, ascending = _sort_columns(sort)
    query: Select[Ticket] = select(Ticket).options(load_only(*SUMMARY_COLUMNS, raiseload=True)).where(*filters.clauses())
    if cursor is not None:
        value, last_id = decode_cursor(sort, cursor)
        key = tuple_(column, Ticket.id)
        query = query.where(key > tuple_(value, last_id) if ascending else key < tuple_(value, last_id))
    order = (column.asc(), Ticket.id.asc()) if ascending else (column.desc(), Ticket.id.desc())
    rows = list(session.scalars(query.order_by(*order).limit(limit + 1)))
    if len(rows) > limit:
        return rows[:limit], encode_cursor(sort, rows[limit - 1])
    return rows, None


def count_by_task(session: Session) -> dict[str, int]:
    rows = session.execute(select(Ticket.task, func.count()).group_by(Ticket.task)).all()
    return {task: count for task, count in rows}
