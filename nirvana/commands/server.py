"""The service's commands (``serve``, ``api``, ``worker``, ``migrate``, ``gc``, ``token``)
when the service is on the path, else one line saying how to get it.

The library is what ``pip install nirvana`` brings; the service (``api``, ``db``,
``worker``, ``service``) runs from the repository, whose ``make serve`` puts it on the
path. This module is the one seam between the two: it imports the service by name at
run time, so the library never depends on it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

import typer

from nirvana.commands._common import EXIT_USAGE, fail

SERVICE_MODULE = "service.cli"
SERVICE_COMMANDS = ("serve", "api", "worker", "migrate", "gc", "token")
HOW_TO_GET_THE_SERVER = (
    "the Nirvana server is not part of the library: clone the repository and run "
    "`make serve` there (it installs the server's dependencies and starts everything)"
)


def _service_cli() -> ModuleType | None:
    """The service's CLI module, or None when this is a library-only install."""
    try:
        return importlib.import_module(SERVICE_MODULE)
    except ModuleNotFoundError as exc:
        # Only a missing service (or one of its dependencies) means "not installed";
        # an import error inside the service is a bug and must surface.
        if exc.name is None or exc.name.split(".")[0] not in _SERVICE_ROOTS:
            raise
        return None


_SERVICE_ROOTS = {"service", "api", "db", "worker", "fastapi", "sqlalchemy", "psycopg", "alembic", "uvicorn", "pgserver", "pydantic_settings", "starlette"}


def _server_missing(name: str) -> Callable[[], None]:
    def command() -> None:
        raise fail(HOW_TO_GET_THE_SERVER, EXIT_USAGE)

    command.__doc__ = f"[server] `nirvana {name}` needs the server: clone the repository and run `make serve`."
    return command


def register(app: typer.Typer) -> None:
    service_cli = _service_cli()
    if service_cli is not None:
        service_cli.register(app)
        return
    for name in SERVICE_COMMANDS:
        app.command(name, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(_server_missing(name))
