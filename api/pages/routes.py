"""The HTML pages. Thin like the JSON routes: read through repositories, render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.deps import SessionDep, SettingsDep
from api.pages.charts import Point, learning_curves_chart, sparsity_accuracy_chart
from db.repositories.tickets import (
    AmbiguousTicketRefError,
    InvalidTicketRefError,
    TicketFilters,
    find_ticket,
    list_tickets,
)
from nirvana.lottery.errors import UnknownTaskError
from nirvana.lottery.data.tasks import get_task, is_available, list_tasks
from nirvana.lottery.tickets.citation import TicketCitation, verdict_words

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
LEADERBOARD_SIZE = 200


def _not_found(request: Request, what: str) -> HTMLResponse:
    return templates.TemplateResponse(request, "not_found.html", {"what": what}, status_code=404)


@router.get("/", response_class=HTMLResponse)
def tasks_page(request: Request, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    counts = request.app.state.ticket_counts.get(session)
    tasks = [
        {"spec": spec, "available": is_available(spec.name, settings.task_data_dir), "count": counts.get(spec.name, 0)}
        for spec in list_tasks()
    ]
    return templates.TemplateResponse(request, "tasks.html", {"tasks": tasks})


@router.get("/tasks/{name}", response_class=HTMLResponse)
def task_page(request: Request, name: str, session: SessionDep, verified: bool | None = None) -> HTMLResponse:
    try:
        spec = get_task(name)
    except UnknownTaskError:
        return _not_found(request, f"task {name!r}")
    tickets, _ = list_tickets(session, TicketFilters(task=name, verified=verified), sort="-sparsity", limit=LEADERBOARD_SIZE)
    points = [
        Point(t.density, t.accuracy, f"{t.short_id}: {t.density:.1%} weights, {t.accuracy:.1%}", f"/tickets/{t.id}", t.verified)
        for t in tickets
    ]
    chart = sparsity_accuracy_chart(points) if points else None
    return templates.TemplateResponse(
        request, "task.html", {"spec": spec, "tickets": tickets, "chart": chart, "verified": verified}
    )


@router.get("/tickets/{ref}", response_class=HTMLResponse)
def ticket_page(request: Request, ref: str, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    try:
        ticket = find_ticket(session, ref, with_details=True)
    except (InvalidTicketRefError, AmbiguousTicketRefError):
        ticket = None
    if ticket is None:
        return _not_found(request, f"ticket {ref!r}")
    runs: list[dict[str, Any]] = []
    for verification in reversed(ticket.verifications):
        result = verification.result or {}
        curves = {name: run["curve"] for name, run in result.get("runs", {}).items() if run.get("curve")}
        runs.append(
            {"verification": verification, "result": result, "chart": learning_curves_chart(curves) if curves else None}
        )
    # The snippet and the citation name this server, as people reach it.
    server = (settings.public_url or str(request.base_url)).rstrip("/")
    citation = TicketCitation(
        id=ticket.id, task=ticket.task, architecture=ticket.architecture, url=server, title=ticket.title,
        verdict=verdict_words(winning=ticket.winning, verified=ticket.verified),
        author=ticket.submitter.name, year=ticket.created_at.year,
    )  # fmt: skip
    return templates.TemplateResponse(
        request, "ticket.html", {"ticket": ticket, "runs": runs, "server": server, "bibtex": citation.bibtex()}
    )
