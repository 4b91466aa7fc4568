"""``nirvana train ID --task T``: train a downloaded ticket on this machine and compare
it with the verified accuracy and with dense training, measured in the same run.

The ticket trains as its compact model (``nirvana.lottery.models.compact``, made with
``for_training=True``, so exactly the masked network's training) where the architecture
has one, else as the masked network. The compact model's inputs are gathered from the
data once (the features it reads), not from every batch; its time counts that. The
dense network then trains from the same init under the same recipe, so the two times
are comparable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nirvana.commands._common import UrlOption, fail, make_client, reports_errors
from nirvana.commands.export import TicketTensors, ticket_tensors
from nirvana.commands.tickets import IdArgument
from nirvana.paths import default_data_dir

if TYPE_CHECKING:
    import torch
    from torch import nn

    from nirvana.lottery.data.tasks import TaskData
    from nirvana.lottery.training.loop import TrainResult
    from nirvana.lottery.training.recipes import Recipe


@dataclass(frozen=True)
class Trainable:
    """A model to train, its mask, how to say what it is, and what it reads of an input
    (``None``: all of it)."""

    model: nn.Module
    mask: dict[str, torch.Tensor] | None
    label: str
    inputs: Callable[[torch.Tensor], torch.Tensor] | None = None


def ticket_model(t: TicketTensors) -> Trainable:
    """The compact model where the architecture has one, else the masked network."""
    from nirvana.lottery.models.architectures import build_model
    from nirvana.lottery.models.compact import CompactUnsupportedError, compact

    try:
        small = compact(t.ticket.architecture, t.input_shape, t.num_classes, t.state, t.mask, for_training=True)
        net = small.module(inputs_selected=True)
        return Trainable(net, small.mask, f"compact, {small.parameters:,} parameters", inputs=net.select_inputs)
    except CompactUnsupportedError:
        model = build_model(t.ticket.architecture, t.input_shape, t.num_classes)
        model.load_state_dict(t.state)
        return Trainable(model, t.mask, "masked")


def dense_model(t: TicketTensors) -> Trainable:
    from nirvana.lottery.models.architectures import build_model

    model = build_model(t.ticket.architecture, t.input_shape, t.num_classes)
    model.load_state_dict(t.state)
    return Trainable(model, None, f"dense, {sum(p.numel() for p in model.parameters()):,} parameters")


def run(what: Trainable, data: TaskData, recipe: Recipe, label: str) -> TrainResult:
    """Train with a progress bar on stderr; ``seconds`` counts gathering the inputs too."""
    from tqdm import tqdm

    from nirvana.lottery.training.loop import train

    started = time.perf_counter()
    if what.inputs is not None:
        data = data.with_inputs(what.inputs)
    with tqdm(total=recipe.steps, desc=label, unit="step", leave=False, disable=None) as bar:
        result = train(what.model, data, recipe, mask=what.mask, eval_every=0,
                       on_progress=lambda step, _total: bar.update(step - bar.n))
    result.seconds = time.perf_counter() - started
    return result


def verified_accuracy(ticket: dict[str, Any], task: str) -> float | None:
    """The verified ticket accuracy on ``task`` (its own task or a transfer), if any."""
    if task == ticket["task"]:
        return ticket.get("verified_accuracy")
    for v in reversed(ticket.get("verifications") or []):
        accuracy = ((v.get("result") or {}).get("runs") or {}).get("ticket", {}).get("test_accuracy")
        if v.get("task") == task and v.get("state") == "succeeded" and accuracy is not None:
            return float(accuracy)
    return None


def _recipe(ticket: dict[str, Any], task: str, steps: int | None) -> Recipe:
    from nirvana.lottery.data.tasks import get_task
    from nirvana.lottery.training.recipes import Recipe

    recipe = Recipe.model_validate(ticket["recipe"]) if task == ticket["task"] else get_task(task).default_recipe
    return recipe.model_copy(update={"steps": steps}) if steps is not None else recipe


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


@reports_errors
def train_command(
    id: IdArgument,
    task: Annotated[str | None, typer.Option("--task", help="Task to train on [default: the ticket's].")] = None,
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Train this many steps [default: the recipe's].")] = None,
    dense: Annotated[bool, typer.Option("--dense/--no-dense", help="Also train the dense network, for the time.")] = True,
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="Where the task's data is.")] = None,
    url: UrlOption = None,
) -> None:
    """Train a ticket here: its accuracy beside the verified one, its time beside dense training's."""
    from nirvana.lottery.data.tasks import get_task, load_task
    from nirvana.lottery.errors import LotteryError

    with make_client(url, None) as client:
        t = ticket_tensors(client, id)
    name = task or t.ticket.task
    try:
        spec = get_task(name)
        if (tuple(spec.input_shape), spec.num_classes) != (t.input_shape, t.num_classes):
            raise fail(f"--task {name}: its inputs and classes differ from {t.ticket.task}'s, which the ticket was made for")
        data = load_task(name, Path(data_dir) if data_dir is not None else default_data_dir())
    except LotteryError as exc:
        raise fail(f"{exc.detail} ({exc.code})") from None
    answer = t.ticket.model_dump(mode="json")
    recipe = _recipe(answer, name, steps)
    ticket = ticket_model(t)
    mine = run(ticket, data, recipe, f"ticket ({ticket.label})")
    typer.echo(f"ticket   ({ticket.label}): accuracy {_pct(mine.test_accuracy)} (verified {_pct(verified_accuracy(answer, name))}), "
               f"{mine.seconds:.1f} s for {recipe.steps} steps")
    if dense:
        base = dense_model(t)
        theirs = run(base, data, recipe, f"dense ({base.label})")
        typer.echo(f"dense    ({base.label}): accuracy {_pct(theirs.test_accuracy)}, {theirs.seconds:.1f} s; "
                   f"the ticket trained {theirs.seconds / max(mine.seconds, 1e-9):.2f}x as fast")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
