"""The ``nirvana`` command (also ``python -m nirvana``).

Commands live in :mod:`nirvana.commands`, one module per group (add a module and one
``register`` line below for a new group); what they share is in
:mod:`nirvana.commands._common`. Every ``NirvanaError`` prints
``error: <detail> (<code>)`` on stderr and exits non-zero, without a traceback.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from nirvana.commands import account, cache, cite, data, export, find, openlth, server, tickets, train

__all__ = ["app", "main"]

app = typer.Typer(
    name="nirvana",
    help="Nirvana: an open database of winning lottery tickets, verified by retraining.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from nirvana import __version__

        typer.echo(f"nirvana {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Nirvana: an open database of winning lottery tickets, verified by retraining."""


server.register(app)
tickets.register(app)
find.register(app)
openlth.register(app)
account.register(app)
cache.register(app)
cite.register(app)
data.register(app)
export.register(app)
train.register(app)


def main() -> None:
    """Entry point of ``python -m nirvana``."""
    app(prog_name="nirvana")
    sys.exit(0)
