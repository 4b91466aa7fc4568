"""``nirvana export ID --to DIR [--compact] [--onnx]``: a ticket as a model to run.

The command is a dispatch: each form is one small function, so adding a form (``--hf``)
is a function and a branch.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nirvana.commands._common import EXIT_USAGE, UrlOption, fail, make_client, reports_errors
from nirvana.commands.tickets import IdArgument

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class TicketTensors:
    """A downloaded ticket as tensors: its JSON, the masked init (pruned weights zero)
    and the mask, with the task's input shape and class count."""

    ticket: dict[str, Any]
    state: dict[str, torch.Tensor]
    mask: dict[str, torch.Tensor]
    input_shape: tuple[int, ...]
    num_classes: int


def ticket_tensors(client: Any, id: str) -> TicketTensors:
    """Load ticket ``id`` through the client (compact downloads, digest-checked)."""
    from nirvana.lottery.data.tasks import get_task
    from nirvana.lottery.interop.torch_prune import remove_prune_masks

    ticket = client.ticket(id)
    model, mask = client.load(ticket["id"])
    state = {k: v.detach().clone() for k, v in remove_prune_masks(model).state_dict().items()}
    spec = get_task(ticket["task"])
    return TicketTensors(ticket, state, mask, tuple(spec.input_shape), spec.num_classes)


def write_masked(t: TicketTensors, out: Path) -> nn.Module:
    from nirvana.lottery.interop.export import save_masked

    return save_masked(out, t.ticket["architecture"], t.input_shape, t.num_classes, t.state, t.mask)


def write_compact(t: TicketTensors, out: Path) -> nn.Module:
    from nirvana.lottery.interop.export import save_compact
    from nirvana.lottery.models.compact import compact

    return save_compact(out, compact(t.ticket["architecture"], t.input_shape, t.num_classes, t.state, t.mask))


def write_onnx(t: TicketTensors, model: nn.Module, out: Path) -> Path:
    from nirvana.lottery.interop.export import save_onnx

    return save_onnx(out, model, t.input_shape)


@reports_errors
def export(
    id: IdArgument,
    to: Annotated[Path, typer.Option("--to", help="Folder to write (created if needed).")],
    compact: Annotated[bool, typer.Option("--compact", help="Remove dead units: a smaller dense model, same function.")] = False,
    onnx: Annotated[bool, typer.Option("--onnx", help="Also write model.onnx (needs: pip install 'nirvana[onnx]').")] = False,
    url: UrlOption = None,
) -> None:
    """Write a ticket as a model: model.safetensors + config.json (masked, or --compact),
    and model.onnx with --onnx."""
    from nirvana.lottery.errors import LotteryError

    if onnx and importlib.util.find_spec("onnx") is None:
        raise fail("--onnx needs the onnx package: pip install 'nirvana[onnx]'", EXIT_USAGE)
    with make_client(url, None) as client:
        tensors = ticket_tensors(client, id)
    try:
        model = write_compact(tensors, to) if compact else write_masked(tensors, to)
    except LotteryError as exc:  # an architecture without a compact form
        raise fail(f"{exc.detail} ({exc.code})") from None
    if onnx:
        write_onnx(tensors, model, to)
    size = sum(p.numel() for p in model.parameters())
    typer.echo(f"{to}  ({'compact' if compact else 'masked'}, {size:,} parameters{', model.onnx' if onnx else ''})")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
