"""Outages answer quickly and as problems: a database that is down or frozen is 503
``database_unavailable`` with ``Retry-After``; a full disk is 507; an unforeseen error
is a 500 problem that says ``Connection: close``.

The database tests run a real uvicorn against a PostgreSQL cluster the test starts
itself (``tests/support/cluster.py``), so that it may stop and freeze it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from db.migrate import upgrade
from db.session import make_engine, make_sessionmaker, unit_of_work
from db.tokens import create_token
from tests.support import cluster as pg_cluster
from tests.support import postgres
from tests.support.polling import until
from tests.support.processes import ROOT, free_port, running, service_env, wait_until_healthy
from tests.support.tickets import make_ticket

PROBLEM = "application/problem+json"
STARTUP_SECONDS = 180

needs_cluster = pytest.mark.skipif(not pg_cluster.available(), reason="needs PostgreSQL 15's initdb and pg_ctl")


@pytest.fixture
def own_cluster() -> Iterator[pg_cluster.Cluster]:
    with pg_cluster.running_cluster() as cluster:
        yield cluster


@pytest.fixture
def api_on_own_cluster(own_cluster: pg_cluster.Cluster, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(URL of a real uvicorn on a migrated database of ``own_cluster``, a write token)."""
    database_url = postgres.create_database(own_cluster.url, "nirvana_outage")
    engine = make_engine(database_url)
    upgrade(engine)
    with unit_of_work(make_sessionmaker(engine)) as session:
        _, secret = create_token(session, user_name="alice", token_name="t", scopes=("read", "write"))
    engine.dispose()
    port, log = free_port(), tmp_path / "api.log"
    command = ["-m", "uvicorn", "api.main:app_from_env", "--factory", "--host", "127.0.0.1", "--port", str(port)]
    with running(command, service_env(database_url, tmp_path / "blobs"), log) as process:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url, process, log, timeout=STARTUP_SECONDS)  # a busy machine starts slowly
        yield url, secret


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "database_unavailable"
    assert int(response.headers["retry-after"]) > 0


def _until_ok(url: str, timeout: float = 60) -> None:
    def answers() -> bool:
        try:
            return httpx.get(f"{url}/api/v1/tickets", timeout=10).status_code == 200
        except httpx.TransportError:
            return False

    until(answers, timeout, "the API to recover")


@needs_cluster
def test_a_stopped_database_is_a_503_problem_with_retry_after_and_the_api_recovers(
    own_cluster: pg_cluster.Cluster, api_on_own_cluster: tuple[str, str]
) -> None:
    url, token = api_on_own_cluster
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{url}/api/v1/tickets", timeout=10).status_code == 200
    own_cluster.stop()
    for _ in range(3):
        _assert_unavailable(httpx.get(f"{url}/api/v1/tickets", timeout=10))
        _assert_unavailable(httpx.get(f"{url}/api/v1/health", timeout=10))
        _assert_unavailable(httpx.post(f"{url}/api/v1/tickets", files=make_ticket().multipart(), headers=auth, timeout=10))
    own_cluster.start()
    _until_ok(url)
    created = httpx.post(f"{url}/api/v1/tickets", files=make_ticket().multipart(), headers=auth, timeout=10)
    assert created.status_code == 201, created.text


@needs_cluster
def test_a_frozen_database_is_a_503_problem_not_a_hang(
    own_cluster: pg_cluster.Cluster, api_on_own_cluster: tuple[str, str]
) -> None:
    url, token = api_on_own_cluster
    with httpx.Client(base_url=url, timeout=10) as client:  # the pool now holds live connections
        assert client.get("/api/v1/tickets").status_code == 200
        own_cluster.freeze()
        try:
            # A hang would last as long as the freeze and end in httpx's ReadTimeout.
            # Pages not read before: the read cache may answer one it holds (nobody can
            # change a frozen database) until the monitor notices, then it stands aside.
            for limit in range(1, 6):
                _assert_unavailable(client.get(f"/api/v1/tickets?limit={limit}"))
        finally:
            own_cluster.thaw()
        _until_ok(url)
        assert client.get("/api/v1/tickets?limit=1").status_code == 200


def _mount_namespace() -> list[str] | None:
    """A command prefix that runs in a mount namespace of its own, or None."""
    if shutil.which("unshare") is None:
        return None
    prefix = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
    probe = subprocess.run([*prefix, "true"], capture_output=True)
    return prefix if probe.returncode == 0 else None


def test_a_full_blob_disk_is_a_507_problem_and_keeps_no_row(fresh_database_url: str, tmp_path: Path) -> None:
    prefix = _mount_namespace()
    if prefix is None:
        pytest.skip("needs unshare to mount a tiny tmpfs")
    engine = make_engine(fresh_database_url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        _, token = create_token(session, user_name="alice", token_name="t", scopes=("read", "write"))
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    port = free_port()
    # An 8 KiB filesystem: the init file of the ticket (11 KiB) does not fit.
    script = (
        f"mount -t tmpfs -o size=8k tmpfs {blobs} && exec {sys.executable} -m uvicorn api.main:app_from_env "
        f"--factory --host 127.0.0.1 --port {port}"
    )
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*prefix, "sh", "-c", script], cwd=ROOT, env=service_env(fresh_database_url, blobs),
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_healthy(url, process, log, timeout=STARTUP_SECONDS)
            response = httpx.post(
                f"{url}/api/v1/tickets", files=make_ticket().multipart(with_init=True),
                headers={"Authorization": f"Bearer {token}"}, timeout=30,
            )  # fmt: skip
        finally:
            process.terminate()
            process.wait(timeout=30)
    assert response.status_code == 507, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "insufficient_storage"
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM tickets").scalar_one() == 0
    engine.dispose()


def test_an_unforeseen_error_is_a_500_problem_that_closes_the_connection(database_url: str, tmp_path: Path) -> None:
    app = create_app(ApiSettings(database_url=database_url, blob_dir=tmp_path / "blobs"))

    @app.get("/boom")
    def boom() -> None:  # a route of this test's own: no route of ours should do this
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["connection"] == "close"
    assert response.json()["code"] == "internal_error"
    assert "a bug" not in response.text

