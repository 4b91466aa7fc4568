"""Taking back the jobs of dead workers on a timer, whatever the living ones are doing.

Reaping only when a worker goes idle leaves a dead worker's job ``running`` for as long
as every other worker is busy: with long jobs, the length of a job. So every worker
(and ``nirvana serve``) runs a ``Reaper``: a daemon thread that calls
``db.queue.reap_expired`` every ``interval`` seconds in a short transaction of its own.
Concurrent reapers skip each other's rows (``SKIP LOCKED``), so any number may run.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from db import queue
from db.session import unit_of_work

log = logging.getLogger("worker.reaper")

#: Seconds between two passes (``NIRVANA_REAP_SECONDS`` for workers).
DEFAULT_INTERVAL = 5.0


class Reaper:
    """Reaps expired leases now and then every ``interval`` seconds until stopped."""

    def __init__(self, factory: sessionmaker[Session], *, interval: float = DEFAULT_INTERVAL) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.factory = factory
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def reap_once(self) -> int:
        """One pass; returns how many jobs it took back (0 when the database is away:
        the next pass tries again)."""
        try:
            with unit_of_work(self.factory) as session:
                reaped = queue.reap_expired(session)
        except SQLAlchemyError as exc:
            log.warning("reaping skipped: database unavailable (%s)", exc.__class__.__name__)
            return 0
        if reaped:
            log.info("reaped %d job(s) whose worker stopped heartbeating", reaped)
        return reaped

    def _run(self) -> None:
        while True:
            self.reap_once()
            if self._stop.wait(self.interval):
                return

    def start(self) -> Reaper:
        self._thread = threading.Thread(target=self._run, name="reaper", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            # Daemonic: a pass stuck on a frozen database does not hold the exit.
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Reaper:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
