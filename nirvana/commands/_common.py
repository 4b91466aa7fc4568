"""What the command groups share: options, the client, and error reporting."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from nirvana.errors import NirvanaError, PortInUseError

if TYPE_CHECKING:
    from nirvana.client import Client

F = TypeVar("F", bound=Callable[..., Any])

# Exit codes: 1 an error reported by the server or the client; 2 a usage error (as
# click uses for bad options), which includes a port that is already taken.
EXIT_ERROR = 1
EXIT_USAGE = 2

UrlOption = Annotated[
    str | None,
    typer.Option("--url", envvar="NIRVANA_URL", help="Server URL [default: http://127.0.0.1:8000]", show_default=False),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="NIRVANA_TOKEN", help="API token [default: $NIRVANA_HOME/token]", show_default=False
    ),
]


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print ``message`` on stderr; return the ``typer.Exit`` to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def reports_errors(func: F) -> F:
    """Turn a ``NirvanaError`` raised by a command into a one-line message on stderr
    (its ``detail`` and ``code``) and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PortInUseError as exc:
            raise fail(exc.detail, EXIT_USAGE) from None
        except NirvanaError as exc:
            raise fail(f"{exc.detail} ({exc.code})") from None

    return wrapper  # type: ignore[return-value]


def make_client(url: str | None, token: str | None) -> Client:
    """The client the commands use; imported on first use, so ``nirvana --help`` and
    the commands that need no server do not pay for httpx."""
    from nirvana.client import Client

    return Client(url=url, token=token)
