"""Training: bitwise repeatable, masks without hooks, on_eval follows the curve."""

from __future__ import annotations

import torch

from nirvana.lottery.models.architectures import build_model, describe
from nirvana.lottery.pruning.masks import dense_mask
from nirvana.lottery.data.tasks import TaskData
from nirvana.lottery.training.recipes import Recipe
from nirvana.lottery.training.loop import train


def _run(init: dict[str, torch.Tensor], data: TaskData, recipe: Recipe, mask: dict[str, torch.Tensor]) -> tuple[torch.nn.Module, list[tuple[int, float]]]:
    model = build_model("lenet_32_16", (1, 8, 8), 10)
    model.load_state_dict(init)
    seen: list[tuple[int, float]] = []

    def no_hooks(step: int, total: int) -> None:
        # The mask is applied by re-zeroing after each step: nothing wraps the forward pass.
        assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
        assert not hasattr(model.fc1, "parametrizations")

    result = train(model, data, recipe, mask=mask, on_eval=lambda s, a: seen.append((s, a)), on_progress=no_hooks)
    assert seen == result.curve
    return model, result.curve


def test_masked_schedule_run_is_bitwise_repeatable(digits: TaskData, small_init: dict[str, torch.Tensor]) -> None:
    g = torch.Generator().manual_seed(3)
    mask = {k: torch.rand(v.shape, generator=g) < 0.4 for k, v in dense_mask(describe("lenet_32_16", (1, 8, 8), 10)).items()}
    recipe = Recipe(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=1e-4, batch_size=50, steps=40,
                    warmup_steps=5, schedule="step", milestones=[20, 30], data_seed=7)  # fmt: skip
    a, curve_a = _run(small_init, digits, recipe, mask)
    b, curve_b = _run(small_init, digits, recipe, mask)
    assert curve_a == curve_b
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
        if name in mask:
            assert bool((pa[~mask[name]] == 0).all())
