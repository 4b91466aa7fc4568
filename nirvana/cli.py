"""The ``nirvana`` command (also ``python -m nirvana``).

Commands live in :mod:`nirvana.commands`, one module per group (add a module and one
``register`` line below for a new group); what they share is in
:mod:`nirvana.commands._common`. Every ``NirvanaError`` prints
``error: <detail> (<code>)`` on stderr and exits non-zero, without a traceback.
"""

from __future__ import annotations

import sys

import typer

from nirvana.commands import export, find, openlth, server, tickets, train
from nirvana.commands._common import EXIT_ERROR, EXIT_USAGE

__all__ = ["EXIT_ERROR", "EXIT_USAGE", "app", "main"]

app = typer.Typer(
    name="nirvana",
    help="Nirvana: an open database of winning lottery tickets, verified by retraining.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


server.register(app)
tickets.register(app)
find.register(app)
openlth.register(app)
export.register(app)
train.register(app)


def main() -> None:
    """Entry point of ``python -m nirvana``."""
    app(prog_name="nirvana")
    sys.exit(0)
