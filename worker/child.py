"""The training child process: how it is started, dies with its worker, and reports.

The worker starts one child per job from a ``spawn`` context (a fork after CUDA is
initialised is unsafe, and a spawned child shares no locks or sockets with the
worker). The child dies with its parent twice over: ``PR_SET_PDEATHSIG`` asks the
kernel for a SIGKILL when the parent thread exits, and a watchdog thread exits when the
parent pid changes (re-parenting), which also covers the instant before ``prctl`` ran.

The child sends exactly one message on its result pipe (``Outcome``); dying without
one is a crash.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import signal
import sys
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Literal

from worker.parent import watch_parent

#: The default entry: ``module:function`` taking ``(job, progress_queue)``.
DEFAULT_ENTRY = "worker.runs:run_verification"

PR_SET_PDEATHSIG = 1

#: ``("ok", result)``, ``("user_error", code, detail)`` or ``("error", description)``.
Outcome = tuple[Literal["ok"], dict[str, Any]] | tuple[Literal["user_error"], str, str] | tuple[Literal["error"], str]


def resolve_entry(entry: str) -> Callable[..., dict[str, Any]]:
    """``"package.module:function"`` -> the function."""
    module_name, _, name = entry.partition(":")
    if not name:
        raise ValueError(f"entry must look like 'module:function', not {entry!r}")
    func: Callable[..., dict[str, Any]] = getattr(importlib.import_module(module_name), name)
    return func


def die_with_parent(parent_pid: int, *, poll_seconds: float = 0.5) -> None:
    """Arrange for this process to die when ``parent_pid`` does."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    watch_parent(parent_pid, lambda: os._exit(1), poll_seconds=poll_seconds)


def child_main(entry: str, job: Any, progress_queue: Any, result_conn: Connection, parent_pid: int) -> None:
    """The child's target: run ``entry(job, progress_queue)`` and send one ``Outcome``."""
    die_with_parent(parent_pid)
    # Ctrl-C reaches the whole process group; the worker decides what a stop means
    # for the job, so the child must not turn it into an error of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Progress left in the queue's buffer at exit is worthless; never block exit on it.
    progress_queue.cancel_join_thread()
    outcome: Outcome
    try:
        outcome = ("ok", resolve_entry(entry)(job, progress_queue))
    except Exception as exc:
        outcome = _describe(exc)
    try:
        result_conn.send(outcome)
    finally:
        result_conn.close()


def _describe(exc: Exception) -> Outcome:
    # Imported late: lottery may be absent from a test entry's world, never from ours.
    try:
        from nirvana.lottery.errors import LotteryError
    except ImportError:  # pragma: no cover
        LotteryError = ()  # type: ignore[assignment,misc]  # noqa: N806
    if isinstance(exc, LotteryError):
        return ("user_error", exc.code, exc.detail)
    tail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return ("error", f"{tail}{where}")


def describe_exit(exitcode: int | None) -> str:
    """A crash, for people: "was killed by SIGKILL" / "exited with status 1"."""
    if exitcode is None:
        return "the training process did not exit"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the training process was killed by {name}"
    return f"the training process exited with status {exitcode} without a result"
