"""Pruning strategies: exact counts, global thresholds, random controls, SNIP, SynFlow."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nirvana.lottery.models.architectures import build_model, describe
from nirvana.lottery.models.init import generate_init
from nirvana.lottery.pruning.masks import dense_mask
from nirvana.lottery.pruning.imp import prune_layerwise
from nirvana.lottery.pruning.registry import get_strategy, list_strategies, prune_to_density
from nirvana.lottery.pruning.strategies import InvalidPruningError, PruneContext, density_of, lth_rates, prune_global, prune_random
from nirvana.lottery.data.tasks import TaskData, TaskSpec


def _lenet_300_100() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    mask = dense_mask(describe("lenet_300_100", (1, 28, 28), 10))
    g = torch.Generator().manual_seed(0)
    return {k: torch.randn(v.shape, generator=g) for k, v in mask.items()}, mask


def test_registry() -> None:
    assert [s.name for s in list_strategies()] == ["layerwise", "global", "random", "snip", "synflow"]
    assert [s.at_init for s in list_strategies()] == [False, False, False, True, True]
    with pytest.raises(InvalidPruningError, match="unknown pruning strategy"):
        get_strategy("magnitude")


def test_layerwise_lth_rates_exact_counts_output_at_half_rate() -> None:
    weights, mask = _lenet_300_100()
    rates = lth_rates(mask, 0.2)
    assert rates == {"fc1.weight": 0.2, "fc2.weight": 0.2, "fc3.weight": 0.1}
    new = prune_layerwise(weights, mask, rates)
    kept = {k: int(v.sum()) for k, v in new.items()}
    assert kept == {"fc1.weight": 235_200 - 47_040, "fc2.weight": 30_000 - 6_000, "fc3.weight": 1_000 - 100}
    # A second level prunes 20% of what remains, never resurrecting a weight.
    again = prune_layerwise(weights, new, rates)
    assert int(again["fc1.weight"].sum()) == 188_160 - 37_632
    assert not (again["fc2.weight"] & ~new["fc2.weight"]).any()
    # The smallest magnitudes went: every pruned |w| <= every kept |w| within a layer.
    w = weights["fc2.weight"].abs()
    assert w[~new["fc2.weight"]].max() <= w[new["fc2.weight"]].min()


def test_lth_rates_for_conv_nets() -> None:
    mask = {"c1.weight": torch.ones(4, 3, 3, 3, dtype=torch.bool), "fc.weight": torch.ones(8, 36, dtype=torch.bool),
            "out.weight": torch.ones(10, 8, dtype=torch.bool)}  # fmt: skip
    assert lth_rates(mask, 0.2, conv_rate=0.15) == {"c1.weight": 0.15, "fc.weight": 0.2, "out.weight": 0.1}


def test_global_one_threshold_small_layer_loses_more() -> None:
    g = torch.Generator().manual_seed(1)
    weights = {"a": torch.randn(100, generator=g), "tiny": 0.01 * torch.randn(100, generator=g), "out": torch.randn(10, generator=g)}
    mask = {k: torch.ones_like(v, dtype=torch.bool) for k, v in weights.items()}
    new = prune_global(weights, mask, 0.3, PruneContext(exclude=["output"]))
    # OpenLTH's count: ceil(0.3 * all 210 remaining) = 63, taken from the chosen layers only.
    assert sum(int(m.sum()) for m in new.values()) == 210 - 63
    assert torch.equal(new["out"], mask["out"])
    lost = {k: 100 - int(new[k].sum()) for k in ("a", "tiny")}
    assert lost["tiny"] > 50 > lost["a"] and lost["tiny"] + lost["a"] == 63
    kept = torch.cat([weights[k].abs()[new[k]] for k in ("a", "tiny")])
    pruned = torch.cat([weights[k].abs()[~new[k]] for k in ("a", "tiny")])
    assert pruned.max() <= kept.min()
    only_a = prune_global(weights, mask, 0.1, PruneContext(layers=["a"]))
    assert int(only_a["a"].sum()) == 100 - 21 and torch.equal(only_a["tiny"], mask["tiny"])
    with pytest.raises(InvalidPruningError, match="no prunable layer"):
        prune_global(weights, mask, 0.1, PruneContext(exclude=["fc9.weight"]))


def test_random_has_layerwise_counts_at_other_positions() -> None:
    weights, mask = _lenet_300_100()
    ctx = PruneContext(layer_rates=lth_rates(mask, 0.2), seed=4)
    rand = prune_random(weights, mask, 0.0, ctx)
    mag = prune_layerwise(weights, mask, lth_rates(mask, 0.2))
    assert {k: int(v.sum()) for k, v in rand.items()} == {k: int(v.sum()) for k, v in mag.items()}
    assert not torch.equal(rand["fc1.weight"], mag["fc1.weight"])
    assert all(torch.equal(a, b) for a, b in zip(rand.values(), prune_random(weights, mask, 0.0, ctx).values(), strict=True))


@pytest.mark.parametrize("strategy", ["global", "snip", "synflow"])
def test_one_shot_hits_target_density(strategy: str, digits: TaskData, digits_spec: TaskSpec) -> None:
    init = generate_init("lenet_32_16", digits_spec, "kaiming_normal", 0)
    mask = dense_mask(describe("lenet_32_16", digits_spec.input_shape, 10))
    model = build_model("lenet_32_16", digits_spec.input_shape, 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ctx = PruneContext(model=model, input_shape=digits_spec.input_shape, data_x=digits.x_train,
                       data_y=digits.y_train, synflow_iterations=20)  # fmt: skip
    new = prune_to_density(strategy, init, mask, 0.05, ctx)
    total = sum(m.numel() for m in mask.values())
    assert sum(int(m.sum()) for m in new.values()) == total - math.ceil(0.95 * total - 1e-9)
    assert density_of(new) == pytest.approx(0.05, abs=1 / total)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # caller's model untouched


def test_snip_prefers_gradient_times_weight_over_magnitude() -> None:
    model = nn.Sequential(nn.Linear(2, 2, bias=False))
    weights = {"0.weight": torch.tensor([[0.1, 10.0], [-0.1, -10.0]])}
    mask = {"0.weight": torch.ones(2, 2, dtype=torch.bool)}
    # The second input is always 0: its weights are large but get no gradient.
    x, y = torch.tensor([[1.0, 0.0], [2.0, 0.0]]), torch.tensor([0, 1])
    ctx = PruneContext(model=model, data_x=x, data_y=y)
    snip = get_strategy("snip").prune(weights, mask, 0.5, ctx)
    assert snip["0.weight"].tolist() == [[True, False], [True, False]]
    assert prune_global(weights, mask, 0.5, ctx)["0.weight"].tolist() == [[False, True], [False, True]]


def test_synflow_avoids_layer_collapse_where_snip_collapses(digits: TaskData, digits_spec: TaskSpec) -> None:
    arch = "lenet_" + "_".join(["16"] * 10)  # deep and narrow: 11 layers, 3,824 weights
    init = generate_init(arch, digits_spec, "kaiming_normal", 0)
    mask = dense_mask(describe(arch, digits_spec.input_shape, 10))
    ctx = PruneContext(model=build_model(arch, digits_spec.input_shape, 10), input_shape=digits_spec.input_shape,
                       data_x=digits.x_train, data_y=digits.y_train)  # fmt: skip
    synflow = prune_to_density("synflow", init, mask, 1e-2, ctx)
    assert all(int(m.sum()) > 0 for m in synflow.values()), {k: int(m.sum()) for k, m in synflow.items()}
    snip = prune_to_density("snip", init, mask, 1e-2, ctx)
    assert any(int(m.sum()) == 0 for m in snip.values())  # what the test guards against
    with pytest.raises(InvalidPruningError, match="input shape"):
        prune_to_density("synflow", init, mask, 0.5, PruneContext(model=ctx.model))
