"""Pruning strategies behind one name registry: ``layerwise``, ``global``, ``random``
(from trained weights, one IMP level at a time) and ``snip``, ``synflow`` (from the
init, before any training; in :mod:`nirvana.lottery.pruning.at_init`).

Every strategy has the same contract, ``Strategy.prune(weights, mask, fraction, ctx)``:
remove ``fraction`` of the weights ``mask`` still keeps and return a *new* mask (the
input is never modified, pruned weights never come back). ``weights`` is a
``state_dict``; a strategy reads only the entries it needs. ``prune_to_density`` turns a
target density into that fraction. Ties are broken by the lower flat index (stable
sorts), so every strategy is deterministic for the same inputs and seed.

The output layer is the *last* entry of a mask (masks are built in parameter order);
``"output"`` names it in ``layers``/``exclude``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from nirvana.lottery.errors import LotteryError

Mask = dict[str, torch.Tensor]


class InvalidPruningError(LotteryError):
    """An unknown strategy, a rate outside [0, 1), or a layer name the mask lacks."""

    code = "invalid_pruning"


@dataclass(frozen=True, kw_only=True)
class PruneContext:
    """What a strategy may use besides the weights and the mask.

    ``layers`` (default: every layer of the mask) minus ``exclude`` are the layers a
    strategy may prune; ``output_rate`` overrides the rate of the output layer
    (``layerwise``/``random``); ``layer_rates`` gives one rate per layer instead of
    ``fraction`` (``layerwise``/``random``); ``seed`` drives ``random`` and picks
    SNIP's batch. ``model`` (any weights; they are replaced), ``input_shape`` and
    ``data_x``/``data_y`` serve the strategies that score the init.
    """

    layers: Sequence[str] | None = None
    exclude: Sequence[str] = ()
    output_rate: float | None = None
    layer_rates: Mapping[str, float] | None = None
    seed: int = 0
    model: nn.Module | None = None
    input_shape: tuple[int, ...] | None = None
    data_x: torch.Tensor | None = None
    data_y: torch.Tensor | None = None
    snip_batch: int = 256
    synflow_iterations: int = 100
    device: str | torch.device = "cpu"


PruneFn = Callable[[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor], float, PruneContext], Mask]


@dataclass(frozen=True)
class Strategy:
    """A named way to prune. ``at_init``: it scores the untrained init (so it prunes
    once, before training) rather than the weights at the end of training."""

    name: str
    prune: PruneFn
    at_init: bool
    description: str


def _output(mask: Mapping[str, torch.Tensor]) -> str:
    return list(mask)[-1]


def chosen_layers(mask: Mapping[str, torch.Tensor], ctx: PruneContext) -> list[str]:
    """The layers ``ctx`` lets a strategy prune, in mask order; ``"output"`` aliases the
    last entry. Raises ``InvalidPruningError`` for a name the mask lacks, or if none is left."""
    alias = {"output": _output(mask)}

    def resolve(names: Sequence[str]) -> set[str]:
        out = {alias.get(n, n) for n in names}
        unknown = sorted(out - set(mask))
        if unknown:
            raise InvalidPruningError(f"no prunable layer {unknown[0]!r}; layers: {', '.join(mask)}")
        return out

    wanted = resolve(ctx.layers) if ctx.layers is not None else set(mask)
    wanted -= resolve(ctx.exclude)
    if not wanted:
        raise InvalidPruningError("every layer is excluded: nothing to prune")
    return [n for n in mask if n in wanted]


def _check_rate(name: str, rate: float) -> float:
    if not 0.0 <= float(rate) < 1.0:
        raise InvalidPruningError(f"pruning rate for {name} must be in [0, 1), got {rate}")
    return float(rate)


def _drop_lowest(scores: torch.Tensor, keep: torch.Tensor, n_prune: int) -> torch.Tensor:
    """``keep`` minus its ``n_prune`` kept entries with the lowest ``scores``."""
    flat_keep = keep.reshape(-1).cpu()
    if n_prune <= 0:
        return keep.clone()
    s = scores.detach().reshape(-1).cpu().to(torch.float64)
    # Already-pruned entries sort last so they are never "pruned again".
    s = torch.where(flat_keep, s, torch.full_like(s, math.inf))
    new = flat_keep.clone()
    new[torch.argsort(s, stable=True)[:n_prune]] = False
    return new.reshape(keep.shape)


def layer_counts(
    mask: Mapping[str, torch.Tensor], fraction: float, ctx: PruneContext
) -> dict[str, int]:
    """How many weights ``layerwise`` (and ``random``) remove from each layer:
    ``round(rate * kept)`` with the layer's rate (``ctx.layer_rates``, else ``fraction``
    for the chosen layers, ``ctx.output_rate`` for the output layer when given)."""
    chosen = set(chosen_layers(mask, ctx))
    out_name = _output(mask)
    counts: dict[str, int] = {}
    for name, m in mask.items():
        if ctx.layer_rates is not None:
            rate = ctx.layer_rates.get(name, 0.0)
        else:
            rate = fraction if name in chosen else 0.0
            if name == out_name and ctx.output_rate is not None and name in chosen:
                rate = ctx.output_rate
        counts[name] = int(round(_check_rate(name, rate) * int(m.sum().item())))
    return counts


def prune_layerwise_strategy(
    weights: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor], fraction: float, ctx: PruneContext
) -> Mask:
    """The LTH paper's pruning: in each layer, the given fraction of its *remaining*
    weights with the smallest magnitude."""
    counts = layer_counts(mask, fraction, ctx)
    return {n: _drop_lowest(weights[n].abs(), mask[n], counts[n]) for n in mask}


def prune_global(
    weights: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor], fraction: float, ctx: PruneContext
) -> Mask:
    """OpenLTH's ``sparse_global``: remove ``ceil(fraction * remaining)`` weights, where
    ``remaining`` counts *every* layer of the mask, choosing those with the smallest
    magnitude among the remaining weights of the chosen layers under one threshold
    (so a layer of small weights loses more). Excluded layers keep their mask, as in
    OpenLTH, which excludes LeNet's output layer (``exclude=["output"]``). Unlike
    OpenLTH, ties at the threshold are broken by position, so exactly that many go."""
    _check_rate("global", fraction)
    chosen = chosen_layers(mask, ctx)
    remaining = sum(int(m.sum().item()) for m in mask.values())
    n_prune = math.ceil(fraction * remaining - 1e-9)
    return drop_globally({n: weights[n].detach().abs() for n in chosen}, mask, n_prune)


def drop_globally(scores: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor], n_prune: int) -> Mask:
    """``mask`` minus the ``n_prune`` remaining weights with the lowest score over all the
    layers of ``scores`` together (at most all of them); other layers are copied."""
    chosen = [n for n in mask if n in scores]
    flat = torch.cat([scores[n].detach().reshape(-1).cpu().to(torch.float64) for n in chosen])
    keep = torch.cat([mask[n].reshape(-1).cpu() for n in chosen])
    new_flat = _drop_lowest(flat, keep, min(int(keep.sum().item()), n_prune))
    out = {n: mask[n].clone() for n in mask}
    offset = 0
    for n in chosen:
        size = mask[n].numel()
        out[n] = new_flat[offset : offset + size].reshape(mask[n].shape)
        offset += size
    return out


def prune_random(
    weights: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor], fraction: float, ctx: PruneContext
) -> Mask:
    """The control: per layer, as many weights as ``layerwise`` would remove, chosen
    uniformly at random among the remaining ones (one generator seeded with
    ``ctx.seed``, layers in mask order); ``weights`` are ignored."""
    counts = layer_counts(mask, fraction, ctx)
    g = torch.Generator(device="cpu").manual_seed(int(ctx.seed))
    return {n: _drop_lowest(torch.rand(mask[n].shape, generator=g, dtype=torch.float64), mask[n], counts[n]) for n in mask}


def lth_rates(
    mask: Mapping[str, torch.Tensor],
    rate: float = 0.2,
    *,
    conv_rate: float | None = None,
    output_rate: float | None = None,
) -> dict[str, float]:
    """Per-layer rates as the LTH paper prunes: ``rate`` for fully-connected layers,
    ``conv_rate`` (default ``rate``) for convolutions (4-D weights), and the output
    layer (last entry) at ``output_rate``, by default half of ``rate``
    (LeNet: 20%/10%; Conv-2/4: conv 10%, fc 20%, output 10%; Conv-6: conv 15%)."""
    out_name = _output(mask)
    rates: dict[str, float] = {}
    for name, m in mask.items():
        if name == out_name:
            rates[name] = rate / 2 if output_rate is None else output_rate
        elif m.dim() == 4 and conv_rate is not None:
            rates[name] = conv_rate
        else:
            rates[name] = rate
    return rates


def density_of(mask: Mapping[str, torch.Tensor]) -> float:
    """Kept weights over all weights of ``mask``."""
    total = sum(m.numel() for m in mask.values())
    return sum(int(m.sum().item()) for m in mask.values()) / max(1, total)


def fraction_for(mask: Mapping[str, torch.Tensor], density: float) -> float:
    """The fraction of ``mask``'s remaining weights to remove to reach ``density``."""
    current = density_of(mask)
    if not 0.0 < density <= current:
        raise InvalidPruningError(f"target density must be in (0, {current:g}], got {density}")
    return 1.0 - density / current
