"""``nirvana serve``: the whole service in one command.

In order: check the port is free, find the database (``DATABASE_URL`` or the embedded
server in ``$NIRVANA_HOME/pg``), migrate it, make sure a local write token exists,
start the verification workers in child processes and a reaper thread (dead workers'
jobs go back to the queue on a timer, even with ``--workers 0``), and serve the API in
this process until Ctrl-C. Stopping undoes it in reverse: uvicorn, then the workers (SIGTERM, a
grace period, then SIGKILL), then the database handle, which stops the embedded server
when no other ``nirvana`` process uses it. The data stays in ``$NIRVANA_HOME``.
"""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from nirvana import paths
from nirvana.errors import PortInUseError
from service.database import DatabaseHandle, find_database

log = logging.getLogger(__name__)

LOCAL_USER = "local"
LOCAL_TOKEN_NAME = "nirvana serve"
WORKER_STOP_SECONDS = 10.0


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready socket bound to ``(host, port)``, handed to uvicorn as is, so
    nothing can take the port between the check and the serving.

    Raises:
        PortInUseError: something already listens there (the message names the port
            and ``--port``).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose
    # proto says TCP, and accepted sockets inherit the listener's. With Nagle on, a small
    # keep-alive response waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # As uvicorn does: a port left in TIME_WAIT by the previous `nirvana serve` is free.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} on {host} is already in use; stop what holds it or choose another with --port"
            ) from None
        raise PortInUseError(f"cannot listen on {host}:{port}: {exc.strerror}", code="cannot_bind") from None
    sock.set_inheritable(True)
    return sock


def ensure_local_token(database_url: str, home: Path) -> str:
    """The secret in ``$NIRVANA_HOME/token`` if it still authenticates with the write
    scope; else a new write token for the user ``local``, written there (mode 0600)."""
    from db.session import one_transaction
    from db.tokens import authenticate, create_token

    with one_transaction(database_url) as session:
        secret = paths.read_token_file(home)
        if secret is not None:
            token = authenticate(session, secret)
            if token is not None and token.allows("write"):
                return secret
        _, secret = create_token(
            session, user_name=LOCAL_USER, token_name=LOCAL_TOKEN_NAME, scopes=("read", "write", "verify")
        )
    # Written only after the commit: a file never holds a secret the database lacks.
    paths.write_token_file(home, secret)
    return secret


def migrate(database_url: str) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    from db.migrate import upgrade
    from db.session import disposable_engine

    with disposable_engine(database_url) as engine:
        upgrade(engine)


# --- workers ----------------------------------------------------------------------


def configure_logging() -> None:
    """INFO from our own loggers on stderr, so an operator sees workers claim jobs and
    every request (``nirvana.access``): one JSON object a line, or plain text with
    ``NIRVANA_LOG_FORMAT=text``."""
    from service.logs import make_formatter

    handler = logging.StreamHandler()
    handler.setFormatter(make_formatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    # Chatty at INFO about their internals (pg_ctl calls, alembic plugin setup).
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def _worker_child(settings: dict[str, Any]) -> None:
    """Body of one worker child process (spawned, so it starts with a clean interpreter).

    Ctrl-C in the terminal reaches the whole process group; the parent decides when
    workers stop, so the child ignores SIGINT and stops gracefully on SIGTERM. It also
    stops if the parent dies without telling it (SIGKILL), so no worker is orphaned."""
    from worker.main import run_worker
    from worker.parent import watch_parent
    from worker.settings import WorkerSettings

    configure_logging()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    watch_parent(os.getppid(), stop.set, poll_seconds=1.0, stop=stop)
    # Built here, not in the parent: each worker's default id names its own pid.
    run_worker(WorkerSettings(**settings), stop=stop)


def visible_gpus() -> int:
    """How many GPUs this process may use, without importing torch (which would
    initialise CUDA in the parent): the entries of ``CUDA_VISIBLE_DEVICES`` when it is
    set, else the lines of ``nvidia-smi -L``, else 0."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return len([d for d in listed.split(",") if d.strip() and d.strip() != "-1"])
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def worker_devices(count: int, gpus: int) -> list[str | None]:
    """The device of each of ``count`` workers: round-robin over ``gpus`` GPUs
    (``cuda:0``, ``cuda:1``, ...), or ``None`` (the worker's own default) without GPUs."""
    return [f"cuda:{i % gpus}" if gpus > 0 else None for i in range(count)]


def start_workers(count: int, settings: dict[str, Any]) -> list[BaseProcess]:
    """Start ``count`` worker processes, spread over the visible GPUs (``worker_devices``)
    unless ``settings`` names a device. Not daemonic: a worker spawns its own training
    children, which daemonic processes may not do."""
    context = multiprocessing.get_context("spawn")
    workers: list[BaseProcess] = []
    devices = worker_devices(count, visible_gpus() if "device" not in settings else 0)
    for index, device in enumerate(devices):
        own = {**settings, "device": device} if device is not None else settings
        process = context.Process(target=_worker_child, args=(own,), name=f"nirvana-worker-{index}")
        process.start()
        workers.append(process)
    return workers


def stop_workers(workers: list[BaseProcess], timeout: float = WORKER_STOP_SECONDS) -> None:
    """SIGTERM every worker, wait up to ``timeout`` seconds in all, SIGKILL the rest."""
    for process in workers:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in workers:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            log.warning("worker %s did not stop within %.0f s; killing it", process.pid, timeout)
            process.kill()
            process.join(5)


@contextmanager
def reaping(database_url: str) -> Iterator[None]:
    """A ``worker.reaper.Reaper`` thread on an engine of its own while the block runs."""
    from db.session import make_engine, make_sessionmaker
    from worker.reaper import Reaper

    engine = make_engine(database_url, pool_size=1)
    try:
        with Reaper(make_sessionmaker(engine)):
            yield
    finally:
        engine.dispose()


# --- the command ------------------------------------------------------------------


def serve(
    *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, api_workers: int = 1, home: str | Path | None = None
) -> None:
    """Run ``api_workers`` API processes on one port and ``workers`` verification
    workers until interrupted.

    Returns normally after Ctrl-C or SIGTERM, with everything stopped.

    Raises:
        PortInUseError: the port is taken (checked before anything starts).
    """
    root = paths.home(home)
    sock = bind_socket(host, port)
    configure_logging()
    handle: DatabaseHandle | None = None
    children: list[BaseProcess] = []
    background = ExitStack()
    _interrupt_on_sigterm()
    try:
        handle = find_database(root)
        migrate(handle.url)
        token = ensure_local_token(handle.url, root)
        storage = {"database_url": handle.url, "home": root}
        background.enter_context(reaping(handle.url))
        children = start_workers(workers, storage)
        ready = handle  # for the closure: the banner needs the handle that is open now
        _run_uvicorn(
            sock, storage, api_workers,
            on_started=lambda: _banner(host, port, token, root, ready, workers, api_workers),
        )  # fmt: skip
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the SIGINT it handled once it has shut down
    finally:
        sock.close()
        stop_workers(children)
        background.close()
        if handle is not None:
            handle.close()
        print("nirvana: stopped", file=sys.stderr, flush=True)


def run_api(*, host: str, port: int, api_workers: int = 1, home: str | Path | None = None) -> None:
    """Serve the HTTP API only (no migrations, no workers): the ``api`` service of
    docker-compose, where ``migrate`` and ``worker`` run as services of their own."""
    root = paths.home(home)
    sock = bind_socket(host, port)
    configure_logging()
    _interrupt_on_sigterm()
    try:
        with find_database(root) as handle:
            _run_uvicorn(
                sock, {"database_url": handle.url, "home": root}, api_workers,
                on_started=lambda: print(f"nirvana api: listening on {_url(host, port)}", file=sys.stderr, flush=True),
            )  # fmt: skip
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()


def _interrupt_on_sigterm() -> None:
    """Make SIGTERM (docker stop, kill) unwind like Ctrl-C, through the ``finally``
    blocks that stop the workers and the database. uvicorn restores this handler and
    re-raises the signal after its own graceful shutdown, so both paths end here."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _run_uvicorn(
    sock: socket.socket, storage: dict[str, Any], api_workers: int = 1, *, on_started: Callable[[], None]
) -> None:
    """Serve the API on ``sock``: in this process, or in ``api_workers`` spawned
    processes sharing it (uvicorn's supervisor restarts one that dies). The children
    build their settings from the environment, so ``storage`` goes there; their rate
    limits then must be shared, in PostgreSQL unless ``NIRVANA_RATE_LIMIT_STORE`` or
    ``NIRVANA_REDIS_URL`` says otherwise. ``on_started`` runs once the API answers
    (uvicorn's startup, lifespan included, has finished), so what it prints is true."""
    import uvicorn

    from service.logs import uvicorn_log_config

    # proxy_headers=False: uvicorn would trust X-Forwarded-For from loopback and rewrite
    # the peer; api.callers reads it only from NIRVANA_TRUSTED_PROXIES. loop="asyncio",
    # never uvloop: with the process saturated, uvloop admitted new connections one per
    # loop pass, so 50 clients connecting at once waited up to 0.6 s for a first answer
    # that took 0.1 ms to compute; asyncio's loop accepts them all in one pass, at
    # 5-20% less peak throughput (bench/api_load.py, docs/operations.md "Under load").
    options: dict[str, Any] = {
        "log_config": uvicorn_log_config(), "access_log": False, "timeout_graceful_shutdown": 5, "proxy_headers": False,
        "loop": "asyncio",
    }  # fmt: skip
    if api_workers <= 1:
        from api.app import create_app
        from api.settings import ApiSettings

        class Server(uvicorn.Server):
            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets=sockets)
                if self.started:  # False when the lifespan failed: uvicorn is exiting
                    on_started()

        Server(uvicorn.Config(create_app(ApiSettings(**storage)), **options)).run(sockets=[sock])
        return
    from uvicorn.supervisors import Multiprocess

    os.environ.update(DATABASE_URL=storage["database_url"], NIRVANA_HOME=str(storage["home"]))
    os.environ.setdefault("NIRVANA_RATE_LIMIT_STORE", "postgres")
    host, port = sock.getsockname()[:2]
    threading.Thread(target=_when_healthy, args=(_url(host, port), on_started), daemon=True).start()
    config = uvicorn.Config("api.main:app_from_env", factory=True, workers=api_workers, **options)
    Multiprocess(config, sockets=[sock]).run()


def _when_healthy(url: str, then: Callable[[], None], timeout: float = 300) -> None:
    """Call ``then`` once ``url``'s health check answers (the worker processes are up)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                then()
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def _banner(host: str, port: int, token: str, home: Path, handle: DatabaseHandle, workers: int, api_workers: int) -> None:
    url = _url(host, port)
    database = f"embedded PostgreSQL in {handle.data_dir}" if handle.embedded else "DATABASE_URL"
    lines = [
        "",
        f"  Nirvana      {url}",
        f"  API docs     {url}/docs",
        f"  Token        {token}",
        f"               (write scope; also in {paths.token_file(home)})",
        f"  Database     {database}",
        f"  Workers      {workers}",
        f"  API workers  {api_workers}",
        "",
        "  Point the client and the CLI at it:",
        f"    export NIRVANA_URL={url}",
        "",
        "  Stop with Ctrl-C.",
        "",
    ]
    print("\n".join(lines), flush=True)
