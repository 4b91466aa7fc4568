"""Child entries and a worker launcher for the worker tests (importable by spawned
processes, which cannot see a test module's monkeypatches)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from worker.main import run_worker
from worker.runs import JobSpec, ProgressSink
from worker.settings import WorkerSettings

PID_DIR_ENV = "NIRVANA_TEST_PID_DIR"


def spin(job: JobSpec, progress: ProgressSink) -> dict[str, Any]:
    """Announce this child's pid in ``$NIRVANA_TEST_PID_DIR/<verification>-<pid>``, then
    report progress forever (until stopped or killed)."""
    Path(os.environ[PID_DIR_ENV], f"{job.verification_id}-{os.getpid()}").touch()
    fraction = 0.0
    while True:
        fraction = min(0.99, fraction + 0.01)
        progress.put(fraction)
        time.sleep(0.05)


def serve(settings: dict[str, Any], entry: str, pid_dir: str) -> None:
    """A worker process's target: ``run_worker`` with a test entry."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    os.environ[PID_DIR_ENV] = pid_dir
    run_worker(WorkerSettings(**settings), entry=entry)


#: What ``finish_when_told`` returns: a verification result as ``db.queue.finish`` reads it.
TOLD_RESULT: dict[str, Any] = {
    "runs": {"ticket": {"test_accuracy": 0.875}},
    "reproduced": True,
    "winning": True,
    "note": "written by finish_when_told",
}


def finish_when_told(job: JobSpec, progress: ProgressSink) -> dict[str, Any]:
    """Announce this child's pid like ``spin``, then report progress until the file
    ``$NIRVANA_TEST_PID_DIR/go`` exists, and return ``TOLD_RESULT``: training that ends
    exactly when the test wants it to (say, while the database is down)."""
    pid_dir = Path(os.environ[PID_DIR_ENV])
    (pid_dir / f"{job.verification_id}-{os.getpid()}").touch()
    while not (pid_dir / "go").exists():
        progress.put(0.5)
        time.sleep(0.05)
    return TOLD_RESULT
def report_pid(job: JobSpec, progress: ProgressSink) -> dict[str, Any]:
    """Finish at once with this child's pid in the result (warm-child tests); the rest
    is the least a succeeded verification records on its ticket."""
    progress.put(1.0)
    return {"pid": os.getpid(), "runs": {"ticket": {"test_accuracy": 0.5}}, "reproduced": False, "winning": False}
