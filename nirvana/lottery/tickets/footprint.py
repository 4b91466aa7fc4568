"""What a ticket costs: parameters, multiply-accumulates, and bytes per form.

``footprint`` is what the ticket JSON shows as ``footprint``::

    {"parameters": 266610, "parameters_kept": 5737,
     "macs_dense": 266200, "macs_sparse": 5327,
     "bytes": {"dense_fp32": 1066440, "stored": 1333392, "compact": 27160},
     "wire": {"mask": {"dense": 266592, "packed": 5235}, "init": {"dense": 1066800, "kept": 21925}},
     "compact": {"parameters": 82064, "shape": {"fc1.weight": [113, 701], ...}}}

``parameters`` counts learnable parameters; ``parameters_kept`` those a masked model
keeps (kept weights plus every non-prunable parameter). MACs are per example, over
every ``Linear`` and ``Conv2d`` (``macs_sparse`` counts only kept weights). ``bytes``:
the dense fp32 checkpoint (4 bytes per ``state_dict`` element), the ticket as stored
and served by default (dense mask + init files), and its compact files (packed mask +
kept init). ``compact`` is the compact model (``nirvana.lottery.models.compact``, for
inference), or None for architectures without one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from nirvana.lottery.data.tasks import get_task
from nirvana.lottery.models.architectures import build_model
from nirvana.lottery.models.compact import CompactUnsupportedError, compact

if TYPE_CHECKING:
    from nirvana.lottery.tickets.manifest import PreparedTicket


def positions_per_weight(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """``<module>.weight`` -> how many times each of its elements multiplies per
    example (1 for a ``Linear``, the output's H*W for a ``Conv2d``); shapes only."""
    seen: dict[str, int] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            def hook(mod: nn.Module, _: object, out: torch.Tensor, name: str = name) -> None:
                seen[f"{name}.weight"] = out[0].numel() // out.shape[1] if isinstance(mod, nn.Conv2d) else 1
            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device="meta"))
    finally:
        for h in handles:
            h.remove()
    return seen


def macs(architecture: str, input_shape: tuple[int, ...], num_classes: int, mask: Mapping[str, torch.Tensor]) -> tuple[int, int]:
    """``(dense, sparse)`` multiply-accumulates per example."""
    with torch.device("meta"):
        model = build_model(architecture, input_shape, num_classes)
    shapes = {name: p for name, p in model.named_parameters()}
    dense = sparse = 0
    for name, per in positions_per_weight(model, input_shape).items():
        dense += shapes[name].numel() * per
        sparse += (int(mask[name].sum()) if name in mask else shapes[name].numel()) * per
    return dense, sparse


def footprint(architecture: str, input_shape: tuple[int, ...], num_classes: int, init: Mapping[str, torch.Tensor],
              mask: Mapping[str, torch.Tensor], *, wire: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """The ticket's ``footprint`` (see the module docstring); ``wire`` holds the
    byte sizes ``{"mask": {"dense", "packed"}, "init": {"dense", "kept"}}``."""
    with torch.device("meta"):
        model = build_model(architecture, input_shape, num_classes)
    learnable = {name for name, _ in model.named_parameters()}
    parameters = sum(init[n].numel() for n in learnable)
    kept = sum(int(mask[n].sum()) if n in mask else init[n].numel() for n in learnable)
    dense_macs, sparse_macs = macs(architecture, input_shape, num_classes, mask)
    try:
        small = compact(architecture, input_shape, num_classes, init, mask)
        compact_model: dict[str, Any] | None = {"parameters": small.parameters, "shape": small.shape()}
    except CompactUnsupportedError:
        compact_model = None
    return {
        "parameters": parameters,
        "parameters_kept": kept,
        "macs_dense": dense_macs,
        "macs_sparse": sparse_macs,
        "bytes": {
            "dense_fp32": 4 * sum(t.numel() for t in init.values()),
            "stored": wire["mask"]["dense"] + wire["init"]["dense"],
            "compact": wire["mask"]["packed"] + wire["init"]["kept"],
        },
        "wire": {kind: dict(forms) for kind, forms in wire.items()},
        "compact": compact_model,
    }


def ticket_footprint(prepared: PreparedTicket) -> dict[str, Any]:
    """``footprint`` of a validated upload."""
    wire = {
        "mask": {"dense": len(prepared.mask_bytes), "packed": len(prepared.mask_packed_bytes)},
        "init": {"dense": len(prepared.init_bytes), "kept": len(prepared.init_kept_bytes)},
    }
    task = get_task(prepared.manifest.task)
    return footprint(prepared.manifest.architecture, tuple(task.input_shape), task.num_classes,
                     prepared.init, prepared.mask, wire=wire)
