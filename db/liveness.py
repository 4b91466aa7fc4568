"""Knowing quickly that PostgreSQL stopped answering, and failing fast while it does.

A server that restarts refuses connections, which psycopg reports at once. A server that
is frozen (SIGSTOP, a stalled VM, a network partition) answers nothing, and every
timeout libpq offers is blind to it: ``statement_timeout`` runs on the frozen server,
``connect_timeout`` is at least 2 s, and the kernel still acknowledges the TCP traffic.
So a ``DatabaseMonitor`` asks the postmaster itself, several times a second, the
cheapest question it answers (an SSLRequest, 8 bytes; the reply is one byte, before
any authentication). When it does not answer within ``probe_timeout``:

- every connection the engine holds is shut down (``socket.shutdown``), so the threads
  blocked on them get a disconnect error now instead of when the server wakes up;
- new connections are refused at once (``DatabaseUnavailableError``) until a probe is
  answered again.

Either way the caller sees a ``sqlalchemy.exc.DBAPIError``, which the API answers with
503 ``database_unavailable``. A monitor that cannot tell where the server is (several
hosts, a service file) stays out of the way.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Engine, event
from sqlalchemy.engine import URL

log = logging.getLogger("db.liveness")

# Protocol constant of PostgreSQL's SSLRequest: length 8, code 80877103.
_SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")


class DatabaseUnavailableError(psycopg.OperationalError):
    """The database did not answer its last liveness probe; nothing was tried."""


@dataclass(frozen=True)
class Address:
    """Where the postmaster listens: a TCP ``(host, port)`` or a Unix socket path."""

    family: socket.AddressFamily
    target: Any  # (host, port) or a path


def server_address(url: URL) -> Address | None:
    """The one address ``url`` connects to, or None when it names several or none we
    can tell (then no monitor runs)."""
    query_host = url.query.get("host")
    host = url.host or (query_host if isinstance(query_host, str) else None)
    port = url.port or 5432
    if host is None or "," in host:
        return None
    if host.startswith("/"):
        return Address(socket.AF_UNIX, os.path.join(host, f".s.PGSQL.{port}"))
    return Address(socket.AF_INET6 if ":" in host else socket.AF_INET, (host, port))


def probe(address: Address, timeout: float) -> bool:
    """Whether the postmaster at ``address`` answers an SSLRequest within ``timeout``."""
    try:
        with socket.socket(address.family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(address.target)
            sock.sendall(_SSL_REQUEST)
            return sock.recv(1) in (b"N", b"S")
    except OSError:
        return False


class DatabaseMonitor:
    """Probes the server of ``engine`` every ``interval`` seconds from a daemon thread;
    see the module docstring. ``available`` says what the last probe found."""

    def __init__(self, engine: Engine, *, interval: float = 0.2, probe_timeout: float = 0.75) -> None:
        self.engine = engine
        self.interval = interval
        self.probe_timeout = probe_timeout
        self.address = server_address(engine.url)
        self._down = threading.Event()
        self._stop = threading.Event()
        self._connections: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return not self._down.is_set()

    def start(self) -> DatabaseMonitor:
        if self.address is None:
            log.info("database monitor off: cannot tell one server address from %s", self.engine.url)
            return self
        event.listen(self.engine, "connect", self._on_connect)
        event.listen(self.engine, "do_connect", self._refuse_while_down)
        self._thread = threading.Thread(target=self._run, name="db-liveness", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + self.probe_timeout + 1)
            event.remove(self.engine, "connect", self._on_connect)
            event.remove(self.engine, "do_connect", self._refuse_while_down)
            self._thread = None

    def _on_connect(self, dbapi_connection: psycopg.Connection[Any], _record: Any) -> None:
        with self._lock:
            self._connections.add(dbapi_connection)

    def _refuse_while_down(self, *_args: Any) -> None:
        if self._down.is_set():
            raise DatabaseUnavailableError("the database is not answering (liveness probe); try again shortly")

    def _run(self) -> None:
        assert self.address is not None
        while not self._stop.wait(self.interval):
            answered = probe(self.address, self.probe_timeout)
            if answered and self._down.is_set():
                log.warning("database answers again")
                self._down.clear()
            elif not answered and not self._down.is_set():
                log.warning("database is not answering; failing fast until it does")
                self._down.set()
                self._cut_connections()

    def _cut_connections(self) -> None:
        """Shut down the socket under every connection, so blocked calls return with a
        disconnect error (the pool then discards them)."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                fd = connection.pgconn.socket
            except psycopg.Error:
                continue  # closed already
            try:
                # A duplicate of the descriptor: shutting it down shuts the connection
                # down for its owner too, while closing it leaves the owner's alone.
                with socket.socket(fileno=os.dup(fd)) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue
