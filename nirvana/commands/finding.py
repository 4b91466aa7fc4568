"""The ``nirvana find`` workflow: search for tickets into a folder that resumes.

Layout of the output folder::

    find.json                 the search's arguments (FindConfig)
    level_00/ ...             one ticket folder per level, ready for ``nirvana push``:
        ticket.json  mask.safetensors  init.safetensors
    state/level_00.json       the level's record (LevelRecord), written last
    state/level_00.safetensors  what the next level trains: "mask/<name>", "init/<name>"
    summary.csv  summary.md  accuracy.png

A level is finished when its ``state/level_XX.json`` exists: it is written after
everything else of the level, by an atomic rename. Starting again in the same folder
with the same arguments skips the finished levels and resumes from the last one's
saved state (a larger ``levels`` extends a finished search: ``levels`` is the one
argument that may change); different arguments raise ``FindConflictError``. Only safetensors and JSON are written; nothing is pickled.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from nirvana.lottery.models.architectures import describe
from nirvana.commands.charts import plot_accuracy_vs_remaining
from nirvana.lottery.errors import LotteryError
from nirvana.lottery.tickets.files import dump_tensors, load_tensors
from nirvana.lottery.pruning.config import SearchConfig
from nirvana.lottery.pruning.imp import EvalFn, LevelResult, ProgressFn, ResumePoint, search_ticket
from nirvana.lottery.pruning.strategies import InvalidPruningError
from nirvana.lottery.pruning.registry import get_strategy
from nirvana.lottery.data.tasks import TaskData, get_task
from nirvana.lottery.tickets.manifest import Claimed, InitSpec, Manifest, TicketFolder, file_metadata

__all__ = ["FindConfig", "FindConflictError", "FindRun", "LevelRecord", "open_find", "run_find", "write_summary"]


class FindConflictError(LotteryError):
    """The output folder holds a search with other arguments."""

    code = "find_conflict"


class FindConfig(SearchConfig):
    """A search (:class:`SearchConfig`) on a named task, as ``find.json`` keeps it.

    ``recipe_name`` is the named recipe ``recipe`` came from (for the tickets'
    descriptions), None for a custom one.
    """

    task: str
    recipe_name: str | None = None


class LevelRecord(BaseModel):
    """One finished level, as ``state/level_XX.json`` keeps it."""

    level: int
    density: float
    test_accuracy: float
    controls: dict[str, float] = Field(default_factory=dict)
    seconds: float = 0.0
    curve: list[tuple[int, float]] = Field(default_factory=list)


class FindRun(BaseModel):
    """An opened output folder: its config, the levels wanted, those already done."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    out: Path
    config: FindConfig
    finished: list[LevelRecord]

    @property
    def levels(self) -> int:
        return self.config.levels

    @property
    def at_init(self) -> bool:
        return get_strategy(self.config.strategy).at_init

    @property
    def last_level(self) -> int:
        """The last level this search trains (0 for a strategy that prunes at init)."""
        return 0 if self.at_init else self.levels


def _level_dir(out: Path, level: int) -> Path:
    return out / f"level_{level:02d}"


def _state(out: Path, level: int, suffix: str) -> Path:
    return out / "state" / f"level_{level:02d}.{suffix}"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def open_find(out: str | Path, config: FindConfig) -> FindRun:
    """Create ``out`` for a search, or reopen one with the same config (``levels`` may
    differ: the saved config takes the new one).

    Raises:
        FindConflictError: ``out`` holds ``find.json`` of a different search, or files
            that are not a search's.
        LotteryError subclasses for an unknown task, architecture or strategy.
    """
    strategy = get_strategy(config.strategy)
    if strategy.at_init and (config.density is None or config.rewind_step):
        raise InvalidPruningError(f"{strategy.name} prunes the init: give --density, and no rewinding")
    spec = get_task(config.task)
    describe(config.architecture, spec.input_shape, spec.num_classes)
    folder = Path(out)
    saved = folder / "find.json"
    if saved.is_file():
        previous = FindConfig.model_validate_json(saved.read_bytes()).model_copy(update={"levels": config.levels})
        if previous != config:
            old, new = _flat(previous.model_dump()), _flat(config.model_dump())
            diff = ", ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in old if old.get(k) != new.get(k))
            raise FindConflictError(
                f"{folder} holds a search with other arguments ({diff}); use another --out or the same arguments"
            )
    elif folder.is_dir() and any(folder.iterdir()):
        raise FindConflictError(f"{folder} is not empty and holds no find.json; choose an empty or new folder")
    _write_atomic(saved, config.model_dump_json(indent=2).encode() + b"\n")
    finished: list[LevelRecord] = []
    while _state(folder, len(finished), "json").is_file():
        finished.append(LevelRecord.model_validate_json(_state(folder, len(finished), "json").read_bytes()))
    return FindRun(out=folder, config=config, finished=finished)


def _manifest(run: FindRun, result: LevelResult) -> Manifest:
    c = run.config
    iterative = not run.at_init and not (c.density is not None and run.levels == 1)
    method = "imp" if iterative else (c.strategy if run.at_init else "one-shot")
    rewind = c.rewind_step if result.level > 0 else 0
    reset = f"rewound to step {rewind}" if rewind else f"reset to the {c.scheme} init (seed {c.seed})"
    recipe = c.recipe_name or "a custom recipe"
    return Manifest(
        architecture=c.architecture,
        task=c.task,
        init=InitSpec(scheme=c.scheme, seed=c.seed, rewind_step=rewind),
        recipe=c.recipe,
        claimed=Claimed(test_accuracy=result.test_accuracy),
        method=method,
        title=f"{c.architecture} on {c.task}: {c.strategy} {method} level {result.level}, "
        f"{100 * result.density:.2f}% of weights",
        description=f"Found by `nirvana find` with {c.strategy} pruning, {reset}, trained with {recipe} "
        f"({c.recipe.steps} steps).",
        tags=[c.strategy, method, f"level-{result.level}"] + (["rewind"] if rewind else []),
    )


def _save_level(run: FindRun, result: LevelResult) -> LevelRecord:
    """Write the ticket folder, the state tensors, then (last) the record."""
    TicketFolder.write(_level_dir(run.out, result.level), _manifest(run, result), result.mask, result.init)
    state: dict[str, torch.Tensor] = {}
    if result.next_mask is not None and result.next_init is not None:
        state.update({f"mask/{k}": v for k, v in result.next_mask.items()})
        state.update({f"init/{k}": v for k, v in result.next_init.items()})
    _write_atomic(_state(run.out, result.level, "safetensors"), dump_tensors(state, file_metadata(run.config.architecture)))
    record = LevelRecord(
        level=result.level, density=result.density, test_accuracy=result.test_accuracy,
        controls=result.controls, seconds=result.seconds, curve=result.curve,
    )  # fmt: skip
    _write_atomic(_state(run.out, result.level, "json"), record.model_dump_json(indent=2).encode() + b"\n")
    return record


def _resume_point(run: FindRun) -> ResumePoint | None:
    if not run.finished:
        return None
    last = run.finished[-1].level
    state = load_tensors(_state(run.out, last, "safetensors").read_bytes())
    mask = {k.removeprefix("mask/"): v for k, v in state.items() if k.startswith("mask/")}
    init = {k.removeprefix("init/"): v for k, v in state.items() if k.startswith("init/")}
    return ResumePoint(level=last + 1, mask=mask, init=init)


def run_find(
    run: FindRun,
    task_data: TaskData,
    *,
    device: str | torch.device = "cpu",
    on_progress: ProgressFn | None = None,
    on_eval: EvalFn | None = None,
    on_level: Callable[[LevelRecord], None] | None = None,
) -> list[LevelRecord]:
    """Train the levels ``run`` still lacks, saving each as it finishes, then write the
    summary; returns every level's record (finished before or now), in order.
    What a callback raises stops the search; finished levels stay saved."""
    c = run.config
    records = list(run.finished)
    if len(records) <= run.last_level:

        def saved(result: LevelResult) -> None:
            records.append(_save_level(run, result))
            if on_level is not None:
                on_level(records[-1])

        search_ticket(
            c, task_data, device=device, resume=_resume_point(run), on_level=saved, on_progress=on_progress,
            on_eval=on_eval,
        )  # fmt: skip
    records = records[: run.last_level + 1]
    write_summary(run.out, records, title=f"{c.architecture} on {c.task}, {c.strategy}")
    return records


def summary_rows(records: list[LevelRecord]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the summary table (percentages with two decimals)."""
    controls = [n for n in ("reinit", "random_mask") if any(n in r.controls for r in records)]
    headers = ["level", "weights remaining %", "test accuracy %", *[f"{n} %" for n in controls]]
    rows = [
        [str(r.level), f"{100 * r.density:.2f}", f"{100 * r.test_accuracy:.2f}",
         *[f"{100 * r.controls[n]:.2f}" if n in r.controls else "" for n in controls]]
        for r in records
    ]  # fmt: skip
    return headers, rows


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def write_summary(out: Path, records: list[LevelRecord], *, title: str) -> None:
    """``summary.csv``, ``summary.md`` and ``accuracy.png`` for ``records``."""
    headers, rows = summary_rows(records)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([headers, *rows])
    (out / "summary.csv").write_text(buf.getvalue())
    (out / "summary.md").write_text(f"# {title}\n\n" + markdown_table(headers, rows))
    plot_accuracy(records, out / "accuracy.png", title=title)


def plot_accuracy(records: list[LevelRecord], path: Path, *, title: str) -> None:
    """Test accuracy against % of weights remaining; the controls when present."""
    plot_accuracy_vs_remaining(
        path,
        [r.density for r in records],
        {
            "ticket": [r.test_accuracy for r in records],
            "reinit": [r.controls.get("reinit") for r in records],
            "random mask": [r.controls.get("random_mask") for r in records],
        },
        title=title,
    )


def records_json(records: list[LevelRecord]) -> str:
    """The records as a JSON list (without curves), for scripts."""
    return json.dumps([r.model_dump(exclude={"curve"}) for r in records], indent=2)
