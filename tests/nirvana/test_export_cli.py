"""``nirvana export`` against the real API: masked and compact folders, ONNX."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nirvana import Client
from nirvana.cli import app
from nirvana.lottery.interop.export import load_exported
from tests.nirvana.conftest import LiveApi
from tests.support.tickets import make_ticket


@pytest.mark.parametrize("flags", [[], ["--compact"], ["--compact", "--onnx"]])
def test_export_writes_a_model_that_computes_the_ticket(live_api: LiveApi, tmp_path: Path, flags: list[str]) -> None:
    files = make_ticket(density=0.05)
    env = {"NIRVANA_URL": live_api.url, "NIRVANA_HOME": str(tmp_path / "home")}
    with Client(url=live_api.url, token=live_api.token, home=tmp_path / "home") as client:
        ticket = client.upload(files.manifest, files.mask)
        model, _ = client.load(ticket.id)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["export", ticket.short_id, "--to", str(out), *flags], env=env)
    assert result.exit_code == 0, result.output
    exported = load_exported(out)
    x = torch.randn(5, 1, 8, 8)  # digits: 1x8x8
    torch.testing.assert_close(exported(x), model.eval()(x), rtol=1e-5, atol=1e-5)
    small = "--compact" in flags
    assert (out / "mask.safetensors").is_file() == small
    if small:
        assert sum(p.numel() for p in exported.parameters()) < sum(p.numel() for p in model.parameters())
    if "--onnx" in flags:
        ort = pytest.importorskip("onnxruntime")
        (got,) = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})
        torch.testing.assert_close(torch.from_numpy(got), model(x), rtol=1e-4, atol=1e-4)
