from __future__ import annotations

import json
import math

import pytest
import torch

from nirvana.lottery.pruning.imp import find_ticket, prune_layerwise
from nirvana.lottery.data.tasks import TaskData, TaskSpec
from nirvana.lottery.training.loop import Recipe
from nirvana.lottery.verification.protocol import RUN_NAMES, pick_device, plan_runs, verify_ticket
from nirvana.lottery.verification.verdict import tolerance


def test_prune_layerwise_removes_smallest_remaining() -> None:
    w = {"a": torch.tensor([0.5, -0.1, 0.3, 0.2, -0.9, 0.0]), "out": torch.tensor([1.0, 2.0, 3.0, 4.0])}
    mask = {"a": torch.tensor([True, True, True, True, True, False]), "out": torch.ones(4, dtype=torch.bool)}
    new = prune_layerwise(w, mask, 0.4, output_rate=0.25)
    assert new["a"].tolist() == [True, False, True, False, True, False]  # 2 of 5 kept ones
    assert new["out"].tolist() == [False, True, True, True]
    assert mask["a"].sum() == 5  # input untouched


def test_prune_ties_are_deterministic() -> None:
    w = {"a": torch.ones(6)}
    new = prune_layerwise(w, {"a": torch.ones(6, dtype=torch.bool)}, {"a": 0.5})
    assert new["a"].tolist() == [False, False, False, True, True, True]


def test_find_ticket_two_levels(digits: TaskData, digits_spec: TaskSpec, short_recipe: Recipe) -> None:
    levels = find_ticket("lenet_32_16", digits, digits_spec, short_recipe, levels=2, rate=0.5)
    assert [lv.level for lv in levels] == [0, 1, 2]
    assert levels[0].density == 1.0
    assert levels[1].density == pytest.approx(0.5, abs=0.01)
    assert levels[2].density == pytest.approx(0.25, abs=0.01)
    assert all(torch.equal(levels[0].init[k], levels[2].init[k]) for k in levels[0].init)
    # Pruned weights stay pruned from one level to the next.
    assert not (levels[2].mask["fc1.weight"] & ~levels[1].mask["fc1.weight"]).any()


def test_find_ticket_rewinds(digits: TaskData, digits_spec: TaskSpec, short_recipe: Recipe) -> None:
    levels = find_ticket("lenet_32_16", digits, digits_spec, short_recipe, levels=1, rate=0.2, rewind_step=10)
    assert not torch.equal(levels[0].init["fc1.weight"], levels[1].init["fc1.weight"])


def test_tolerance_formula() -> None:
    assert tolerance(0.9, 10_000) == 0.01
    assert tolerance(0.5, 297) == pytest.approx(2 * math.sqrt(0.25 / 297))
    assert tolerance(1.0, 100) == 0.01
    assert tolerance(0.9, 10_000, spread=0.02) == pytest.approx(2 * math.sqrt(0.09 / 10_000 + 0.02**2))


def test_pick_device() -> None:
    assert pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_plan_draws_a_new_init_mask_and_order_per_replicate(digits_spec: TaskSpec, short_recipe: Recipe,
                                                             small_init: dict[str, torch.Tensor]) -> None:  # fmt: skip
    g = torch.Generator().manual_seed(0)
    mask = {k: torch.rand(v.shape, generator=g) < 0.5 for k, v in small_init.items() if k.endswith("weight")}
    plan = dict(init=small_init, mask=mask, recipe=short_recipe, scheme="kaiming_normal", architecture="lenet_32_16",
                task_spec=digits_spec)  # fmt: skip
    runs = plan_runs(replicates=3, **plan)  # type: ignore[arg-type]
    assert [(r.arm, r.replicate) for r in runs[:4]] == [(a, 0) for a in RUN_NAMES] and len(runs) == 12
    by = {(r.arm, r.replicate): r for r in runs}
    seeds = [by["ticket", r].recipe.data_seed for r in range(3)]
    assert seeds[0] == short_recipe.data_seed and len(set(seeds)) == 3
    assert all(by[a, r].recipe.data_seed == seeds[r] for a in RUN_NAMES for r in range(3))  # one order per replicate
    assert len({by["reinit", r].init_seed for r in range(3)}) == 3
    assert not torch.equal(by["reinit", 0].init["fc1.weight"], by["reinit", 1].init["fc1.weight"])
    assert by["random_mask", 0].mask is not None and by["random_mask", 1].mask is not None
    assert not torch.equal(by["random_mask", 0].mask["fc1.weight"], by["random_mask", 1].mask["fc1.weight"])
    assert int(by["random_mask", 1].mask["fc1.weight"].sum()) == int(mask["fc1.weight"].sum())
    assert by["ticket", 2].init is small_init and by["dense", 1].mask is None
    again = plan_runs(replicates=3, **plan)  # type: ignore[arg-type]
    assert [(r.recipe, r.init_seed, r.mask_seed) for r in again] == [(r.recipe, r.init_seed, r.mask_seed) for r in runs]


def test_verify_ticket_on_digits(digits: TaskData, digits_spec: TaskSpec, short_recipe: Recipe) -> None:
    found = find_ticket("lenet_32_16", digits, digits_spec, short_recipe, levels=1, rate=0.5)[-1]
    fractions: list[float] = []
    result = verify_ticket(
        architecture="lenet_32_16",
        task_data=digits,
        task_spec=digits_spec,
        init=found.init,
        mask=found.mask,
        recipe=short_recipe,
        claimed_accuracy=found.test_accuracy,
        scheme="kaiming_normal",
        replicates=2,
        on_progress=fractions.append,
    )
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    d = json.loads(json.dumps(result.to_dict()))
    assert d["schema"] == 2 and set(d["arms"]) == set(RUN_NAMES) and d["replicates"] == 2
    ticket = d["arms"]["ticket"]
    # Replicate 0 is the search's run: same init, mask, recipe, data order on the CPU.
    assert ticket["replicates"][0]["test_accuracy"] == found.test_accuracy
    assert ticket["replicates"][0]["curve"][-1] == [150, found.test_accuracy]
    assert ticket["replicates"][0]["curve"][0][0] == 0
    assert ticket["replicates"][0]["accuracy_at_init"] == ticket["replicates"][0]["curve"][0][1]
    assert ticket["test_accuracy"]["n"] == 2 and ticket["early_stop_test_accuracy"]["n"] == 2
    assert d["arms"]["dense"]["density"] == 1.0 and d["arms"]["random_mask"]["density"] == pytest.approx(found.density)
    assert d["device"] == "cpu" and d["task"] == "digits" and d["dataset_fingerprint"] == digits.fingerprint
    assert d["verdict"] in ("winning", "not_winning", "not_reproduced") and d["reasons"]
    assert d["single_replicate"] is False and d["instability"] is not None and d["instability"] >= 0
    assert d["verdict"] == ("winning" if d["reproduced"] and d["matches_dense"] and d["beats_reinit"]
                            and d["beats_random_mask"] else "not_winning" if d["reproduced"] else "not_reproduced")  # fmt: skip
    assert d["recipe"]["steps"] == 150 and d["torch_version"] == torch.__version__


def test_verify_cancellation(digits: TaskData, digits_spec: TaskSpec, short_recipe: Recipe, small_init: dict[str, torch.Tensor]) -> None:
    def stop(fraction: float) -> None:
        if fraction > 0.3:
            raise KeyboardInterrupt

    mask = {k: torch.ones_like(v, dtype=torch.bool) for k, v in small_init.items() if k.endswith("weight")}
    with pytest.raises(KeyboardInterrupt):
        verify_ticket(architecture="lenet_32_16", task_data=digits, task_spec=digits_spec, init=small_init, mask=mask,
                      recipe=short_recipe, claimed_accuracy=0.9, scheme="kaiming_normal", on_progress=stop)
