"""The pruning strategies by name: ``layerwise``, ``global``, ``random`` (magnitude and
its control, in ``nirvana.lottery.pruning.strategies``) and ``snip``, ``synflow`` (at initialization,
in ``nirvana.lottery.pruning.at_init``)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from nirvana.lottery.pruning.at_init import prune_snip, prune_synflow
from nirvana.lottery.pruning.strategies import (
    InvalidPruningError,
    Mask,
    PruneContext,
    Strategy,
    fraction_for,
    prune_global,
    prune_layerwise_strategy,
    prune_random,
)


def _registry() -> dict[str, Strategy]:
    return {
        s.name: s
        for s in (
            Strategy("layerwise", prune_layerwise_strategy, False, "per-layer magnitude (LTH paper)"),
            Strategy("global", prune_global, False, "one magnitude threshold over the chosen layers (OpenLTH sparse_global)"),
            Strategy("random", prune_random, False, "random, with layerwise's per-layer counts (control)"),
            Strategy("snip", prune_snip, True, "|grad * w| on one batch at init (Lee et al. 2019)"),
            Strategy("synflow", prune_synflow, True, "iterative synaptic flow, data-free (Tanaka et al. 2020)"),
        )
    }


def get_strategy(name: str) -> Strategy:
    """The strategy called ``name``; raises ``InvalidPruningError``."""
    strategies = _registry()
    if name not in strategies:
        raise InvalidPruningError(f"unknown pruning strategy {name!r}; known: {', '.join(strategies)}")
    return strategies[name]


def list_strategies() -> list[Strategy]:
    """Every strategy, in the order above."""
    return list(_registry().values())


def prune_to_density(
    strategy: str, weights: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor], density: float, ctx: PruneContext
) -> Mask:
    """One-shot: ``strategy`` applied once with the fraction that takes ``mask`` to
    ``density`` (exactly for ``global``/``snip``/``synflow`` when nothing is excluded,
    up to per-layer rounding for ``layerwise``/``random``)."""
    return get_strategy(strategy).prune(weights, mask, fraction_for(mask, density), ctx)
