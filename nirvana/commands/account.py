"""``nirvana login`` and ``nirvana logout``: the token the client and the CLI send with
writes, kept in ``$NIRVANA_HOME/token`` (mode 0600) as huggingface_hub keeps its own.
``NIRVANA_TOKEN`` (or ``--token``) overrides the stored one."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from nirvana import paths
from nirvana.commands._common import fail, reports_errors


@reports_errors
def login(
    token: Annotated[
        str | None,
        typer.Option("--token", help="The token (from `nirvana token create` on the server); asked for when omitted."),
    ] = None,
) -> None:
    """Store an API token for writes (upload, cancel, verify); reads need none."""
    secret = (token if token is not None else typer.prompt("Token", hide_input=True)).strip()
    if not secret or any(c.isspace() for c in secret):
        raise fail("a token is one word without spaces, e.g. nv_...")
    path = paths.write_token_file(paths.home(), secret)
    typer.echo(f"token stored in {path} (readable by you only)")
    if os.environ.get("NIRVANA_TOKEN"):
        typer.echo("note: NIRVANA_TOKEN is set and overrides the stored token", err=True)


@reports_errors
def logout() -> None:
    """Forget the stored token."""
    path = paths.token_file(paths.home())
    if paths.remove_token_file(paths.home()):
        typer.echo(f"removed {path}")
    else:
        typer.echo(f"no token stored ({path} does not exist)", err=True)
    if os.environ.get("NIRVANA_TOKEN"):
        typer.echo("note: NIRVANA_TOKEN is still set in this environment", err=True)


def register(app: typer.Typer) -> None:
    app.command("login")(login)
    app.command("logout")(logout)
