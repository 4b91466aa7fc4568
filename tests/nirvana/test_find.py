"""``nirvana find``: ticket folders that pass prepare_ticket, summary, chart, resuming."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from nirvana.commands.finding import FindConfig, open_find, run_find
from nirvana.lottery.data.tasks import load_task
from nirvana.lottery.tickets.manifest import TicketFolder, prepare_ticket
from nirvana.lottery.training.recipes import Recipe
from nirvana.cli import app

BASE = ["find", "--arch", "lenet_16", "--task", "digits", "--steps", "12", "--device", "cpu", "--rate", "0.5"]


def _uploadable(folder: Path) -> float:
    manifest, _, _ = TicketFolder.read(folder)
    ticket = prepare_ticket(
        (folder / "ticket.json").read_bytes(), (folder / "mask.safetensors").read_bytes(),
        (folder / "init.safetensors").read_bytes(),
    )  # fmt: skip
    assert ticket.manifest.claimed.test_accuracy == manifest.claimed.test_accuracy
    return ticket.sparsity.density


def test_find_writes_tickets_summary_and_chart(tmp_path: Path) -> None:
    out = tmp_path / "tickets"
    result = CliRunner().invoke(app, [*BASE, "--levels", "2", "--controls", "--rewind", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "weights remaining %" in result.stdout and "reinit %" in result.stdout
    densities = [_uploadable(out / f"level_{i:02d}") for i in range(3)]
    assert densities[0] == 1.0 and densities[0] > densities[1] > densities[2]
    manifest, _, _ = TicketFolder.read(out / "level_02")
    assert manifest.method == "imp" and "layerwise" in manifest.tags and manifest.init.rewind_step == 2
    lines = (out / "summary.csv").read_text().splitlines()
    assert lines[0] == "level,weights remaining %,test accuracy %,reinit %,random_mask %" and len(lines) == 4
    assert "| level |" in (out / "summary.md").read_text()
    png = (out / "accuracy.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


def test_find_resumes_without_retraining_and_refuses_other_arguments(tmp_path: Path) -> None:
    out = tmp_path / "t"
    first = CliRunner().invoke(app, [*BASE, "--levels", "1", "--out", str(out)])
    assert first.exit_code == 0, first.output
    stamps = {p: p.stat().st_mtime_ns for p in [*(out / "state").iterdir(), *(out / "level_01").iterdir()]}
    second = CliRunner().invoke(app, [*BASE, "--levels", "2", "--out", str(out)])
    assert second.exit_code == 0, second.output
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # finished levels untouched
    assert (out / "level_02" / "ticket.json").is_file() and len((out / "summary.csv").read_text().splitlines()) == 4
    other = CliRunner().invoke(app, [*BASE, "--levels", "2", "--seed", "1", "--out", str(out)])
    assert other.exit_code == 2 and "seed: 0 there, 1 now" in other.stderr and "find_conflict" in other.stderr


def test_interrupted_search_resumes_from_the_last_finished_level(tmp_path: Path) -> None:
    config = FindConfig(architecture="lenet_16", task="digits", recipe=Recipe(lr=1e-3, batch_size=64, steps=10),
                        strategy="global", exclude=["output"], rate=0.5, levels=3)  # fmt: skip
    data = load_task("digits")

    class Stop(Exception):
        pass

    def stop_after_1(record: object) -> None:
        if getattr(record, "level") == 1:
            raise Stop

    with pytest.raises(Stop):
        run_find(open_find(tmp_path, config), data, on_level=stop_after_1)
    trained: list[int] = []
    run = open_find(tmp_path, config)
    assert [r.level for r in run.finished] == [0, 1]
    records = run_find(run, data, on_progress=lambda lv, name, step, total: trained.append(lv) if step == 0 else None)
    assert trained == [2, 3] and [r.level for r in records] == [0, 1, 2, 3]
    assert [_uploadable(tmp_path / f"level_{i:02d}") for i in range(4)] == [r.density for r in records]


def test_find_at_init_and_bad_arguments(tmp_path: Path) -> None:
    out = tmp_path / "synflow"
    result = CliRunner().invoke(app, [*BASE, "--strategy", "synflow", "--density", "0.1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert _uploadable(out / "level_00") == pytest.approx(0.1, abs=1e-3) and not (out / "level_01").exists()
    assert TicketFolder.read(out / "level_00")[0].method == "synflow"
    snip = CliRunner().invoke(app, [*BASE, "--strategy", "snip", "--out", str(tmp_path / "snip")])
    assert snip.exit_code == 1 and "density" in snip.stderr and not (tmp_path / "snip").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    busy = CliRunner().invoke(app, [*BASE, "--out", str(tmp_path / "full")])
    assert busy.exit_code == 2 and "not empty" in busy.stderr
