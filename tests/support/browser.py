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


def layout_at_width(url: str, width: int, tmp: Path) -> dict[str, int]:
    """Load ``url`` in a ``width``-px-wide frame and measure its layout: the page's
    ``scrollWidth`` and ``clientWidth``, and the widest overflow inside a
    ``.table-scroll`` box (its ``scrollWidth - clientWidth``: > 0 when it scrolls).

    A local page frames ``url``; web security is off for this throwaway profile only,
    so its script can read the framed document."""
    probe = tmp / f"probe-{width}.html"
    probe.write_text(
        f'<iframe id="f" src="{url}" style="width:{width}px;height:900px;border:0"></iframe>'
        "<script>document.getElementById('f').onload = () => {"
        " const d = document.getElementById('f').contentDocument;"
        " const boxes = [...d.querySelectorAll('.table-scroll')].map(b => b.scrollWidth - b.clientWidth);"
        " const out = document.createElement('pre'); out.id = 'layout';"
        " out.textContent = JSON.stringify({scroll_width: d.documentElement.scrollWidth,"
        " client_width: d.documentElement.clientWidth, box_overflow: Math.max(0, ...boxes), boxes: boxes.length});"
        " document.body.appendChild(out); };</script>"
    )
    dom = _run(["--disable-web-security", "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()]).stdout
    import json
    import re

    found = re.search(r'<pre id="layout">(.*?)</pre>', dom)
    assert found is not None, dom[-2000:]
    layout: dict[str, int] = json.loads(found.group(1))
    return layout
