"""``nirvana export ID --to DIR [--compact] [--onnx] | --hf``: a ticket in a form other
tools take.

The command is a dispatch: each form is one small function here, and the work is in a
library module (models: :mod:`nirvana.lottery.interop.export`; ``--hf``:
:mod:`nirvana.hub_export`). A new form is a flag, a function and a branch.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from nirvana.commands._common import EXIT_USAGE, UrlOption, fail, make_client, reports_errors
from nirvana.commands.tickets import IdArgument

if TYPE_CHECKING:
    import torch
    from torch import nn

    from nirvana.client import Client
    from nirvana.hub_types import TicketInfo


@dataclass(frozen=True)
class TicketTensors:
    """A downloaded ticket as tensors: its JSON, the masked init (pruned weights zero)
    and the mask, with the task's input shape and class count."""

    ticket: TicketInfo
    state: dict[str, torch.Tensor]
    mask: dict[str, torch.Tensor]
    input_shape: tuple[int, ...]
    num_classes: int


def ticket_tensors(client: Client, id: str) -> TicketTensors:
    """Load ticket ``id`` through the client (compact downloads, digest-checked)."""
    from nirvana.lottery.data.tasks import get_task
    from nirvana.lottery.interop.torch_prune import remove_prune_masks

    ticket = client.ticket(id)
    model, mask = client.load(ticket.id)
    state = {k: v.detach().clone() for k, v in remove_prune_masks(model).state_dict().items()}
    spec = get_task(ticket.task)
    return TicketTensors(ticket, state, mask, tuple(spec.input_shape), spec.num_classes)


def write_masked(t: TicketTensors, out: Path) -> nn.Module:
    from nirvana.lottery.interop.export import save_masked

    return save_masked(out, t.ticket.architecture, t.input_shape, t.num_classes, t.state, t.mask)


def write_compact(t: TicketTensors, out: Path) -> nn.Module:
    from nirvana.lottery.interop.export import save_compact
    from nirvana.lottery.models.compact import compact

    return save_compact(out, compact(t.ticket.architecture, t.input_shape, t.num_classes, t.state, t.mask))


def write_onnx(t: TicketTensors, model: nn.Module, out: Path) -> Path:
    from nirvana.lottery.interop.export import save_onnx

    return save_onnx(out, model, t.input_shape)


def write_hf(client: Client, id: str, out: Path, hub_namespace: str | None) -> Path:
    from nirvana.commands.cite import ticket_citation
    from nirvana.hub_export import export_hf

    citation = ticket_citation(client.ticket(id), client.url)
    return export_hf(client, id, out, citation=citation, hub_namespace=hub_namespace)


def export_model(client: Client, id: str, to: Path, *, compact: bool, onnx: bool) -> str:
    """Write the masked (or compact) model, and model.onnx with ``onnx``; a summary line."""
    from nirvana.lottery.errors import LotteryError

    tensors = ticket_tensors(client, id)
    try:
        model = write_compact(tensors, to) if compact else write_masked(tensors, to)
    except LotteryError as exc:  # an architecture without a compact form
        raise fail(f"{exc.detail} ({exc.code})") from None
    if onnx:
        write_onnx(tensors, model, to)
    size = sum(p.numel() for p in model.parameters())
    return f"{to}  ({'compact' if compact else 'masked'}, {size:,} parameters{', model.onnx' if onnx else ''})"


@reports_errors
def export(
    id: IdArgument,
    to: Annotated[Path, typer.Option("--to", help="Folder to write (created if needed).")],
    compact: Annotated[bool, typer.Option("--compact", help="Remove dead units: a smaller dense model, same function.")] = False,
    onnx: Annotated[bool, typer.Option("--onnx", help="Also write model.onnx (needs: pip install 'nirvana[onnx]').")] = False,
    hf: Annotated[
        bool, typer.Option("--hf", help="A Hugging Face Hub folder: model.safetensors, mask.safetensors, config.json, README.md.")
    ] = False,
    hub_namespace: Annotated[
        str | None,
        typer.Option("--hub-namespace", help="[--hf] Hub user/org the tickets go under; names a parent ticket as base_model."),
    ] = None,
    url: UrlOption = None,
) -> None:
    """Write a ticket as a model: model.safetensors + config.json (masked, or --compact),
    model.onnx with --onnx; or, with --hf, a folder to push to the Hugging Face Hub."""
    if hf and (compact or onnx):
        raise fail("--hf writes the ticket itself; --compact and --onnx write a model: choose one", EXIT_USAGE)
    if onnx and importlib.util.find_spec("onnx") is None:
        raise fail("--onnx needs the onnx package: pip install 'nirvana[onnx]'", EXIT_USAGE)
    with make_client(url, None) as client:
        if hf:
            typer.echo(f"hf: {write_hf(client, id, to, hub_namespace)}")
        else:
            typer.echo(export_model(client, id, to, compact=compact, onnx=onnx))


def register(app: typer.Typer) -> None:
    app.command("export")(export)
