"""What the paper-reproduction benches share: IMP with the controls, a table, a chart.

``imp_with_controls`` runs ``nirvana.lottery.pruning.imp.search_ticket`` and, as each level arrives
(``on_level``), trains the level's two controls under the same recipe and data order
with ``nirvana.lottery.training.loop.train``:

- ``reinit``: the level's mask on a fresh init (same scheme, another seed), the LTH
  paper's "randomly reinitialized" control;
- ``random_mask``: ``random_mask_like`` (same per-layer counts) on the ticket's init.

Level 0 is the dense network; its accuracy is the ``dense`` column.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from nirvana.lottery.models.architectures import build_model
from nirvana.commands.charts import plot_accuracy_vs_remaining
from nirvana.lottery.models.init import generate_init
from nirvana.lottery.pruning.masks import random_mask_like
from nirvana.lottery.pruning.config import SearchConfig
from nirvana.lottery.pruning.imp import LevelResult, search_ticket
from nirvana.lottery.data.tasks import TaskData, TaskSpec
from nirvana.lottery.training.loop import train
from nirvana.lottery.training.recipes import Recipe

#: Seeds of the controls are offset so they never coincide with a trial's init seed.
REINIT_SEED_OFFSET = 1_000_003


@dataclass
class Row:
    """One level of one trial; controls are ``None`` where they were not trained."""

    trial: int
    level: int
    density: float
    ticket: float
    reinit: float | None
    random_mask: float | None
    dense: float


def _train_masked(architecture: str, spec: TaskSpec, data: TaskData, recipe: Recipe,
                  init: dict[str, torch.Tensor], mask: dict[str, torch.Tensor]) -> float:  # fmt: skip
    model = build_model(architecture, spec.input_shape, spec.num_classes)
    model.load_state_dict(init)
    return train(model, data, recipe, mask=mask, eval_every=0).test_accuracy


def imp_with_controls(
    architecture: str,
    data: TaskData,
    spec: TaskSpec,
    recipe: Recipe,
    *,
    levels: int,
    rate: float,
    output_rate: float | None,
    scheme: str,
    trial: int,
    controls_at: Sequence[int] | None = None,
) -> list[Row]:
    """IMP for ``levels`` rounds with init seed ``trial`` (data order ``trial`` too),
    controls at every pruned level or only at ``controls_at``. Prints a line per level
    on stderr as it finishes."""
    recipe = recipe.model_copy(update={"data_seed": trial})
    rows: list[Row] = []
    start = time.perf_counter()

    def on_level(res: LevelResult) -> None:
        reinit = random = None
        if res.level > 0 and (controls_at is None or res.level in controls_at):
            fresh = generate_init(architecture, spec, scheme, trial + REINIT_SEED_OFFSET + res.level)
            reinit = _train_masked(architecture, spec, data, recipe, fresh, res.mask)
            random = _train_masked(architecture, spec, data, recipe, res.init,
                                   random_mask_like(res.mask, seed=trial * 1000 + res.level))  # fmt: skip
        dense = rows[0].ticket if rows else res.test_accuracy
        rows.append(Row(trial, res.level, res.density, res.test_accuracy, reinit, random, dense))
        print(f"  trial {trial} level {res.level:2d}  {100 * res.density:6.2f}% left  ticket {res.test_accuracy:.4f}"
              f"  reinit {_fmt(reinit)}  random {_fmt(random)}  [{time.perf_counter() - start:.0f}s]",
              file=sys.stderr, flush=True)  # fmt: skip

    config = SearchConfig(architecture=architecture, recipe=recipe, levels=levels, rate=rate, output_rate=output_rate,
                          scheme=scheme, seed=trial)  # fmt: skip
    search_ticket(config, data, on_level=on_level)
    return rows


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "   -  "
    return f"{100 * value:6.2f}" if pct else f"{value:.4f}"


def mean(values: Sequence[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return sum(got) / len(got) if got else None


def average(rows: list[Row]) -> list[Row]:
    """Rows averaged over trials, level by level (trial = -1)."""
    by_level: dict[int, list[Row]] = {}
    for row in rows:
        by_level.setdefault(row.level, []).append(row)
    return [
        Row(-1, level, rs[0].density, mean([r.ticket for r in rs]) or 0.0, mean([r.reinit for r in rs]),
            mean([r.random_mask for r in rs]), mean([r.dense for r in rs]) or 0.0)
        for level, rs in sorted(by_level.items())
    ]  # fmt: skip


def table(rows: list[Row]) -> str:
    """A Markdown table: weights remaining and test accuracy (%) of each run."""
    lines = ["| level | weights remaining % | ticket | reinit | random mask | dense |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.level} | {100 * r.density:.2f} | {_fmt(r.ticket, True)} | {_fmt(r.reinit, True)} "
                     f"| {_fmt(r.random_mask, True)} | {_fmt(r.dense, True)} |")  # fmt: skip
    return "\n".join(lines)


def chart(rows: list[Row], path: Path, title: str) -> Path:
    """Test accuracy against weights remaining (log x, reversed: sparser to the right)."""
    return plot_accuracy_vs_remaining(
        path,
        [r.density for r in rows],
        {
            "ticket (IMP, reset to init)": [r.ticket for r in rows],
            "reinit (same mask, new init)": [r.reinit for r in rows],
            "random mask (same per-layer counts)": [r.random_mask for r in rows],
        },
        title=title,
        dense=rows[0].dense,
    )
