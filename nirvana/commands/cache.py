"""``nirvana cache ls | verify | rm ID | prune``: the client's download cache
(``NIRVANA_CACHE``), looked after without a server."""

from __future__ import annotations

from typing import Annotated

import typer

from nirvana import paths
from nirvana.cache import BlobCache
from nirvana.cache_admin import prune, remove, tickets, verify
from nirvana.commands._common import EXIT_ERROR, reports_errors
from nirvana.commands.tickets import _table

cache_app = typer.Typer(help="The client's download cache (NIRVANA_CACHE).", no_args_is_help=True)


def _cache() -> BlobCache:
    return BlobCache(paths.cache_dir())


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1000:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


@cache_app.command("ls")
@reports_errors
def ls() -> None:
    """The cached tickets: id, task, architecture, size on disk, title."""
    cache = _cache()
    found = tickets(cache)
    if not found:
        typer.echo(f"the cache is empty ({cache.root})", err=True)
        return
    rows = [
        [t.id[:12], t.task, t.architecture, _size(t.size), ("missing " + ",".join(t.missing)) if t.missing else "ok", t.title]
        for t in found
    ]  # fmt: skip
    typer.echo(_table(["ID", "TASK", "ARCHITECTURE", "SIZE", "FILES", "TITLE"], rows))
    typer.echo(f"{len(found)} tickets, {_size(sum(t.size for t in found))} in {cache.root}", err=True)


@cache_app.command("verify")
@reports_errors
def verify_command() -> None:
    """Hash every cached file; remove the corrupt ones (exit 1 if any), which the next
    use downloads again."""
    good, bad = verify(_cache())
    for name in bad.files:
        typer.echo(f"corrupt, removed: {name}")
    typer.echo(f"{len(good)} files intact, {len(bad.files)} corrupt", err=True)
    if bad.files:
        raise typer.Exit(EXIT_ERROR)


@cache_app.command("rm")
@reports_errors
def rm(id: Annotated[str, typer.Argument(help="A cached ticket's id or unique prefix.")]) -> None:
    """Forget one ticket and the files no other cached ticket shares."""
    full, removed = remove(_cache(), id)
    typer.echo(f"removed {full[:12]}: {len(removed.files)} files, {_size(removed.bytes)}")


@cache_app.command("prune")
@reports_errors
def prune_command() -> None:
    """Remove files no cached ticket names (unfinished downloads of forgotten tickets)."""
    removed = prune(_cache())
    typer.echo(f"pruned {len(removed.files)} files, {_size(removed.bytes)}")


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")
