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
from nirvana.lottery.pruning.config import SearchConfig
from nirvana.paths import default_data_dir


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


def _help(name: str) -> str:
    """The option's help: the description of the ``SearchConfig`` field it sets."""
    return str(SearchConfig.model_fields[name].description)


def _default(name: str) -> Any:
    return SearchConfig.model_fields[name].get_default(call_default_factory=True)


# Each search option sets the SearchConfig field of the same meaning; help and default
# come from that field, so the two cannot drift.
@reports_errors
def find(
    arch: Annotated[str, typer.Option("--arch", help=_help("architecture"))],
    task: Annotated[str, typer.Option("--task", help="Task, e.g. fashion-mnist.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder: level_XX/ tickets, summary, chart.")] = Path("tickets"),
    recipe: Annotated[str | None, typer.Option("--recipe", help="Named recipe (lth-lenet, openlth-lenet, ...) [default: the task's].")] = None,
    strategy: Annotated[str, typer.Option("--strategy", help=_help("strategy"))] = _default("strategy"),
    rate: Annotated[float, typer.Option("--rate", min=0.0, max=0.99, help=_help("rate"))] = _default("rate"),
    output_rate: Annotated[float | None, typer.Option("--output-rate", min=0.0, max=0.99, help=_help("output_rate"))] = None,
    conv_rate: Annotated[float | None, typer.Option("--conv-rate", min=0.0, max=0.99, help=_help("conv_rate"))] = None,
    density: Annotated[float | None, typer.Option("--density", min=0.0, max=1.0, help=_help("density"))] = None,
    levels: Annotated[int, typer.Option("--levels", min=0, help=_help("levels"))] = _default("levels"),
    rewind: Annotated[int, typer.Option("--rewind", min=0, help=_help("rewind_step"))] = _default("rewind_step"),
    layers: Annotated[list[str] | None, typer.Option("--layer", help=_help("layers"))] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", help=_help("exclude"))] = None,
    controls: Annotated[bool, typer.Option("--controls", help=_help("controls"))] = _default("controls"),
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Override the recipe's steps (quick runs).")] = None,
    seed: Annotated[int, typer.Option("--seed", help=_help("seed"))] = _default("seed"),
    scheme: Annotated[str, typer.Option("--scheme", help=_help("scheme"))] = _default("scheme"),
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1 or auto.")] = "auto",
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where the task's data files are (<dir>/<task>/) [default: $NIRVANA_DATA_DIR, else $NIRVANA_HOME/data; then the system's].", show_default=False)] = None,
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
            architecture=arch, task=task, recipe=chosen, recipe_name=recipe, strategy=strategy, levels=levels,
            rate=rate, output_rate=output_rate, conv_rate=conv_rate, density=density, layers=tuple(layers) if layers else None,
            exclude=tuple(exclude or ()), rewind_step=rewind, scheme=scheme, seed=seed, controls=controls,
        )  # fmt: skip
        run = open_find(out, config)
        data = load_task(task, data_dir if data_dir is not None else default_data_dir())
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
