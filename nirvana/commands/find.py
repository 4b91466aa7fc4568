"""``nirvana find``: search for tickets on this machine (IMP, one-shot, SNIP, SynFlow).

The work is :mod:`nirvana.commands.finding`; this module parses options, draws progress bars
(tqdm, on stderr) and prints the summary table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from nirvana.commands._common import EXIT_USAGE, fail, reports_errors
from nirvana.commands.tickets import _table


class _Bars:
    """A level bar and a step bar whose postfix shows the run's latest test accuracy."""

    def __init__(self, total_levels: int, done: int) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.levels = tqdm(total=total_levels, initial=done, desc="levels", unit="level", position=0)
        self.steps: Any = None
        self.current: tuple[int, str] | None = None

    def progress(self, level: int, run: str, step: int, total: int) -> None:
        if self.current != (level, run):
            if self.steps is not None:
                self.steps.close()
            self.current = (level, run)
            # disable=None: off when stderr is no terminal, so logs keep the level bar only.
            self.steps = self._tqdm(
                total=total, desc=f"level {level} {run}", unit="step", position=1, leave=False, disable=None
            )
        self.steps.update(step - self.steps.n)

    def evaluated(self, level: int, run: str, step: int, accuracy: float) -> None:
        if self.steps is not None and self.current == (level, run):
            self.steps.set_postfix(acc=f"{100 * accuracy:.2f}%")

    def level_done(self, record: Any) -> None:
        self.levels.update(1)
        self.levels.set_postfix(density=f"{100 * record.density:.2f}%", acc=f"{100 * record.test_accuracy:.2f}%")

    def close(self) -> None:
        if self.steps is not None:
            self.steps.close()
        self.levels.close()


@reports_errors
def find(
    arch: Annotated[str, typer.Option("--arch", help="Architecture, e.g. lenet_300_100.")],
    task: Annotated[str, typer.Option("--task", help="Task, e.g. fashion-mnist.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder: level_XX/ tickets, summary, chart.")] = Path("tickets"),
    recipe: Annotated[str | None, typer.Option("--recipe", help="Named recipe (lth-lenet, openlth-lenet, ...) [default: the task's].")] = None,
    strategy: Annotated[str, typer.Option("--strategy", help="layerwise, global, random, snip or synflow.")] = "layerwise",
    rate: Annotated[float, typer.Option("--rate", min=0.0, max=0.99, help="Fraction of remaining weights pruned per level.")] = 0.2,
    output_rate: Annotated[float | None, typer.Option("--output-rate", min=0.0, max=0.99, help="Rate of the output layer [default: rate/2 for layerwise/random, as the LTH paper].")] = None,
    conv_rate: Annotated[float | None, typer.Option("--conv-rate", min=0.0, max=0.99, help="Rate of convolutions (layerwise/random) [default: rate].")] = None,
    density: Annotated[float | None, typer.Option("--density", min=0.0, max=1.0, help="Target density: required by snip/synflow; for the others the rate becomes 1 - density^(1/levels) (--levels 1: one-shot).")] = None,
    levels: Annotated[int, typer.Option("--levels", min=0, help="Pruning levels after the dense level 0.")] = 10,
    rewind: Annotated[int, typer.Option("--rewind", min=0, help="Reset to the weights after this many steps (0: the init).")] = 0,
    layers: Annotated[list[str] | None, typer.Option("--layer", help="Prune only this layer (repeat; 'output' = the last).")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", help="Never prune this layer (repeat; 'output' = the last).")] = None,
    controls: Annotated[bool, typer.Option("--controls", help="Also train the reinit and random-mask controls at each level.")] = False,
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Override the recipe's steps (quick runs).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Init seed.")] = 0,
    scheme: Annotated[str, typer.Option("--scheme", help="Init scheme.")] = "kaiming_normal",
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1 or auto.")] = "auto",
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where the task's data files are.")] = None,
) -> None:
    """Find tickets here: train, prune, reset, repeat; each level becomes a ticket
    folder ready for `nirvana push`. Rerun the same command to resume."""
    from nirvana.lottery.errors import LotteryError
    from nirvana.commands.finding import FindConfig, open_find, run_find, summary_rows
    from nirvana.lottery.training.recipes import named_recipe
    from nirvana.lottery.data.tasks import get_task, load_task
    from nirvana.lottery.verification.protocol import pick_device

    try:
        spec = get_task(task)
        chosen = named_recipe(recipe, spec) if recipe else spec.default_recipe
        if steps is not None:
            chosen = chosen.model_copy(update={"steps": steps})
        if density is not None and not 0 < density < 1:
            raise typer.BadParameter("must be in (0, 1)", param_hint="--density")
        config = FindConfig(
            architecture=arch, task=task, recipe=chosen, recipe_name=recipe, strategy=strategy, rate=rate,
            output_rate=output_rate, conv_rate=conv_rate, density=density, layers=layers or None,
            exclude=exclude or [], rewind_step=rewind, scheme=scheme, seed=seed, controls=controls,
        )  # fmt: skip
        run = open_find(out, config, levels)
        data = load_task(task, data_dir)
        dev = pick_device() if device == "auto" else device
        todo = run.last_level + 1
        bars = _Bars(todo, min(len(run.finished), todo))
        try:
            records = run_find(
                run, data, device=dev, on_progress=bars.progress, on_eval=bars.evaluated, on_level=bars.level_done
            )
        finally:
            bars.close()
    except LotteryError as exc:
        raise fail(f"{exc.detail} ({exc.code})", EXIT_USAGE if exc.code == "find_conflict" else 1) from None
    headers, rows = summary_rows(records)
    typer.echo(_table(headers, rows))
    typer.echo(f"tickets in {out}/level_XX (push one with: nirvana push {out}/level_{len(records) - 1:02d}); "
               f"chart {out}/accuracy.png", err=True)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("find")(find)
