"""Finding the database: the one way every command (serve, api, worker, migrate,
token) does it.

With ``DATABASE_URL`` set, that server is used as is. Without it, Nirvana runs a
private PostgreSQL in ``$NIRVANA_HOME/pg`` with the binaries the ``pgserver`` package
ships. pgserver keeps, in the data directory, the list of processes that use a server:
the first one starts it, later ones (``nirvana token create`` in a second terminal
while ``nirvana serve`` runs) attach to it, and the last one to close stops it.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from db.settings import normalise_database_url
from nirvana import paths

log = logging.getLogger(__name__)

# pgserver's file, in the data directory, listing the pids of the processes attached.
_HANDLE_PIDS = ".handle_pids.json"


@dataclass
class DatabaseHandle:
    """A database to use, and what to release when done.

    Attributes:
        url: a SQLAlchemy URL on the psycopg 3 driver (``postgresql+psycopg://...``).
        embedded: True when it is the private server in ``$NIRVANA_HOME/pg``.
        data_dir: that server's data directory (None for ``DATABASE_URL``).
    """

    url: str
    embedded: bool = False
    data_dir: Path | None = None
    _server: Any = field(default=None, repr=False)

    def close(self) -> None:
        """Detach from the embedded server, stopping it if no other process uses it.

        Idempotent; a no-op for ``DATABASE_URL``. Close every engine on ``url`` first:
        the server waits for its connections to end before it stops."""
        server, self._server = self._server, None
        if server is None:
            return
        server.cleanup()
        # pgserver keeps a per-process cache of handles and only drops an entry when the
        # server stops; drop ours so a later find_database in this process re-attaches.
        type(server)._instances.pop(server.pgdata, None)

    def __enter__(self) -> DatabaseHandle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def find_database(home: str | Path | None = None, *, environ: Mapping[str, str] | None = None) -> DatabaseHandle:
    """The database this process should use.

    Args:
        home: ``NIRVANA_HOME`` (default: the environment variable, else the user's data
            directory); the embedded server lives in ``home / "pg"``.
        environ: where to read ``DATABASE_URL`` (default ``os.environ``).

    Returns:
        A handle whose ``url`` is ``DATABASE_URL`` normalised to psycopg 3 when that is
        set, else the URL of the embedded server, started if no process runs it yet.
        Call ``close()`` (or use it as a context manager) when done.
    """
    env = os.environ if environ is None else environ
    url = env.get("DATABASE_URL") or env.get("NIRVANA_DATABASE_URL")
    if url:
        return DatabaseHandle(url=normalise_database_url(url))
    return _embedded(paths.home(home))


def _embedded(root: Path) -> DatabaseHandle:
    # pgserver is slow to import and only needed here. Importing it computes a runtime
    # dir, and platformdirs warns on every command where XDG_RUNTIME_DIR is unset
    # (containers, sudo); the fallback it picks is fine, so keep the terminal quiet.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver.postgres_server import PostgresServer

    data_dir = paths.pg_dir(root).expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    _forget_dead_users(data_dir, PostgresServer)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")  # type: ignore[attr-defined]
    uri: str = server.get_uri()
    return DatabaseHandle(url=normalise_database_url(uri), embedded=True, data_dir=data_dir, _server=server)


def _forget_dead_users(data_dir: Path, server_cls: Any) -> None:
    """Drop the pids of processes that died without detaching (SIGKILL, power loss).

    pgserver stops the server only when its list of users empties; one stale pid would
    keep every later server running forever. Done under pgserver's own lock."""
    path = data_dir / _HANDLE_PIDS
    with server_cls._lock:
        try:
            pids = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return
        alive = [pid for pid in pids if _alive(int(pid))]
        if alive != pids:
            log.info("forgetting dead users of %s: %s", data_dir, sorted(set(pids) - set(alive)))
            path.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
