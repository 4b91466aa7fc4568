"""Schemathesis against a real uvicorn on a migrated database: every standard check,
the stateful phase through the document's links included, a few examples per
operation. The bounds keep it to a couple of minutes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from db.session import make_engine
from db.tokens import create_token
from tests.support.processes import ROOT, free_port, running, service_env, wait_until_healthy

pytest.importorskip("schemathesis")

# Where the schema cannot say what the server refuses, the check is told which answers
# are still right for schema-valid data: an upload's files must be a manifest and
# safetensors that fit (the hooks send real ones too), a transfer's recipe obeys a
# steps x batch size bound and the ticket must fit the task, a cursor is opaque, and an
# architecture name is parametric (an unknown one is 422 unknown_architecture).
CONFIG = """
[[operations]]
include-name = "POST /api/v1/tickets"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-name = "POST /api/v1/tickets/{ref}/verifications"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-name = "GET /api/v1/tickets"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422", "429", "5xx"]
"""


def _token(database_url: str) -> str:
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            _, secret = create_token(session, user_name="fuzzer", token_name="st", scopes=("read", "write", "verify"))
            session.commit()
    finally:
        engine.dispose()
    return secret


def test_schemathesis_finds_nothing(fresh_database_url: str, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    secret = _token(fresh_database_url)
    env = service_env(
        fresh_database_url,
        tmp_path / "blobs",
        NIRVANA_RATE_LIMIT_API_PER_MINUTE="0",
        NIRVANA_RATE_LIMIT_DOWNLOADS_PER_MINUTE="0",
        SCHEMATHESIS_HOOKS="tests.api.schemathesis_hooks",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    port = free_port()
    server = ["-m", "uvicorn", "api.main:app_from_env", "--factory", "--host", "127.0.0.1", "--port", str(port), "--no-proxy-headers"]
    with running(server, env, tmp_path / "api.log") as process:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url, process, tmp_path / "api.log", timeout=120)  # a shared, busy machine
        args = [
            sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", f"{url}/openapi.json",
            "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", "5",
            "--request-timeout", "120", "--max-response-time", "120", "--seed", "1", "--no-color", "--header", f"Authorization: Bearer {secret}",
        ]  # fmt: skip
        # From tmp_path: Schemathesis keeps a cache in its working directory.
        result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=480)
    # The reproduction commands hold whole uploads; the findings read better without them.
    report = "\n".join(line for line in (result.stdout + result.stderr).splitlines() if "curl " not in line)
    assert result.returncode == 0, report[-20_000:]
    assert "API Links:" in report and " 0 covered" not in report, report[-5_000:]
