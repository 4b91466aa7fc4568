"""The HTML pages. Thin like the JSON routes: read through repositories, render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.deps import SessionDep, SettingsDep
from api.pages.charts import COLORS
from api.pages.views import LABELS, result_view, task_view
from db.repositories.tickets import (
    AmbiguousTicketRefError,
    InvalidTicketRefError,
    TicketFilters,
    count_by_task,
    find_ticket,
    list_tickets,
)
from db.repositories.verifications import latest_states
from nirvana.lottery.errors import UnknownTaskError
from nirvana.lottery.data.tasks import get_task, is_available, list_tasks

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
LEADERBOARD_SIZE = 200


def _not_found(request: Request, what: str) -> HTMLResponse:
    return templates.TemplateResponse(request, "not_found.html", {"what": what}, status_code=404)


@router.get("/", response_class=HTMLResponse)
def tasks_page(request: Request, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    counts = count_by_task(session)
    tasks = [
        {"spec": spec, "available": is_available(spec.name, settings.data_dir), "count": counts.get(spec.name, 0)}
        for spec in list_tasks()
    ]
    return templates.TemplateResponse(request, "tasks.html", {"tasks": tasks})


@router.get("/tasks/{name}", response_class=HTMLResponse)
def task_page(request: Request, name: str, session: SessionDep, verified: bool | None = None) -> HTMLResponse:
    try:
        spec = get_task(name)
    except UnknownTaskError:
        return _not_found(request, f"task {name!r}")
    tickets, _ = list_tickets(session, TicketFilters(task=name, verified=verified), sort="rank", limit=LEADERBOARD_SIZE)
    view = task_view(tickets, latest_states(session, [t.id for t in tickets if t.verdict is None], name))
    return templates.TemplateResponse(request, "task.html", {"spec": spec, "verified": verified, **view})


@router.get("/tickets/{ref}", response_class=HTMLResponse)
def ticket_page(request: Request, ref: str, session: SessionDep) -> HTMLResponse:
    try:
        ticket = find_ticket(session, ref, with_details=True)
    except (InvalidTicketRefError, AmbiguousTicketRefError):
        ticket = None
    if ticket is None:
        return _not_found(request, f"ticket {ref!r}")
    runs: list[dict[str, Any]] = []
    for verification in reversed(ticket.verifications):
        result = verification.result or {}
        runs.append({"verification": verification, "result": result, "view": result_view(result) if result else None})
    # A page with a verification under way reloads itself until it is done.
    live = any(not v.finished for v in ticket.verifications)
    return templates.TemplateResponse(
        request, "ticket.html", {"ticket": ticket, "runs": runs, "live": live, "labels": LABELS, "colors": COLORS}
    )
