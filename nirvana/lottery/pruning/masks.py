"""Masks and inits: validation against an architecture, sparsity, random controls.

A mask is one ``torch.bool`` tensor per prunable parameter, keyed by its ``state_dict``
name; ``True`` keeps a weight. Parameters without an entry (biases, norms) are dense.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from nirvana.lottery.models.architectures import ArchitectureInfo
from nirvana.lottery.errors import InvalidInitError, InvalidMaskError


def validate_mask(mask: Mapping[str, torch.Tensor], info: ArchitectureInfo) -> None:
    """Raise ``InvalidMaskError`` (naming the parameter) unless ``mask`` has exactly one
    bool tensor of the right shape for every prunable parameter of ``info`` and keeps at
    least one weight."""
    params = info.by_name()
    for name in info.prunable_names():
        if name not in mask:
            raise InvalidMaskError(f"mask lacks prunable parameter {name!r} of {info.name}")
    for name, m in mask.items():
        p = params.get(name)
        if p is None:
            raise InvalidMaskError(f"mask entry {name!r} is not a parameter of {info.name}")
        if not p.prunable:
            raise InvalidMaskError(f"mask entry {name!r} is not prunable (only weights are)")
        if tuple(m.shape) != p.shape:
            raise InvalidMaskError(
                f"mask {name!r} has shape {tuple(m.shape)}, {info.name} needs {p.shape}"
            )
        if m.dtype != torch.bool:
            raise InvalidMaskError(
                f"mask {name!r} has dtype {m.dtype}; masks must be torch.bool (safetensors BOOL)"
            )
    if not any(bool(m.any()) for m in mask.values()):
        raise InvalidMaskError("mask keeps no weight at all")


def validate_init(init: Mapping[str, torch.Tensor], info: ArchitectureInfo) -> None:
    """Raise ``InvalidInitError`` unless ``init`` holds exactly the ``state_dict`` of
    ``info`` with the right shapes, floating dtypes (for float entries) and no NaN/Inf."""
    params = info.by_name()
    missing = [n for n in params if n not in init]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InvalidInitError(f"init lacks {missing[0]!r}{more} of {info.name}")
    for name, t in init.items():
        p = params.get(name)
        if p is None:
            raise InvalidInitError(f"init entry {name!r} is not in the state_dict of {info.name}")
        if tuple(t.shape) != p.shape:
            raise InvalidInitError(
                f"init {name!r} has shape {tuple(t.shape)}, {info.name} needs {p.shape}"
            )
        if p.buffer and not t.is_floating_point():
            continue  # integer buffers such as num_batches_tracked
        if not t.is_floating_point():
            raise InvalidInitError(
                f"init {name!r} has dtype {t.dtype}; weights must be floating point"
            )
        if not bool(torch.isfinite(t).all()):
            raise InvalidInitError(f"init {name!r} contains NaN or Inf")


@dataclass(frozen=True)
class LayerSparsity:
    remaining: int
    total: int
    density: float


@dataclass(frozen=True)
class SparsityReport:
    """Kept prunable weights overall and per layer; density is ``remaining / prunable``."""

    density: float
    sparsity: float
    remaining: int
    prunable: int
    layers: dict[str, LayerSparsity] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sparsity_report(mask: Mapping[str, torch.Tensor], info: ArchitectureInfo) -> SparsityReport:
    """Sparsity from the mask alone; a prunable parameter without an entry counts as dense."""
    layers: dict[str, LayerSparsity] = {}
    for p in info.parameters:
        if not p.prunable:
            continue
        kept = int(mask[p.name].sum().item()) if p.name in mask else p.numel
        layers[p.name] = LayerSparsity(kept, p.numel, kept / p.numel if p.numel else 1.0)
    remaining = sum(layer.remaining for layer in layers.values())
    density = remaining / info.prunable if info.prunable else 1.0
    return SparsityReport(
        density=density,
        sparsity=1.0 - density,
        remaining=remaining,
        prunable=info.prunable,
        layers=layers,
    )


def dense_mask(info: ArchitectureInfo) -> dict[str, torch.Tensor]:
    """All-``True`` masks for every prunable parameter, in parameter order."""
    return {p.name: torch.ones(p.shape, dtype=torch.bool) for p in info.parameters if p.prunable}


def random_mask_like(mask: Mapping[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """A mask keeping as many weights per layer as ``mask``, at random positions.

    One ``torch.Generator`` seeded with ``seed`` draws ``randperm(numel)`` per layer, the
    layers taken in sorted-name order, and keeps the first ``kept`` positions: the same
    (mask counts, seed) give the same result in any process.
    """
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    out: dict[str, torch.Tensor] = {}
    for name in sorted(mask):
        m = mask[name]
        kept = int(m.sum().item())
        # Explicitly on the CPU: under a CUDA (or meta) default device the draw would
        # otherwise leave the CPU generator's stream or fail.
        flat = torch.zeros(m.numel(), dtype=torch.bool, device="cpu")
        flat[torch.randperm(m.numel(), generator=g, device="cpu")[:kept]] = True
        out[name] = flat.reshape(m.shape)
    return {name: out[name] for name in mask}  # keep the caller's key order


def mask_pairs(model: nn.Module, mask: Mapping[str, torch.Tensor]) -> list[tuple[str, nn.Parameter, torch.Tensor]]:
    """``(name, parameter, keep)`` for every entry of ``mask``, in mask order: the
    parameter of ``model`` the entry names and the entry as BOOL on its device. The one
    place a mask meets a model (training, pruning at init, ``apply_prune_masks``).

    Raises:
        InvalidMaskError: a name that is not a parameter of ``model``, or a wrong shape.
    """
    params = dict(model.named_parameters())
    pairs: list[tuple[str, nn.Parameter, torch.Tensor]] = []
    for name, m in mask.items():
        p = params.get(name)
        if p is None:
            raise InvalidMaskError(f"mask entry {name!r} names no parameter of the model")
        if tuple(m.shape) != tuple(p.shape):
            raise InvalidMaskError(f"mask {name!r} has shape {tuple(m.shape)}, parameter {tuple(p.shape)}")
        # bool first, so a 0/1 float mask and a bool mask give the same keep.
        pairs.append((name, p, m.detach().to(device=p.device, dtype=torch.bool)))
    return pairs


@torch.no_grad()
def apply_mask(model: nn.Module, mask: Mapping[str, torch.Tensor]) -> None:
    """Zero, in place, the weights of ``model`` that ``mask`` prunes."""
    for _, p, keep in mask_pairs(model, mask):
        p.masked_fill_(~keep, 0.0)
