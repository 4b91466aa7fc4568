"""The training child process: how it is started, kept warm, dies with its worker, and
reports.

A worker keeps one child (``WarmChild``) across jobs, so the seconds a child spends
importing torch and loading a task's data are paid once per worker, not once per job
(the child caches task data by fingerprint, ``worker.runs``). It is started from a
``spawn`` context (a fork after CUDA is initialised is unsafe, and a spawned child
shares no locks or sockets with the worker) on the first job, and stopped (SIGTERM,
then SIGKILL) whenever a job ends other than by reporting: cancel, lease lost, worker
stopping, a crash, or a job that failed for a reason of its own (``"error"``: its
CUDA context or memory may be unhealthy), and when the worker stops. The next job
then starts a fresh one.

The child dies with its parent twice over: ``PR_SET_PDEATHSIG`` asks the kernel for a
SIGKILL when the parent thread exits, and a watchdog thread exits when the parent pid
changes (re-parenting), which also covers the instant before ``prctl`` ran.

For every job it receives the child sends exactly one message back on its pipe
(``Outcome``); dying without one is a crash. Progress travels on a queue tagged with
the job's sequence number, so a late fraction of one job never counts for the next.
"""

from __future__ import annotations

import ctypes
import importlib
import multiprocessing
import os
import queue as stdlib_queue
import signal
import sys
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Literal

from worker.parent import watch_parent

#: The default entry: ``module:function`` taking ``(job, progress_queue)``.
DEFAULT_ENTRY = "worker.runs:run_verification"

PR_SET_PDEATHSIG = 1
#: How long a child that was told to exit gets before it is signalled.
_TICK = 0.1

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


class _Tagged:
    """The ``ProgressSink`` a job sees: puts ``(sequence, fraction)`` on the shared queue."""

    def __init__(self, queue: Any, sequence: int) -> None:
        self.queue, self.sequence = queue, sequence

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        self.queue.put((self.sequence, obj), block, timeout)


def child_main(entry: str, conn: Connection, progress_queue: Any, parent_pid: int) -> None:
    """The child's target: for every ``(sequence, job)`` received on ``conn``, run
    ``entry(job, progress)`` and send one ``Outcome``; exit when the worker closes ``conn``."""
    die_with_parent(parent_pid)
    # Ctrl-C reaches the whole process group; the worker decides what a stop means
    # for the job, so the child must not turn it into an error of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Progress left in the queue's buffer at exit is worthless; never block exit on it.
    progress_queue.cancel_join_thread()
    while True:
        try:
            sequence, job = conn.recv()
        except EOFError:
            return
        outcome: Outcome
        try:
            outcome = ("ok", resolve_entry(entry)(job, _Tagged(progress_queue, sequence)))
        except Exception as exc:
            outcome = _describe(exc)
        conn.send(outcome)


class WarmChild:
    """The worker's side of its one training child (see the module docstring)."""

    def __init__(self, entry: str) -> None:
        self.entry = entry
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None
        self.progress: Any = None  # multiprocessing.Queue[tuple[int, float]]
        self.sequence = 0
        #: The running job's latest progress fraction.
        self.fraction = 0.0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def submit(self, job: Any) -> None:
        """Start ``job`` in the child, spawning one first if none is alive."""
        if self.process is None or not self.process.is_alive():
            self.stop(0.0)
            self._spawn()
        assert self.conn is not None
        self.sequence += 1
        self.fraction = 0.0
        self.conn.send((self.sequence, job))

    def _spawn(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        mine, theirs = ctx.Pipe(duplex=True)
        self.progress = ctx.Queue()
        self.process = ctx.Process(
            target=child_main, args=(self.entry, theirs, self.progress, os.getpid()),
            name="verify-child", daemon=True,
        )
        self.process.start()
        # Only the child may hold its end, so its death shows up here as EOF.
        theirs.close()
        self.conn = mine

    def poll(self, timeout: float) -> tuple[bool, Outcome | None]:
        """``(True, outcome)`` once the job reported, ``(True, None)`` if the child died
        without reporting, ``(False, None)`` while it runs (after ``timeout`` seconds)."""
        assert self.conn is not None
        if not self.conn.poll(timeout):
            return False, None
        try:
            outcome: Outcome = self.conn.recv()
            return True, outcome
        except (EOFError, OSError):
            return True, None

    def drain_progress(self) -> None:
        """Take every fraction queued so far; keep the running job's latest."""
        while self.progress is not None:
            try:
                sequence, fraction = self.progress.get_nowait()
            except stdlib_queue.Empty:
                return
            if sequence == self.sequence:
                self.fraction = float(fraction)

    def stop(self, grace: float) -> int | None:
        """End the child: close its pipe (a child between jobs exits by itself), then
        SIGTERM, then SIGKILL after ``grace`` seconds; reap it and close the queue.
        Returns its exit code (``None`` when none was running)."""
        process, self.process = self.process, None
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if process is not None:
            process.join(timeout=_TICK)
            if process.is_alive():
                process.terminate()
                process.join(timeout=grace)
            if process.is_alive():
                process.kill()
                process.join()
        if self.progress is not None:
            self.progress.close()
            self.progress.join_thread()
            self.progress = None
        return process.exitcode if process is not None else None


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
