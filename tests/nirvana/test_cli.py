"""The ``nirvana`` command: tokens against a real database, a busy port, errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from db.models.users import ApiToken
from db.session import make_engine, make_sessionmaker, unit_of_work
from db.tokens import authenticate, create_token, hash_token
from nirvana.cli import app
from tests.nirvana.conftest import LiveApi
from tests.support.tickets import make_ticket

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
        app, ["token", "create", "--name", "x", "--scope", "root"], env={"DATABASE_URL": fresh_database_url}
    )
    assert result.exit_code == 2
    assert "root" in result.output


def test_token_create_with_the_admin_scope_makes_a_token_that_may_do_everything(fresh_database_url: str) -> None:
    result = CliRunner().invoke(
        app, ["token", "create", "--name", "ops", "--user", "root", "--scope", "admin"],
        env={"DATABASE_URL": fresh_database_url},
    )
    assert result.exit_code == 0, result.output
    engine = make_engine(fresh_database_url)
    try:
        with unit_of_work(make_sessionmaker(engine)) as session:
            token = authenticate(session, result.stdout.strip())
            assert token is not None and token.scopes == ["admin"]
            assert token.is_admin and all(token.allows(scope) for scope in ("read", "write", "verify"))
    finally:
        engine.dispose()


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


def test_push_tickets_show_status_pull_against_the_api(live_api: LiveApi, tmp_path: Path) -> None:
    folder = tmp_path / "t"
    folder.mkdir()
    files = make_ticket(title="cli ticket")
    (folder / "ticket.json").write_text(json.dumps(files.manifest))
    (folder / "mask.safetensors").write_bytes(files.mask_bytes())
    env = {"NIRVANA_URL": live_api.url, "NIRVANA_TOKEN": live_api.token, "NIRVANA_HOME": str(tmp_path / "home")}
    runner = CliRunner()

    pushed = runner.invoke(app, ["push", str(folder)], env=env)
    assert pushed.exit_code == 0, pushed.output
    ticket_id = pushed.stdout.split()[0]
    assert len(ticket_id) == 64 and "queued" in pushed.stdout

    listed = runner.invoke(app, ["tickets", "--task", "digits", "--sort", "-sparsity"], env=env)
    assert listed.exit_code == 0 and ticket_id[:12] in listed.stdout and "cli ticket" in listed.stdout
    shown = runner.invoke(app, ["show", ticket_id[:12]], env=env)
    assert shown.exit_code == 0 and ticket_id in shown.stdout and "fc1.weight" in shown.stdout
    status = runner.invoke(app, ["status", ticket_id[:12]], env=env)
    assert status.exit_code == 0 and "queued" in status.stdout
    pulled = runner.invoke(app, ["pull", ticket_id[:12], "--out", str(tmp_path / "pulled")], env=env)
    assert pulled.exit_code == 0, pulled.output
    assert sorted(p.name for p in (tmp_path / "pulled").iterdir()) == [
        "init.safetensors", "mask.safetensors", "ticket.json",
    ]  # fmt: skip

    missing = runner.invoke(app, ["show", "0" * 64], env=env)
    assert missing.exit_code == 1
    assert "(ticket_not_found)" in missing.stderr and "Traceback" not in missing.output


def test_migrate_is_idempotent(fresh_database_url: str) -> None:
    result = CliRunner().invoke(app, ["migrate"], env={"DATABASE_URL": fresh_database_url})
    assert result.exit_code == 0, result.output
    assert "newest migration" in result.stdout


def test_gc_removes_an_orphaned_blob_past_the_grace(fresh_database_url: str, tmp_path: Path) -> None:
    from db.blobs import LocalBlobStorage

    storage = LocalBlobStorage(tmp_path / "blobs")
    orphan = storage.put(b"left by an upload that crashed")
    env = {"DATABASE_URL": fresh_database_url, "NIRVANA_BLOB_DIR": str(storage.root)}
    kept = CliRunner().invoke(app, ["gc"], env=env)
    assert kept.exit_code == 0, kept.output
    assert storage.exists(orphan) and "removed 0 unreferenced and 0 orphaned" in kept.stderr
    dry = CliRunner().invoke(app, ["gc", "--grace-minutes", "0", "--dry-run"], env=env)
    assert orphan in dry.stdout and storage.exists(orphan)
    gone = CliRunner().invoke(app, ["gc", "--grace-minutes", "0"], env=env)
    assert gone.exit_code == 0 and not storage.exists(orphan)


def test_verify_queues_a_transfer_with_fewer_steps(
    live_api: LiveApi, tmp_path: Path
) -> None:
    from tests.support.datasets import write_idx_set

    write_idx_set(tmp_path / "data" / "mnist", n_train=20, n_test=10)  # the live API's data_dir
    folder = tmp_path / "ticket"
    folder.mkdir()
    files = make_ticket(architecture="lenet_16", task="fashion-mnist")
    (folder / "ticket.json").write_text(json.dumps(files.manifest))
    (folder / "mask.safetensors").write_bytes(files.mask_bytes())
    env = {"NIRVANA_URL": live_api.url, "NIRVANA_HOME": str(tmp_path / "home"), "NIRVANA_TOKEN": live_api.token}
    pushed = CliRunner().invoke(app, ["push", str(folder)], env=env)
    ticket_id = pushed.stdout.split()[0]

    engine = make_engine(live_api.database_url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        _, verifier = create_token(session, user_name="alice", token_name="v", scopes=("read", "verify"))
    engine.dispose()
    verify_env = {**env, "NIRVANA_TOKEN": verifier}
    result = CliRunner().invoke(app, ["verify", ticket_id, "--task", "mnist", "--steps", "7"], env=verify_env)
    assert result.exit_code == 0, result.output
    assert "queued on mnist" in result.stdout
    import httpx

    verifications = httpx.get(f"{live_api.url}/api/v1/tickets/{ticket_id}").json()["verifications"]
    assert [(v["task"], v["recipe"]["steps"]) for v in verifications][-1] == ("mnist", 7)
    unknown = CliRunner().invoke(app, ["verify", ticket_id, "--task", "imagenet", "--steps", "7"], env=verify_env)
    assert unknown.exit_code != 0 and "unknown task 'imagenet'" in unknown.output


def test_verify_again_queues_a_cancelled_ticket_once_more_on_its_own_task(live_api: LiveApi, tmp_path: Path) -> None:
    folder = tmp_path / "ticket"
    folder.mkdir()
    files = make_ticket()
    (folder / "ticket.json").write_text(json.dumps(files.manifest))
    (folder / "mask.safetensors").write_bytes(files.mask_bytes())
    env = {"NIRVANA_URL": live_api.url, "NIRVANA_HOME": str(tmp_path / "home"), "NIRVANA_TOKEN": live_api.token}
    ticket_id = CliRunner().invoke(app, ["push", str(folder)], env=env).stdout.split()[0]

    pending = CliRunner().invoke(app, ["verify", ticket_id, "--again"], env=env)
    assert pending.exit_code != 0 and "same_task" in pending.output
    both = CliRunner().invoke(app, ["verify", ticket_id, "--again", "--task", "digits"], env=env)
    assert both.exit_code != 0 and "either --task" in both.output

    from nirvana import Client

    with Client(url=live_api.url, token=live_api.token, home=tmp_path / "c") as client:
        client.cancel(client.latest_verification(ticket_id).id)
        again = CliRunner().invoke(app, ["verify", ticket_id, "--again"], env=env)
        assert again.exit_code == 0, again.output
        assert "queued on digits" in again.stdout
        states = [v.state.value for v in client.ticket(ticket_id).verifications]
    assert sorted(states) == ["cancelled", "queued"]
