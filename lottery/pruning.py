"""Magnitude pruning and iterative magnitude pruning (IMP), layerwise as in the LTH paper.

``find_ticket`` repeats: train, prune a fraction of each layer's remaining weights by
magnitude, reset the survivors to the init (or to the weights after ``rewind_step``
steps: late resetting), retrain. Level 0 is the dense network.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from lottery.architectures import build_model, describe
from lottery.init import generate_init
from lottery.masks import dense_mask, sparsity_report
from lottery.tasks import TaskData, TaskSpec
from lottery.training import Recipe, train


def _prune_one(weight: torch.Tensor, keep: torch.Tensor, rate: float) -> torch.Tensor:
    """Drop ``round(rate * kept)`` of the kept entries of ``weight`` with the smallest
    magnitude; ties go to the lower flat index (stable sort), so results are deterministic."""
    kept = int(keep.sum().item())
    n_prune = int(round(rate * kept))
    if n_prune <= 0:
        return keep.clone()
    scores = weight.detach().abs().to(torch.float64).reshape(-1).cpu()
    flat_keep = keep.reshape(-1).cpu()
    # Already-pruned entries sort last so they are never "pruned again".
    scores = torch.where(flat_keep, scores, torch.full_like(scores, float("inf")))
    order = torch.argsort(scores, stable=True)
    new = flat_keep.clone()
    new[order[:n_prune]] = False
    return new.reshape(keep.shape)


def prune_layerwise(
    weights: Mapping[str, torch.Tensor],
    mask: Mapping[str, torch.Tensor],
    rates: Mapping[str, float] | float,
    output_rate: float | None = None,
) -> dict[str, torch.Tensor]:
    """A new mask removing, in each layer of ``mask``, the given fraction of its
    *remaining* weights with the smallest ``|weights[name]|``.

    ``rates`` is one fraction for every layer or one per layer name (a layer absent
    from the dict is not pruned). ``output_rate``, when given, overrides the rate of
    the output layer, which is the *last* entry of ``mask`` (masks are built in
    parameter order; the LTH paper prunes it at half the rate).
    """
    names = list(mask)
    out: dict[str, torch.Tensor] = {}
    for i, name in enumerate(names):
        rate = rates if isinstance(rates, float | int) else rates.get(name, 0.0)
        if output_rate is not None and i == len(names) - 1:
            rate = output_rate
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"pruning rate for {name} must be in [0, 1), got {rate}")
        out[name] = _prune_one(weights[name], mask[name], float(rate))
    return out


@dataclass
class LevelResult:
    """One IMP level: the mask, the tensors it was reset to, and how it trained."""

    level: int
    mask: dict[str, torch.Tensor]
    init: dict[str, torch.Tensor] = field(repr=False)
    test_accuracy: float
    density: float
    curve: list[tuple[int, float]]


def find_ticket(
    architecture: str,
    task_data: TaskData,
    task_spec: TaskSpec,
    recipe: Recipe,
    *,
    levels: int,
    rate: float,
    output_rate: float | None = None,
    scheme: str = "kaiming_normal",
    seed: int = 0,
    rewind_step: int = 0,
    device: str | torch.device = "cpu",
    on_level: Callable[[LevelResult], None] | None = None,
) -> list[LevelResult]:
    """Iterative magnitude pruning: ``levels`` rounds after the dense level 0.

    Each level trains the masked network from its reset point under ``recipe``, then
    ``prune_layerwise`` removes ``rate`` of each layer's remaining weights (the output
    layer at ``output_rate`` if given) by final-weight magnitude. The reset point is
    ``generate_init(architecture, task_spec, scheme, seed)``, or with
    ``rewind_step > 0`` the weights after that many steps of the dense run.
    ``on_level`` is called with each result as soon as it exists; what it raises stops
    the search and propagates.
    """
    if rewind_step < 0 or rewind_step > recipe.steps:
        raise ValueError(f"rewind_step must be in [0, {recipe.steps}], got {rewind_step}")
    info = describe(architecture, task_spec.input_shape, task_spec.num_classes)
    init = generate_init(architecture, task_spec, scheme, seed)
    reset_to = init
    mask = dense_mask(info)
    model = build_model(architecture, task_spec.input_shape, task_spec.num_classes)
    results: list[LevelResult] = []
    for level in range(levels + 1):
        model.load_state_dict(reset_to)
        capture = rewind_step if level == 0 and rewind_step > 0 else None
        trained = train(model, task_data, recipe, mask=mask, device=device, capture_step=capture)
        result = LevelResult(
            level=level,
            mask=mask,
            init=reset_to,
            test_accuracy=trained.test_accuracy,
            density=sparsity_report(mask, info).density,
            curve=trained.curve,
        )
        results.append(result)
        if on_level is not None:
            on_level(result)
        if trained.captured is not None:
            reset_to = trained.captured
        if level < levels:
            final = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            mask = prune_layerwise(final, mask, rate, output_rate)
    return results
