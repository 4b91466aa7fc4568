"""``nirvana import-openlth``: turn an OpenLTH lottery run into ticket folders, offline.

The conversion itself is :func:`nirvana.lottery.interop.openlth.import_run`; this module only maps its
errors to the CLI's one-line ``error: <detail> (<code>)`` and prints what it wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nirvana.commands._common import fail, reports_errors


@reports_errors
def import_openlth(
    run_dir: Annotated[
        Path, typer.Argument(help="An OpenLTH run: lottery_<hash>/ (every replicate) or one replicate_<r>/.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the ticket folders in.")] = Path("tickets"),
    replicate: Annotated[int | None, typer.Option(help="Only this replicate.")] = None,
) -> None:
    """Convert every level of an OpenLTH lottery run into a ticket folder (nothing is
    written unless every level validates). Push them with `nirvana push`."""
    from nirvana.lottery.errors import LotteryError
    from nirvana.lottery.interop.openlth import import_run

    try:
        folders = import_run(run_dir, out, replicate=replicate)
    except LotteryError as exc:
        raise fail(f"{exc.detail} ({exc.code})") from None
    for folder in folders:
        typer.echo(str(folder))
    typer.echo(f"{len(folders)} ticket folder(s) written; upload with: nirvana push <folder>", err=True)


def register(app: typer.Typer) -> None:
    app.command("import-openlth")(import_openlth)
