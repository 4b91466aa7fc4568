"""The library as a researcher installs it: ``import nirvana`` and ``Client().load``
stay clear of the service; ``--version``; ``python -m nirvana``; ``nirvana serve``
without the service; the optional extras fail with the extra's name.

Each check runs in a fresh interpreter, since this test session has imported the
service long ago."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nirvana import Client, __version__
from tests.nirvana.conftest import LiveApi
from tests.support.tickets import make_ticket

ROOT = Path(__file__).resolve().parents[2]
SERVICE_ROOTS = ("fastapi", "starlette", "sqlalchemy", "psycopg", "pgserver", "alembic", "uvicorn", "api", "db", "worker", "service")


def python(code: str, *, library_only: bool = False, block: tuple[str, ...] = (), **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter. ``library_only``: ``sys.path`` holds no
    folder with the service (the repository root, the .pth's checkout); ``nirvana`` is
    found through a folder holding only a link to this tree's package. ``block``:
    modules that fail to import, as if not installed."""
    prelude = f"""
        import sys
        blocked = {block!r}
        for name in blocked:
            sys.modules[name] = None  # import raises ModuleNotFoundError
        if {library_only!r}:
            from pathlib import Path
            sys.path[:] = [p for p in sys.path if not (Path(p or ".") / "service" / "cli.py").exists()]
            sys.path.insert(0, {str(LINK_DIR)!r})
            import importlib.util
            assert importlib.util.find_spec("service") is None, "the service is still importable"
    """
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(prelude) + textwrap.dedent(code)],
        cwd=LINK_DIR if library_only else ROOT, env={**os.environ, **env},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


LINK_DIR = Path(os.environ.get("TMPDIR", "/tmp")) / f"nirvana-library-only-{os.getpid()}"


@pytest.fixture(scope="module", autouse=True)
def library_link() -> None:
    LINK_DIR.mkdir(exist_ok=True)
    link = LINK_DIR / "nirvana"
    if not link.exists():
        link.symlink_to(ROOT / "nirvana", target_is_directory=True)


REPORT_SERVICE_MODULES = f"""
    print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set({SERVICE_ROOTS!r}))))
"""


def test_import_nirvana_imports_nothing_of_the_service_nor_torch() -> None:
    done = python("import json, nirvana\nfrom nirvana import Client\n" + textwrap.dedent(REPORT_SERVICE_MODULES)
                  + "print('torch' in sys.modules)")  # fmt: skip
    assert done.returncode == 0, done.stderr
    modules, torch_loaded = done.stdout.splitlines()
    assert json.loads(modules) == [] and torch_loaded == "False"


def test_client_load_imports_nothing_of_the_service(live_api: LiveApi, tmp_path: Path) -> None:
    files = make_ticket(density=0.5)
    with Client(url=live_api.url, token=live_api.token, home=tmp_path / "home") as client:
        ticket = client.upload(manifest=files.manifest, mask=files.mask_bytes())
    code = f"""
        import json
        from nirvana import Client
        model, mask = Client(url={live_api.url!r}, home={str(tmp_path / "other")!r}).load({ticket.id!r})
        assert mask and all(m.dtype.is_floating_point is False for m in mask.values())
    """
    done = python(textwrap.dedent(code) + textwrap.dedent(REPORT_SERVICE_MODULES), library_only=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_version_and_python_dash_m() -> None:
    for argv in (["-m", "nirvana", "--version"], ["-c", "from nirvana.cli import main; main()", "--version"]):
        done = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0 and done.stdout.strip() == f"nirvana {__version__}", done.stderr


def test_serve_without_the_service_says_in_one_line_how_to_get_it() -> None:
    code = """
        from nirvana.cli import main
        sys.argv = ["nirvana", "serve", "--port", "8123"]
        main()
    """
    done = python(code, library_only=True)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "make serve" in lines[0] and "Traceback" not in done.stderr, done.stderr
    listed = python("from nirvana.cli import main\nsys.argv = ['nirvana', '--help']\nmain()", library_only=True)
    assert "serve" in listed.stdout and "make serve" in listed.stdout  # still listed, marked as the server's


@pytest.mark.parametrize(
    ("task", "blocked", "extra"), [("digits", ("sklearn",), "data"), ("mnist1d", ("mnist1d",), "data")]
)
def test_a_data_task_without_its_extra_names_the_extra(task: str, blocked: tuple[str, ...], extra: str) -> None:
    code = f"""
        from nirvana.lottery.data.tasks import is_available, load_task
        from nirvana.lottery.errors import MissingExtraError
        print(is_available({task!r}))
        try:
            load_task({task!r})
        except MissingExtraError as exc:
            print(exc.code, exc.detail)
    """
    done = python(code, block=blocked)
    assert done.returncode == 0, done.stderr
    available, error = done.stdout.splitlines()
    assert available == "False"
    assert error.startswith("missing_extra ") and f"nirvana[{extra}]" in error


def test_the_chart_without_matplotlib_names_the_extra(tmp_path: Path) -> None:
    code = f"""
        from pathlib import Path
        from nirvana.commands.charts import plot_accuracy_vs_remaining
        from nirvana.lottery.errors import MissingExtraError
        try:
            plot_accuracy_vs_remaining(Path({str(tmp_path / "c.png")!r}), [1.0, 0.5], {{"ticket": [0.9, 0.8]}}, title="t")
        except MissingExtraError as exc:
            print(exc.detail)
    """
    done = python(code, block=("matplotlib",))
    assert done.returncode == 0, done.stderr
    assert "nirvana[charts]" in done.stdout and not (tmp_path / "c.png").exists()
