"""``nirvana export ID --hf --to DIR`` against the real API: the folder holds the init
and the mask as safetensors, a config, and a model card that huggingface_hub's
``ModelCard`` parses, with the verdict table and the BibTeX entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from db.session import make_engine
from nirvana import Client
from nirvana.cli import app
from nirvana.lottery.tickets.files import load_tensors
from tests.nirvana.conftest import LiveApi
from tests.support.tickets import make_ticket

huggingface_hub = pytest.importorskip("huggingface_hub")


def _push(client: Client, folder: Path, **manifest: object) -> str:
    folder.mkdir()
    files = make_ticket(title="IMP level 3 on digits", tags=["imp"])
    files.manifest.update(manifest)
    (folder / "ticket.json").write_text(json.dumps(files.manifest))
    (folder / "mask.safetensors").write_bytes(files.mask_bytes())
    return client.push(folder).id


def _verified(database_url: str, ticket_id: str) -> None:
    """The verification finished as a worker would record it (no worker in this test)."""
    runs = {
        "ticket": {"test_accuracy": 0.912, "density": 0.5}, "dense": {"test_accuracy": 0.905, "density": 1.0},
        "reinit": {"test_accuracy": 0.801, "density": 0.5}, "random_mask": {"test_accuracy": 0.78, "density": 0.5},
    }  # fmt: skip
    result = {"runs": runs, "reproduced": True, "winning": True, "tolerance": 0.02, "device": "cpu", "torch_version": "2.x"}
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE verifications SET state = 'succeeded', progress = 1, result = CAST(:r AS jsonb), "
                 "finished_at = now() WHERE ticket_id = :t"),
            {"r": json.dumps(result), "t": ticket_id},
        )  # fmt: skip
    engine.dispose()


def test_export_hf_writes_a_folder_the_hub_takes(live_api: LiveApi, tmp_path: Path) -> None:
    with Client(live_api.url, token=live_api.token, home=tmp_path / "h") as client:
        parent = _push(client, tmp_path / "p")
        child = _push(client, tmp_path / "c", parent=parent, init={"scheme": "kaiming_normal", "seed": 1, "rewind_step": 0})
    _verified(live_api.database_url, child)

    out = tmp_path / "hub"
    result = CliRunner().invoke(
        app, ["export", child[:12], "--hf", "--to", str(out), "--hub-namespace", "lab", "--url", live_api.url]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "mask.safetensors", "model.safetensors"]

    sent_mask = load_tensors((tmp_path / "c" / "mask.safetensors").read_bytes())
    got_mask = load_tensors((out / "mask.safetensors").read_bytes())
    assert sent_mask.keys() == got_mask.keys() and all((sent_mask[k] == got_mask[k]).all() for k in sent_mask)
    init = load_tensors((out / "model.safetensors").read_bytes())
    assert set(got_mask) < set(init)  # the whole state_dict, masks only for what is pruned

    config = json.loads((out / "config.json").read_text())
    assert (config["architecture"], config["task"], config["ticket_id"]) == ("lenet_32_16", "digits", child)
    assert config["input_shape"] == [1, 8, 8] and config["num_classes"] == 10 and config["parent"] == parent

    card = huggingface_hub.ModelCard.load(out / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "nirvana" and data["license"] == "cc-by-4.0"
    assert {"lottery-ticket", "lenet_32_16", "digits", "imp"} <= set(data["tags"])
    assert data["metrics"] == ["accuracy"] and "datasets" not in data  # digits has no Hub dataset
    assert data["base_model"] == f"lab/nirvana-{parent[:12]}"
    assert "| ticket | 91.20% | 50.00% |" in card.text and "| random mask | 78.00% | 50.00% |" in card.text
    assert "Verdict: **winning**" in card.text
    assert "```bibtex\n@misc{nirvana:" in card.text and child in card.text and "verdict: " in card.text
    assert f'Client("{live_api.url}").load("{child[:12]}")' in card.text


def test_export_hf_of_an_unverified_ticket_without_parent_or_namespace(live_api: LiveApi, tmp_path: Path) -> None:
    with Client(live_api.url, token=live_api.token, home=tmp_path / "h") as client:
        ticket = _push(client, tmp_path / "t", task="digits")
    out = tmp_path / "hub"
    result = CliRunner().invoke(app, ["export", ticket, "--hf", "--to", str(out), "--url", live_api.url])
    assert result.exit_code == 0, result.output
    card = huggingface_hub.ModelCard.load(out / "README.md")
    assert "base_model" not in card.data.to_dict() and "Not verified yet" in card.text
