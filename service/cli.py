"""Commands that run the service or touch its database directly: ``serve``, ``api``,
``worker``, ``migrate``, ``gc``, ``token create``. Each finds the database with
:func:`service.database.find_database` and so needs no server running."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.exc import OperationalError

from nirvana.commands._common import fail, reports_errors

F = TypeVar("F", bound=Callable[..., Any])

HostOption = Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0: every interface).")]
PortOption = Annotated[int, typer.Option(help="TCP port to listen on.")]

def reports_database_errors(func: F) -> F:
    """``reports_errors``, and a database that is not there in one line: an operator's
    mistake, not a bug."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OperationalError as exc:
            reason = str(exc.orig or exc).strip().splitlines()[0]
            raise fail(f"cannot use the database: {reason} (database_unavailable)") from None

    return reports_errors(wrapper)  # type: ignore[return-value]


token_app = typer.Typer(help="Create API tokens.", no_args_is_help=True)


@reports_database_errors
def serve_command(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    workers: Annotated[int, typer.Option(min=0, help="Verification workers to start.")] = 1,
) -> None:
    """Run everything: database (embedded unless DATABASE_URL), migrations, API, workers."""
    from service.serve import serve

    serve(host=host, port=port, workers=workers)


@reports_database_errors
def api_command(host: HostOption = "127.0.0.1", port: PortOption = 8000) -> None:
    """Serve the HTTP API only (no migrations, no workers), e.g. under docker-compose."""
    from service.serve import run_api

    run_api(host=host, port=port)


@reports_database_errors
def worker_command() -> None:
    """Run one verification worker until Ctrl-C or SIGTERM."""
    from service.database import find_database
    from service.serve import configure_logging
    from worker.main import run_worker
    from worker.settings import WorkerSettings

    configure_logging()

    with find_database() as handle:
        settings = WorkerSettings(database_url=handle.url)
        typer.echo(f"nirvana worker {settings.worker_id}: waiting for verifications", err=True)
        # run_worker turns SIGINT/SIGTERM into a graceful stop: a job in progress is
        # handed back to the queue.
        run_worker(settings)


@reports_database_errors
def migrate_command() -> None:
    """Apply the database migrations (idempotent)."""
    from service.database import find_database
    from service.serve import migrate

    with find_database() as handle:
        migrate(handle.url)
    typer.echo("database is at the newest migration")


@reports_database_errors
def gc_command(
    grace_minutes: Annotated[float, typer.Option(min=0, help="Keep blobs younger than this (uploads in flight).")] = 60,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would go.")] = False,
) -> None:
    """Remove blobs no ticket references (and files an interrupted upload left)."""
    import datetime as dt

    from db.blobs import make_storage
    from db.garbage import collect_garbage
    from db.session import one_transaction
    from db.settings import StorageSettings
    from service.database import find_database

    with find_database() as handle:
        settings = StorageSettings(database_url=handle.url)
        with one_transaction(settings.database_url) as session:
            report = collect_garbage(
                session, make_storage(settings.blob_config), grace=dt.timedelta(minutes=grace_minutes), dry_run=dry_run
            )
    for sha in report.unreferenced_rows + report.orphan_files:
        typer.echo(sha)
    verb = "would remove" if dry_run else "removed"
    typer.echo(f"{verb} {len(report.unreferenced_rows)} unreferenced and {len(report.orphan_files)} orphaned blobs", err=True)


@token_app.command("create")
@reports_database_errors
def token_create(
    name: Annotated[str, typer.Option(help="A label for the token, e.g. the machine it is for.")],
    user: Annotated[str, typer.Option(help="The user the token acts as (created if new).")] = "local",
    scope: Annotated[
        list[str] | None,
        typer.Option(help="Scope to grant (read, write, verify; admin: all, on anyone's verifications); repeat for several."),
    ] = None,
) -> None:
    """Create an API token and print its secret, once."""
    from db.session import one_transaction
    from db.tokens import create_token
    from service.database import find_database

    scopes = tuple(scope) if scope else ("read", "write")
    with find_database() as handle, one_transaction(handle.url) as session:
        try:
            _, secret = create_token(session, user_name=user, token_name=name, scopes=scopes)
        except ValueError as exc:  # unknown scope
            raise typer.BadParameter(str(exc), param_hint="--scope") from None
    typer.echo(secret)
    typer.echo(
        f"token {name!r} for user {user!r} with scopes {', '.join(scopes)}. "
        "Store it now: it cannot be shown again.",
        err=True,
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
    app.command("api")(api_command)
    app.command("worker")(worker_command)
    app.command("migrate")(migrate_command)
    app.command("gc")(gc_command)
    app.add_typer(token_app, name="token")
