"""Tickets: upload, list by task with filters and keyset pagination, read one."""

from __future__ import annotations

from typing import Annotated

import torch
from fastapi import APIRouter, File, Query, Request, Response, UploadFile

from api.deps import SessionDep, SettingsDep, StorageDep, WriterDep
from api.errors import ProblemError
from api.schemas.tickets import TicketPage, TicketRead, TicketSummary
from api.submissions import submit_ticket
from api.tickets import ticket_or_404
from db.models.tickets import Ticket
from db.repositories.tickets import SORTS, VERDICT_FILTERS, InvalidCursorError, TicketFilters, list_tickets
from nirvana.lottery.data.tasks import get_task
from nirvana.lottery.models.architectures import build_model

router = APIRouter(tags=["tickets"])

MAX_PAGE = 200


@router.post(
    "/tickets",
    response_model=TicketRead,
    status_code=201,
    responses={200: {"description": "The same ticket was already stored; nothing new was created."}},
)
def upload_ticket(
    response: Response,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    token: WriterDep,
    manifest: Annotated[UploadFile, File(description="ticket.json: architecture, task, init, recipe, claimed, ...")],
    mask: Annotated[UploadFile, File(description="mask.safetensors: one BOOL tensor per prunable parameter")],
    init: Annotated[UploadFile | None, File(description="init.safetensors; required when rewind_step > 0")] = None,
) -> Ticket:
    """Store a ticket and queue its verification in the same transaction (201). The
    same ticket again answers 200 with the stored one."""
    submission = submit_ticket(
        session,
        storage,
        token=token,
        manifest=manifest.file.read(),
        mask=mask.file.read(),
        init=init.file.read() if init is not None else None,
        max_steps=settings.max_steps,
    )
    response.headers["Location"] = f"/api/v1/tickets/{submission.ticket.id}"
    if not submission.created:
        response.status_code = 200
    return submission.ticket


@router.get("/tickets", response_model=TicketPage)
def read_tickets(
    request: Request,
    response: Response,
    session: SessionDep,
    task: str | None = None,
    arch: str | None = None,
    tag: str | None = None,
    min_sparsity: Annotated[float | None, Query(ge=0, le=1)] = None,
    max_sparsity: Annotated[float | None, Query(ge=0, le=1)] = None,
    verified: bool | None = None,
    verdict: Annotated[str | None, Query(description=f"one of {', '.join(VERDICT_FILTERS)}")] = None,
    sort: Annotated[str, Query(description=f"one of {', '.join(SORTS)}")] = "-created",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: str | None = None,
) -> TicketPage:
    """Tickets matching every filter given, one page at a time. Pass ``next_cursor``
    back as ``cursor`` (or follow the ``Link: rel="next"`` header).

    ``sort=rank`` puts winning tickets first, then not winning, pending and not
    reproduced, sparsest first within each. A task or architecture that does not exist
    or an unknown verdict is a 422 problem (``unknown_task``, ``unknown_architecture``,
    ``invalid_verdict``), never an empty list."""
    if sort not in SORTS:
        raise ProblemError(422, "invalid_sort", f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
    _check_filters(task, arch, verdict)
    filters = TicketFilters(
        task=task, architecture=arch, tag=tag, min_sparsity=min_sparsity, max_sparsity=max_sparsity,
        verified=verified, verdict=verdict,
    )  # fmt: skip
    try:
        rows, next_cursor = list_tickets(session, filters, sort=sort, limit=limit, cursor=cursor)
    except InvalidCursorError as exc:
        raise ProblemError(400, "invalid_cursor", str(exc)) from None
    if next_cursor is not None:
        next_url = request.url.include_query_params(cursor=next_cursor)
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return TicketPage(items=[TicketSummary.model_validate(row) for row in rows], next_cursor=next_cursor)


def _check_filters(task: str | None, arch: str | None, verdict: str | None) -> None:
    """Raise the 422 problem of a filter value that names nothing."""
    if verdict is not None and verdict not in VERDICT_FILTERS:
        raise ProblemError(422, "invalid_verdict", f"verdict must be one of {', '.join(VERDICT_FILTERS)}, not {verdict!r}")
    if task is not None:
        get_task(task)  # UnknownTaskError: a 422 problem with code unknown_task
    if arch is not None:
        # Names are parametric (lenet_<widths>): parse by building on the meta device
        # (no memory, no init), any image size every family accepts.
        with torch.device("meta"):
            build_model(arch, (3, 32, 32), 10)  # UnknownArchitectureError: unknown_architecture


@router.get("/tickets/{ref}", response_model=TicketRead)
def read_ticket(ref: str, session: SessionDep) -> Ticket:
    """Everything about one ticket, by full id or a unique prefix of >= 12 hex chars."""
    return ticket_or_404(session, ref, with_details=True)
