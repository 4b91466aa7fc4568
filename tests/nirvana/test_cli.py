"""The ``nirvana`` command: tokens against a real database, a busy port, errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from db.models.users import ApiToken
from db.session import make_engine, make_sessionmaker, unit_of_work
from db.tokens import authenticate, hash_token
from nirvana.cli import app

ROOT = Path(__file__).resolve().parents[2]


def test_token_create_prints_a_secret_that_authenticates_and_is_stored_hashed(
    fresh_database_url: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app,
        ["token", "create", "--name", "laptop", "--scope", "read", "--scope", "write"],
        env={"DATABASE_URL": fresh_database_url, "NIRVANA_HOME": str(tmp_path)},
    )
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert secret.startswith("nv_")
    assert "cannot be shown again" in result.stderr

    engine = make_engine(fresh_database_url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            token = authenticate(session, secret)
            assert token is not None and token.user.name == "local" and token.name == "laptop"
            assert sorted(token.scopes) == ["read", "write"]
            rows = session.scalars(select(ApiToken)).all()
            assert [row.token_hash for row in rows] == [hash_token(secret)]
            assert all(secret not in str(value) for row in rows for value in vars(row).values())
    finally:
        engine.dispose()


def test_token_create_rejects_an_unknown_scope(fresh_database_url: str) -> None:
    result = CliRunner().invoke(
        app, ["token", "create", "--name", "x", "--scope", "admin"], env={"DATABASE_URL": fresh_database_url}
    )
    assert result.exit_code == 2
    assert "admin" in result.output


def test_serve_on_a_busy_port_says_so_and_exits_2(embedded_home: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env["NIRVANA_HOME"] = str(embedded_home)
        done = subprocess.run(
            [sys.executable, "-m", "nirvana", "serve", "--port", str(port)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port}" in lines[0] and "--port" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not (embedded_home / "pg").exists()  # checked before anything started


def test_server_errors_print_detail_and_code_without_traceback(free_port: int) -> None:
    result = CliRunner().invoke(app, ["show", "0" * 64, "--url", f"http://127.0.0.1:{free_port}"])
    assert result.exit_code == 1
    assert "(unreachable)" in result.stderr and "Traceback" not in result.output
