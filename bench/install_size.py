"""What ``pip install nirvana`` costs a researcher, beside the full server install.

Builds the library wheel from this checkout, makes a fresh virtualenv, installs the CPU
torch into it first (what a researcher's training environment already has), then
measures three states of that one venv: torch alone, + the library wheel, + the
``server`` extra. Prints the number of installed distributions and the megabytes of
site-packages for each, and what the library adds on top of torch.

    python bench/install_size.py            # uses pip's configured index / find-links
    python bench/install_size.py --keep     # leave the venv for a look (path printed)

Needs the index to hold ``torch==2.13.0`` (the CPU build) and the server's dependencies;
nothing is installed outside the temporary venv.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TORCH = "torch==2.13.0"
SERVICE_MODULES = ("fastapi", "sqlalchemy", "psycopg", "pgserver", "alembic", "uvicorn", "matplotlib", "sklearn")


def run(*argv: str | Path) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, argv))}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def build_wheel(out: Path) -> Path:
    # --no-build-isolation: the build backend (setuptools) of this interpreter, no download.
    # setuptools builds in the checkout's build/; remove it unless it was there before.
    had_build = (ROOT / "build").exists()
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out, ROOT)
    if not had_build:
        shutil.rmtree(ROOT / "build", ignore_errors=True)
    (wheel,) = out.glob("nirvana-*.whl")
    return wheel


def measure(python: Path) -> tuple[int, float, list[str]]:
    """(distributions installed, MB of site-packages, their names) of the venv."""
    names = [d["name"] for d in json.loads(run(python, "-m", "pip", "list", "--format", "json"))]
    names = [n for n in names if n.lower() not in ("pip", "setuptools")]
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    size = sum(f.stat().st_size for f in purelib.rglob("*") if f.is_file() and not f.is_symlink())
    return len(names), size / 1e6, sorted(names, key=str.lower)


def top_level(python: Path, wheel: Path) -> list[str]:
    code = "import zipfile, sys; print(sorted({n.split('/')[0] for n in zipfile.ZipFile(sys.argv[1]).namelist()}))"
    names: list[str] = json.loads(run(python, "-c", code, wheel).replace("'", '"'))
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary venv")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nirvana-install-size-"))
    try:
        started = time.monotonic()
        wheel = build_wheel(work / "dist")
        venv = work / "venv"
        run(sys.executable, "-m", "venv", venv)
        python = venv / "bin" / "python"
        run(python, "-m", "pip", "install", "-q", TORCH)
        states = {"torch alone": measure(python)}
        run(python, "-m", "pip", "install", "-q", wheel)
        states["+ nirvana (library)"] = measure(python)
        loaded = run(python, "-c", f"import sys, nirvana; print(sorted(set({SERVICE_MODULES!r}) & {{m.split('.')[0] for m in sys.modules}}))")
        run(python, "-m", "pip", "install", "-q", f"nirvana[server] @ {wheel.as_uri()}")
        states["+ server extra (full)"] = measure(python)

        print(f"wheel {wheel.name}: {wheel.stat().st_size / 1e3:.0f} kB, top-level {top_level(python, wheel)}")
        print(f"{'install':<24}{'packages':>10}{'MB':>10}")
        for label, (count, mb, _) in states.items():
            print(f"{label:<24}{count:>10}{mb:>10.0f}")
        (t_n, t_mb, t_names), (l_n, l_mb, l_names), (s_n, s_mb, _) = states.values()
        print(f"the library adds {l_n - t_n} packages, {l_mb - t_mb:.0f} MB to torch: "
              f"{', '.join(n for n in l_names if n not in t_names)}")  # fmt: skip
        print(f"the server install adds {s_n - l_n} packages, {s_mb - l_mb:.0f} MB more; "
              f"library / full (beyond torch): {l_n - t_n}/{s_n - t_n} packages, "
              f"{(l_mb - t_mb) / max(s_mb - t_mb, 1e-9):.2f}x the megabytes")  # fmt: skip
        print(f"service modules after `import nirvana` in the library venv: {loaded.strip()}")
        print(f"({time.monotonic() - started:.0f} s)")
        if args.keep:
            print(f"venv kept at {venv}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
