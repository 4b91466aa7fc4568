"""``watch_parent``: the one watchdog behind "dies with its parent" (the training child,
``nirvana serve``'s workers), on real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from worker.parent import watch_parent

ROOT = Path(__file__).resolve().parents[2]

GRANDCHILD = """
    import os, sys, time
    from pathlib import Path
    from worker.parent import watch_parent

    flag = Path(sys.argv[1])
    watch_parent(os.getppid(), lambda: (flag.write_text(str(os.getppid())), os._exit(0)), poll_seconds=0.05)
    print("watching", flush=True)
    time.sleep(60)
"""

MIDDLE = f"""
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", {textwrap.dedent(GRANDCHILD)!r}, sys.argv[1]], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "watching"
    print(child.pid, flush=True)
    time.sleep(60)
"""


def test_a_process_whose_parent_is_killed_is_told_once(tmp_path: Path) -> None:
    flag = tmp_path / "orphaned"
    middle = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(MIDDLE), str(flag)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert middle.stdout is not None
    grandchild = int(middle.stdout.readline())
    assert not flag.exists()
    os.kill(middle.pid, signal.SIGKILL)
    middle.wait(timeout=30)
    middle.stdout.close()
    deadline = time.monotonic() + 30
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert flag.exists() and int(flag.read_text()) != middle.pid  # re-parented, then told
    deadline = time.monotonic() + 30
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_the_watch_ends_when_stopped_and_never_fires_while_the_parent_lives() -> None:
    fired: list[bool] = []
    stop = threading.Event()
    thread = watch_parent(os.getppid(), lambda: fired.append(True), poll_seconds=0.01, stop=stop)
    time.sleep(0.1)
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive() and fired == []


def test_an_already_gone_parent_fires_at_once() -> None:
    fired = threading.Event()
    watch_parent(-1, fired.set, poll_seconds=60).join(timeout=10)
    assert fired.is_set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too (its parent, our child, may not have reaped it yet).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False
