"""Noticing that our parent process is gone, for the processes that must not outlive it
(a worker's training child, ``nirvana serve``'s workers)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable


def watch_parent(
    parent_pid: int, on_orphaned: Callable[[], None], *, poll_seconds: float = 0.5, stop: threading.Event | None = None
) -> threading.Thread:
    """Call ``on_orphaned()`` once, from a daemon thread, as soon as this process's
    parent is no longer ``parent_pid`` (it died and we were re-parented); also at once
    if it already is not. The watch ends after that call, or when ``stop`` is set."""
    stop = stop if stop is not None else threading.Event()

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                on_orphaned()
                return
            if stop.wait(poll_seconds):
                return

    thread = threading.Thread(target=watch, name="parent-watchdog", daemon=True)
    thread.start()
    return thread
