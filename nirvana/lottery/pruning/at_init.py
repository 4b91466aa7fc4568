"""Pruning at initialization: SNIP (Lee et al. 2019) and SynFlow (Tanaka et al. 2020).

Both score the weights of the *untrained* network and keep the best globally over the
chosen layers, with the contract of :mod:`nirvana.lottery.pruning.strategies`: remove ``fraction`` of
the remaining weights (``ceil(fraction * remaining)``, counted over every layer of the
mask as ``global`` does) and return a new mask. Both work on a deep copy of
``ctx.model``, so the caller's model and weights are never touched.

- SNIP: connection sensitivity ``|dL/dw * w|`` of the cross-entropy on one batch of
  ``ctx.snip_batch`` training examples drawn with ``ctx.seed``, pruned in one shot.
- SynFlow: data-free. In float64 (products of many weights under- or overflow in
  float32), in eval mode (BatchNorm uses its running statistics), every weight and
  buffer replaced by its absolute value, input a single all-ones example,
  ``R = sum(model(ones))``, score ``|dR/dw * w|``. Repeated ``ctx.synflow_iterations``
  times (100 as in the paper), re-scoring the masked network each time, with the
  exponential schedule: after iteration ``i`` of ``n`` the kept count is
  ``remaining * (1 - fraction) ** (i / n)``. Iterating is what avoids layer collapse.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import torch
from torch import nn

from nirvana.lottery.pruning.masks import mask_pairs
from nirvana.lottery.pruning.strategies import InvalidPruningError, Mask, PruneContext, chosen_layers, drop_globally


def _model_with(weights: Mapping[str, torch.Tensor], ctx: PruneContext, dtype: torch.dtype) -> nn.Module:
    if ctx.model is None:
        raise InvalidPruningError("this strategy scores the network: PruneContext.model is required")
    model = copy.deepcopy(ctx.model)
    model.load_state_dict(dict(weights))
    return model.to(device=torch.device(ctx.device), dtype=dtype)


def _n_prune(mask: Mapping[str, torch.Tensor], fraction: float) -> int:
    if not 0.0 <= fraction < 1.0:
        raise InvalidPruningError(f"pruning fraction must be in [0, 1), got {fraction}")
    remaining = sum(int(m.sum().item()) for m in mask.values())
    return math.ceil(fraction * remaining - 1e-9)


@torch.no_grad()
def _zero_pruned(model: nn.Module, mask: Mapping[str, torch.Tensor]) -> None:
    for _, p, keep in mask_pairs(model, mask):
        p.mul_(keep.to(p.dtype))


def snip_scores(
    weights: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor], ctx: PruneContext
) -> dict[str, torch.Tensor]:
    """``|dL/dw * w|`` per chosen layer on one batch (CPU float64 tensors)."""
    if ctx.data_x is None or ctx.data_y is None:
        raise InvalidPruningError("snip needs training data: PruneContext.data_x/data_y")
    model = _model_with(weights, ctx, torch.float32)
    model.train()
    params = dict(model.named_parameters())
    _zero_pruned(model, mask)
    g = torch.Generator(device="cpu").manual_seed(int(ctx.seed))
    n = ctx.data_x.shape[0]
    idx = torch.randperm(n, generator=g)[: min(ctx.snip_batch, n)]
    dev = torch.device(ctx.device)
    x, y = ctx.data_x[idx].to(dev), ctx.data_y[idx].to(dev)
    chosen = chosen_layers(mask, ctx)
    loss = nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, [params[c] for c in chosen])
    return {c: (gr * params[c]).detach().abs().cpu().to(torch.float64) for c, gr in zip(chosen, grads, strict=True)}


def prune_snip(
    weights: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor], fraction: float, ctx: PruneContext
) -> Mask:
    """SNIP in one shot; see the module docstring."""
    n_prune = _n_prune(mask, fraction)
    return drop_globally(snip_scores(weights, mask, ctx), mask, n_prune)


def synflow_scores(
    model: nn.Module, mask: Mapping[str, torch.Tensor], chosen: list[str], input_shape: tuple[int, ...]
) -> dict[str, torch.Tensor]:
    """``|dR/dw * w|`` for the chosen layers of a *linearised* float64 ``model`` (all
    state made non-negative by the caller); masked weights are zeroed first."""
    params = dict(model.named_parameters())
    _zero_pruned(model, mask)
    device = next(model.parameters()).device
    ones = torch.ones((1, *input_shape), dtype=torch.float64, device=device)
    r = model(ones).sum()
    grads = torch.autograd.grad(r, [params[c] for c in chosen])
    return {c: (gr * params[c]).detach().abs().cpu() for c, gr in zip(chosen, grads, strict=True)}


def prune_synflow(
    weights: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor], fraction: float, ctx: PruneContext
) -> Mask:
    """SynFlow, iterated with the exponential schedule; see the module docstring."""
    if ctx.input_shape is None:
        raise InvalidPruningError("synflow needs the input shape: PruneContext.input_shape")
    n_prune = _n_prune(mask, fraction)
    chosen = chosen_layers(mask, ctx)
    model = _model_with(weights, ctx, torch.float64)
    model.eval()
    with torch.no_grad():
        # Linearise: |w| for every parameter and buffer (running stats too), as the
        # authors' code does with the whole state_dict.
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.abs_()
        abs_weights = {c: dict(model.named_parameters())[c].detach().clone() for c in chosen}
    start = sum(int(m.sum().item()) for m in mask.values())
    target = start - n_prune
    current: Mask = {n: m.clone() for n, m in mask.items()}
    iterations = max(1, ctx.synflow_iterations)
    params = dict(model.named_parameters())
    for i in range(1, iterations + 1):
        with torch.no_grad():
            for c in chosen:  # restore |w| where the last iteration's mask zeroed it
                params[c].copy_(abs_weights[c])
        keep = target if i == iterations else round(start * (target / start) ** (i / iterations))
        kept_now = sum(int(m.sum().item()) for m in current.values())
        if kept_now <= keep:
            continue
        scores = synflow_scores(model, current, chosen, tuple(ctx.input_shape))
        current = drop_globally(scores, current, kept_now - keep)
    return current
