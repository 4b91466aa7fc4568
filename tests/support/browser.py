"""A real headless Chromium, driven from the command line (no WebDriver needed):
``--dump-dom`` returns the DOM after the page loaded, ``--screenshot`` a PNG."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def chromium_path() -> str:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium on this machine: `make test` installs Debian's chromium (scripts/system-deps)")


def _run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    base = [chromium_path(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--disable-extensions", "--user-data-dir=/tmp/nirvana-chromium"]
    return subprocess.run(base + args, capture_output=True, text=True, timeout=timeout, check=True)


def dump_dom(url: str) -> str:
    """The page's DOM as Chromium serialises it after loading ``url``."""
    return _run(["--virtual-time-budget=2000", "--dump-dom", url]).stdout


def screenshot(url: str, path: Path, *, width: int = 1100, height: int = 900) -> Path:
    _run([f"--screenshot={path}", f"--window-size={width},{height}", "--hide-scrollbars", url])
    return path

