"""``nirvana export ID --hf --to DIR``: a ticket in a form other tools take.

The command's body only picks the exporter for each format flag asked for; each format
is one small function here, and the work is in a library module (``--hf``:
:mod:`nirvana.hub_export`). A new format is a flag, a function, and one entry in
``_exporters``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from nirvana.commands._common import EXIT_USAGE, UrlOption, fail, make_client, reports_errors
from nirvana.commands.tickets import IdArgument

if TYPE_CHECKING:
    from nirvana.client import Client

Exporter = Callable[["Client", str, Path], Path]


def _export_hf(hub_namespace: str | None) -> Exporter:
    def run(client: Client, id: str, out: Path) -> Path:
        from nirvana.commands.cite import ticket_citation
        from nirvana.hub_export import export_hf

        citation = ticket_citation(client.ticket(id), client.url)
        return export_hf(client, id, out, citation=citation, hub_namespace=hub_namespace)

    return run


@reports_errors
def export(
    id: IdArgument,
    to: Annotated[Path, typer.Option("--to", help="The folder to write (created if needed).")],
    hf: Annotated[
        bool, typer.Option("--hf", help="A Hugging Face Hub folder: model.safetensors, mask.safetensors, config.json, README.md.")
    ] = False,
    hub_namespace: Annotated[
        str | None,
        typer.Option("--hub-namespace", help="[--hf] Hub user/org the tickets go under; names a parent ticket as base_model."),
    ] = None,
    url: UrlOption = None,
) -> None:
    """Export a ticket for other tools (choose a format flag)."""
    exporters = _exporters(hf=hf, hub_namespace=hub_namespace)
    if not exporters:
        raise fail("choose a format: --hf", EXIT_USAGE)
    with make_client(url, None) as client:
        for name, exporter in exporters.items():
            folder = exporter(client, id, to)
            typer.echo(f"{name}: {folder}")


def _exporters(*, hf: bool, hub_namespace: str | None) -> dict[str, Exporter]:
    """The exporters the flags ask for, by format name."""
    chosen: dict[str, Exporter] = {}
    if hf:
        chosen["hf"] = _export_hf(hub_namespace)
    return chosen


def register(app: typer.Typer) -> None:
    app.command("export")(export)
