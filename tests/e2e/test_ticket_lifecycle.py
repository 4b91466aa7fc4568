"""The whole path through real processes: find a ticket by IMP on digits, upload it with
the client to a real uvicorn, let a real worker process verify it on real PostgreSQL,
find it under its task, download it and compare tensor for tensor."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest
import torch

from nirvana.lottery.pruning.config import SearchConfig
from nirvana.lottery.pruning.imp import search_ticket
from nirvana.lottery.data.tasks import load_task
from nirvana.lottery.tickets.manifest import Manifest, TicketFolder
from nirvana.lottery.tickets.files import load_tensors
from nirvana.lottery.training.recipes import Recipe
from nirvana.client import Client
from tests.support.tokens import committed_token
from tests.support.processes import running, service_env, uvicorn_server

pytestmark = pytest.mark.e2e

RECIPE = Recipe(optimizer="adam", lr=3e-3, batch_size=64, steps=150, data_seed=0)


def _imp_ticket(folder: Path) -> Path:
    config = SearchConfig(architecture="lenet_64_32", recipe=RECIPE, levels=2, rate=0.5, seed=3)
    levels = search_ticket(config, load_task("digits"))
    last = levels[-1]
    manifest = Manifest.model_validate(
        {
            "architecture": "lenet_64_32",
            "task": "digits",
            "init": {"scheme": "kaiming_normal", "seed": 3, "rewind_step": 0},
            "recipe": RECIPE.model_dump(),
            "claimed": {"test_accuracy": last.test_accuracy},
            "method": "imp",
            "title": f"lenet_64_32 on digits at {last.density:.0%} (IMP level {last.level})",
            "tags": ["imp", "e2e"],
        }
    )
    return TicketFolder.write(folder, manifest, last.mask, last.init)


def test_upload_verify_browse_download(fresh_database_url: str, tmp_path: Path) -> None:
    token = committed_token(fresh_database_url, "e2e")
    folder = _imp_ticket(tmp_path / "found")
    env = service_env(fresh_database_url, tmp_path / "blobs", NIRVANA_POLL_SECONDS="0.5",
                      NIRVANA_HEARTBEAT_SECONDS="0.5", NIRVANA_HOME=str(tmp_path / "home"))

    with ExitStack() as stack:
        url = stack.enter_context(uvicorn_server(env, tmp_path / "api.log"))
        stack.enter_context(running(["-m", "worker"], env, tmp_path / "worker.log"))
        client = stack.enter_context(Client(url=url, token=token, cache_dir=tmp_path / "client-cache"))
        ticket = client.push(folder)
        assert ticket.verifications[0].state == "queued"

        verification = client.wait(ticket.id, timeout=600, progress=False)
        assert verification.state == "succeeded", (tmp_path / "worker.log").read_text()
        result = verification.result
        assert result is not None
        assert result["schema"] == 2 and set(result["arms"]) == {"ticket", "reinit", "random_mask", "dense"}
        assert result["reproduced"] is True, result
        assert result["torch_version"] == torch.__version__ and result["device"].startswith("cpu")

        listed = [t.id for t in client.tickets(task="digits")]
        assert ticket.id in listed
        stored = client.ticket(ticket.short_id)
        accuracy = result["arms"]["ticket"]["early_stop_test_accuracy"]["mean"]
        assert stored.verified is True and stored.verified_accuracy == accuracy
        assert stored.verdict == result["verdict"]

        downloaded = client.download(ticket.id, tmp_path / "downloaded")

    for name in ("mask.safetensors", "init.safetensors"):
        sent = load_tensors((folder / name).read_bytes())
        got = load_tensors((downloaded / name).read_bytes())
        assert sent.keys() == got.keys()
        for key in sent:
            assert sent[key].dtype == got[key].dtype and torch.equal(sent[key], got[key]), (name, key)
