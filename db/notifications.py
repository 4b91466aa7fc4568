"""Waking idle workers: ``LISTEN`` on the channel the migration's trigger ``NOTIFY``s
when a verification becomes ``queued``. Workers poll as well, so a lost notification
costs latency, never a job."""

from __future__ import annotations

from types import TracebackType

import psycopg

from db.settings import normalise_database_url

#: The channel the migration's trigger NOTIFYs when a row becomes ``queued``.
CHANNEL = "nirvana_verifications"


class QueueListener:
    """A connection that ``LISTEN``s on the queue channel for its whole life.

    Listening before looking for work (and staying subscribed between waits) means a
    job queued while the worker was busy still wakes it: the notification waits on the
    connection. Workers poll too, so a lost connection costs latency, not jobs.
    """

    def __init__(self, database_url: str) -> None:
        url = normalise_database_url(database_url).replace("postgresql+psycopg://", "postgresql://", 1)
        self._conn = psycopg.connect(url, autocommit=True)
        self._conn.execute(f"LISTEN {CHANNEL}")

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a notification; whether one came. Every
        notification already pending is consumed, so one wake-up serves them all."""
        woke = False
        for _ in self._conn.notifies(timeout=max(0.0, timeout), stop_after=1):
            woke = True
        if woke:
            # Drain the rest without waiting: the caller claims until the queue is empty.
            for _ in self._conn.notifies(timeout=0.0):
                pass
        return woke

    def fileno(self) -> int:
        return self._conn.fileno()

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> QueueListener:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def wait_for_work(database_url: str, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for a job to be queued; whether one was.

    Opens its own connection, so a job queued just before the call is missed; a
    worker that loops keeps a ``QueueListener`` instead.
    """
    with QueueListener(database_url) as listener:
        return listener.wait(timeout)
