"""``nirvana login``/``logout`` and the token the client then sends; ``nirvana
tickets`` refusing unknown filters and showing whole titles; ``nirvana cite`` and the
ticket page's citation and snippet. All against the real API."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import httpx
from typer.testing import CliRunner

from nirvana import Client
from nirvana.cli import app
from tests.nirvana.conftest import LiveApi
from tests.support.tickets import make_ticket

LONG_TITLE = "IMP on LeNet-32-16 with late rewinding, twelve levels, 20 percent per level, seed 0"


def _folder(path: Path, **kwargs: object) -> Path:
    path.mkdir()
    files = make_ticket(**kwargs)  # type: ignore[arg-type]
    (path / "ticket.json").write_text(json.dumps(files.manifest))
    (path / "mask.safetensors").write_bytes(files.mask_bytes())
    return path


def test_login_stores_a_private_token_that_writes_use_and_the_env_overrides(live_api: LiveApi, tmp_path: Path) -> None:
    home = tmp_path / "home"
    runner = CliRunner()
    env = {"NIRVANA_HOME": str(home), "NIRVANA_URL": live_api.url, "NIRVANA_TOKEN": ""}
    logged = runner.invoke(app, ["login"], input=live_api.token + "\n", env=env)
    assert logged.exit_code == 0, logged.output
    assert live_api.token not in logged.stdout  # asked with the input hidden, never echoed
    token_file = home / "token"
    assert token_file.read_text().strip() == live_api.token and token_file.stat().st_mode & 0o777 == 0o600

    pushed = runner.invoke(app, ["push", str(_folder(tmp_path / "t"))], env=env)
    assert pushed.exit_code == 0, pushed.output
    overridden = runner.invoke(app, ["push", str(tmp_path / "t")], env={**env, "NIRVANA_TOKEN": "nv_not_a_token"})
    assert overridden.exit_code == 1 and "401" not in overridden.stdout
    assert re.search(r"\((invalid_token|unauthorized)\)", overridden.stderr), overridden.stderr

    assert runner.invoke(app, ["logout"], env=env).exit_code == 0
    assert not token_file.exists()
    with Client(live_api.url, home=home) as client:
        assert client.token is None


def test_tickets_refuses_an_unknown_task_and_architecture(live_api: LiveApi) -> None:
    runner = CliRunner()
    typo = runner.invoke(app, ["tickets", "--task", "digts", "--url", live_api.url])
    assert typo.exit_code == 1
    assert "unknown task 'digts'" in typo.stderr and "digits" in typo.stderr and "fashion-mnist" in typo.stderr
    arch = runner.invoke(app, ["tickets", "--arch", "lenot_300", "--url", live_api.url])
    assert arch.exit_code == 1 and "(unknown_architecture)" in arch.stderr
    empty = runner.invoke(app, ["tickets", "--task", "mnist", "--url", live_api.url])
    assert empty.exit_code == 0 and "no tickets match" in empty.stderr  # known, just empty


def test_tickets_shows_whole_titles(live_api: LiveApi, tmp_path: Path) -> None:
    with Client(live_api.url, token=live_api.token, home=tmp_path / "h") as client:
        client.push(_folder(tmp_path / "t", title=LONG_TITLE))
    listed = CliRunner().invoke(app, ["tickets", "--url", live_api.url])
    assert listed.exit_code == 0 and LONG_TITLE in listed.stdout


def test_cite_and_the_ticket_page_give_one_bibtex_entry_naming_the_server(live_api: LiveApi, tmp_path: Path) -> None:
    with Client(live_api.url, token=live_api.token, home=tmp_path / "h") as client:
        ticket = client.push(_folder(tmp_path / "t", title="50% of weights & a_bit"))
    cited = CliRunner().invoke(app, ["cite", ticket.short_id, "--url", live_api.url])
    assert cited.exit_code == 0, cited.output
    entry = cited.stdout
    assert entry.startswith(f"@misc{{nirvana:{ticket.short_id},") and entry.rstrip().endswith("}")
    for fact in (ticket.id, "digits", "lenet\\_32\\_16", "verdict: not yet verified", f"{live_api.url}/tickets/{ticket.id}"):
        assert fact in entry, (fact, entry)
    assert "50\\% of weights \\& a\\_bit" in entry  # BibTeX's special characters escaped
    assert entry.count("{") == entry.count("}")

    page = httpx.get(f"{live_api.url}/tickets/{ticket.short_id}", timeout=30)
    assert page.status_code == 200
    shown = re.search(r'<pre id="bibtex"><code>(.*?)</code></pre>', page.text, re.S)
    assert shown is not None and html.unescape(shown.group(1)) == entry
    assert f'Client("{live_api.url}").load("{ticket.short_id}")' in html.unescape(page.text)
