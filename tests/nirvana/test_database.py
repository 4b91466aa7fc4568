"""find_database: DATABASE_URL as is, else one embedded server shared by processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import create_engine, text

from service.database import find_database

ROOT = Path(__file__).resolve().parents[2]


def test_database_url_is_used_and_normalised(tmp_path: Path) -> None:
    handle = find_database(tmp_path, environ={"DATABASE_URL": "postgresql://u:p@db.example:5432/nirvana"})
    assert handle.url == "postgresql+psycopg://u:p@db.example:5432/nirvana"
    assert not handle.embedded
    handle.close()
    assert not (tmp_path / "pg").exists()  # nothing embedded was started


def _run_in_other_process(home: Path, sql: str) -> str:
    """find_database in a fresh interpreter on the same home; the result of ``sql``."""
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from sqlalchemy import create_engine, text
        from service.database import find_database
        with find_database(Path({str(home)!r}), environ={{}}) as handle:
            engine = create_engine(handle.url)
            with engine.connect() as conn:
                print(conn.execute(text({sql!r})).scalar())
            engine.dispose()
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_embedded_server_is_shared_and_stops_with_its_last_user(embedded_home: Path) -> None:
    tmp_path = embedded_home
    handle = find_database(tmp_path, environ={})
    assert handle.embedded and handle.url.startswith("postgresql+psycopg://")
    engine = create_engine(handle.url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE shared (x int)"))
            conn.execute(text("INSERT INTO shared VALUES (41), (1)"))
        # A second process attaches to the running server and sees the table ...
        assert _run_in_other_process(tmp_path, "SELECT sum(x) FROM shared") == "42"
        # ... and leaving does not stop it under us.
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM shared")).scalar() == 2
    finally:
        engine.dispose()
        handle.close()
    assert not (tmp_path / "pg" / "postmaster.pid").exists()


def test_a_user_that_died_without_detaching_does_not_keep_the_server_up(embedded_home: Path) -> None:
    tmp_path = embedded_home
    handle = find_database(tmp_path, environ={})
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pids_file = tmp_path / "pg" / ".handle_pids.json"
    pids_file.write_text(json.dumps([*json.loads(pids_file.read_text()), int(dead.stdout)]))
    handle.close()  # a stale pid in the list: pgserver alone would leave the server up
    assert (tmp_path / "pg" / "postmaster.pid").exists()

    again = find_database(tmp_path, environ={})  # forgets the dead pid, attaches
    engine = create_engine(again.url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()
    again.close()
    assert not (tmp_path / "pg" / "postmaster.pid").exists()
