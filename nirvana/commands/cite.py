"""``nirvana cite ID``: the ticket's BibTeX entry, as its page shows it."""

from __future__ import annotations

import typer

from nirvana.commands._common import UrlOption, make_client, reports_errors
from nirvana.commands.tickets import IdArgument
from nirvana.hub_types import TicketInfo
from nirvana.lottery.tickets.citation import TicketCitation, verdict_words


def ticket_citation(ticket: TicketInfo, server: str) -> TicketCitation:
    """The citation of ``ticket`` as held by the server at ``server``."""
    verdict = (ticket.model_extra or {}).get("verdict")  # sent by servers that name verdicts
    return TicketCitation(
        id=ticket.id, task=ticket.task, architecture=ticket.architecture, url=server, title=ticket.title,
        verdict=verdict_words(winning=ticket.winning, verified=ticket.verified, verdict=verdict if isinstance(verdict, str) else None),
        author=ticket.submitter or "", year=ticket.created_at.year if ticket.created_at else None,
    )  # fmt: skip


@reports_errors
def cite(id: IdArgument, url: UrlOption = None) -> None:
    """Print a BibTeX entry for a ticket (its id, task, architecture, verdict, URL)."""
    with make_client(url, None) as client:
        ticket = client.ticket(id)
        server = client.url
    typer.echo(ticket_citation(ticket, server).bibtex(), nl=False)


def register(app: typer.Typer) -> None:
    app.command("cite")(cite)
