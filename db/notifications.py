"""``LISTEN`` on the channels the migrations' triggers ``NOTIFY``: workers wake when a
verification becomes ``queued`` (they poll as well, so a lost notification costs
latency, never a job); the API's read cache forgets when anything public changes."""

from __future__ import annotations

from types import TracebackType

import psycopg

from db.settings import normalise_database_url

#: The channel the migration's trigger NOTIFYs when a row becomes ``queued``.
QUEUE_CHANNEL = "nirvana_verifications"
#: The channel migration 9e4d2c7b1a30's triggers NOTIFY at the commit of any write a
#: public read can show (``api.readcache``).
CHANGES_CHANNEL = "nirvana_changes"


class ChannelListener:
    """A connection that ``LISTEN``s on ``channel`` (the queue's by default) for its
    whole life.

    Listening before looking for work (and staying subscribed between waits) means a
    job queued while the worker was busy still wakes it: the notification waits on the
    connection. Workers poll too, so a lost connection costs latency, not jobs.
    """

    def __init__(self, database_url: str, channel: str = QUEUE_CHANNEL, *, connect_timeout: int | None = None) -> None:
        url = normalise_database_url(database_url).replace("postgresql+psycopg://", "postgresql://", 1)
        # None: libpq's default (psycopg leaves out parameters that are None).
        self._conn = psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout)
        self._conn.execute(f"LISTEN {channel}")

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

    def __enter__(self) -> ChannelListener:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def wait_for_work(database_url: str, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for a job to be queued; whether one was.

    Opens its own connection, so a job queued just before the call is missed; a
    worker that loops keeps a ``ChannelListener`` instead.
    """
    with ChannelListener(database_url) as listener:
        return listener.wait(timeout)
