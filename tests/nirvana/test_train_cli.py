"""``nirvana train`` against the real API: the compact model trains, dense beside it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from nirvana import Client
from nirvana.cli import app
from tests.nirvana.conftest import LiveApi
from tests.support.tickets import make_ticket


def test_train_prints_accuracy_beside_the_verified_one_and_time_beside_dense(live_api: LiveApi, tmp_path: Path) -> None:
    files = make_ticket(density=0.1)
    env = {"NIRVANA_URL": live_api.url, "NIRVANA_HOME": str(tmp_path / "home")}
    with Client(url=live_api.url, token=live_api.token, home=tmp_path / "home") as client:
        ticket = client.upload(files.manifest, files.mask)
    result = CliRunner().invoke(app, ["train", ticket.short_id, "--task", "digits", "--steps", "40"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("ticket   (compact,") and "(verified -)" in line and "40 steps" in line for line in lines)
    assert any(line.startswith("dense    (dense,") and "as fast" in line for line in lines)
    bad = CliRunner().invoke(app, ["train", ticket.short_id, "--task", "mnist1d", "--steps", "5"], env=env)
    assert bad.exit_code != 0 and "differ" in bad.output
