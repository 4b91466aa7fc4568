"""Tickets: upload, list by task with filters and keyset pagination, read one."""

from __future__ import annotations

from typing import Annotated

import torch
from fastapi import APIRouter, File, Query, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from api.deps import SessionDep, SettingsDep, StorageDep, WriterDep
from api.errors import ProblemError
from api.links import same_route_url
from api.openapi import problems
from api.schemas.tickets import TicketPage, TicketRead, TicketSummary
from api.submissions import submit_ticket, validate_upload
from api.tickets import TicketRef, ticket_or_404
from db.models.tickets import Ticket
from db.repositories.tickets import SORTS, VERDICT_FILTERS, InvalidCursorError, TicketFilters, list_tickets
from nirvana.lottery.data.tasks import get_task, list_tasks
from nirvana.lottery.models.architectures import build_model

router = APIRouter(tags=["tickets"])

MAX_PAGE = 200
# PostgreSQL text cannot hold U+0000: such a filter is refused here, not by the database.
FilterText = Annotated[str | None, Query(min_length=1, max_length=100, pattern=r"^[^\x00]+$")]


@router.post(
    "/tickets",
    response_model=TicketRead,
    status_code=201,
    responses={200: {"description": "The same ticket was already stored; nothing new was created."}, **problems(400, 403)},
)
async def upload_ticket(
    request: Request,
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
    prepared = await validate_upload(
        request.app.state.validation_limiter,
        manifest=await manifest.read(),
        mask=await mask.read(),
        init=await init.read() if init is not None else None,
        max_steps=settings.max_steps,
        max_examples=settings.max_examples,
    )
    submission = await run_in_threadpool(submit_ticket, session, storage, token=token, prepared=prepared)
    response.headers["Location"] = f"/api/v1/tickets/{submission.ticket.id}"
    if not submission.created:
        response.status_code = 200
    return submission.ticket


@router.get("/tickets", response_model=TicketPage, responses=problems(400))
def read_tickets(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    # The tasks are a fixed registry, so the schema lists them; architecture names are
    # parametric (lenet_<widths>): an unknown one is a 422 the schema cannot foresee.
    task: Annotated[
        str | None,
        Query(min_length=1, max_length=100, pattern=r"^[^\x00]+$", json_schema_extra={"enum": [t.name for t in list_tasks()]}),
    ] = None,
    arch: FilterText = None,
    tag: FilterText = None,
    min_sparsity: Annotated[float | None, Query(ge=0, le=1)] = None,
    max_sparsity: Annotated[float | None, Query(ge=0, le=1)] = None,
    verified: bool | None = None,
    max_params: Annotated[int | None, Query(ge=0, description="at most this many parameters kept (footprint.parameters_kept)")] = None,
    verdict: Annotated[
        str | None, Query(description=f"one of {', '.join(VERDICT_FILTERS)}", json_schema_extra={"enum": list(VERDICT_FILTERS)})
    ] = None,
    sort: Annotated[str, Query(description=f"one of {', '.join(SORTS)}", json_schema_extra={"enum": list(SORTS)})] = "-created",
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
        verified=verified, verdict=verdict, max_params=max_params,
    )  # fmt: skip
    try:
        rows, next_cursor = list_tickets(session, filters, sort=sort, limit=limit, cursor=cursor)
    except InvalidCursorError as exc:
        raise ProblemError(400, "invalid_cursor", str(exc)) from None
    if next_cursor is not None:
        next_url = same_route_url(request, settings.public_url, cursor=next_cursor)
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


@router.get("/tickets/{ref}", response_model=TicketRead, responses=problems(404, 409))
def read_ticket(ref: TicketRef, session: SessionDep) -> Ticket:
    """Everything about one ticket, by full id or a unique prefix of >= 12 hex chars."""
    return ticket_or_404(session, ref, with_details=True)
