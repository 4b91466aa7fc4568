"""Polling a verification until it finishes, with a progress bar."""

from __future__ import annotations

import time
from collections.abc import Callable

from nirvana.errors import WaitTimeoutError
from nirvana.hub_types import VerificationInfo
from nirvana.states import VerificationState
from nirvana.progress import percent_bar


def poll_until_finished(
    fetch: Callable[[], VerificationInfo],
    *,
    label: str,
    timeout: float | None,
    poll_interval: float,
    progress: bool,
) -> VerificationInfo:
    """Call ``fetch`` (the verification) every ``poll_interval`` seconds until its
    ``state`` is final, and return it; ``WaitTimeoutError`` after ``timeout``."""
    deadline = None if timeout is None else time.monotonic() + timeout
    bar = percent_bar(label) if progress else None
    try:
        while True:
            current = fetch()
            if bar is not None:
                bar.n = round(100 * current.progress, 1)
                bar.set_postfix_str(current.state.value)  # also redraws the bar
            if current.state.finished:
                if bar is not None and current.state is VerificationState.SUCCEEDED:
                    bar.n = 100
                    bar.refresh()
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeoutError(f"{label} is still {current.state.value} after {timeout:g} s")
            pause = poll_interval if deadline is None else min(poll_interval, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)
    finally:
        if bar is not None:
            bar.close()
