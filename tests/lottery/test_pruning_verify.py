from __future__ import annotations

import json
import math

import pytest
import torch

from nirvana.lottery.pruning.config import SearchConfig
from nirvana.lottery.pruning.imp import prune_layerwise, search_ticket
from nirvana.lottery.data.tasks import TaskData, TaskSpec
from nirvana.lottery.training.recipes import Recipe
from nirvana.lottery.verification.protocol import RUN_NAMES, pick_device, tolerance, verify_ticket


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


def test_search_ticket_two_levels(digits: TaskData, digits_spec: TaskSpec, short_recipe: Recipe) -> None:
    config = SearchConfig(architecture="lenet_32_16", recipe=short_recipe, levels=2, rate=0.5, output_rate=0.5)
    levels = search_ticket(config, digits)
    assert [lv.level for lv in levels] == [0, 1, 2]
    assert levels[0].density == 1.0
    assert levels[1].density == pytest.approx(0.5, abs=0.01)
    assert levels[2].density == pytest.approx(0.25, abs=0.01)
    assert all(torch.equal(levels[0].init[k], levels[2].init[k]) for k in levels[0].init)
    # Pruned weights stay pruned from one level to the next.
    assert not (levels[2].mask["fc1.weight"] & ~levels[1].mask["fc1.weight"]).any()


def test_search_ticket_rewinds(digits: TaskData, digits_spec: TaskSpec, short_recipe: Recipe) -> None:
    levels = search_ticket(SearchConfig(architecture="lenet_32_16", recipe=short_recipe, levels=1, rewind_step=10), digits)
    assert not torch.equal(levels[0].init["fc1.weight"], levels[1].init["fc1.weight"])


def test_tolerance_formula() -> None:
    assert tolerance(0.9, 10_000) == 0.01
    assert tolerance(0.5, 297) == pytest.approx(2 * math.sqrt(0.25 / 297))
    assert tolerance(1.0, 100) == 0.01


def test_pick_device() -> None:
    assert pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_verify_ticket_on_digits(digits: TaskData, digits_spec: TaskSpec, short_recipe: Recipe) -> None:
    found = search_ticket(SearchConfig(architecture="lenet_32_16", recipe=short_recipe, levels=1, rate=0.5), digits)[-1]
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
        on_progress=fractions.append,
    )
    assert set(result.runs) == set(RUN_NAMES)
    # Same init, mask, recipe: the ticket run reproduces the search exactly on the CPU.
    assert result.runs["ticket"].test_accuracy == found.test_accuracy
    assert result.reproduced
    assert result.runs["dense"].density == 1.0 and result.runs["random_mask"].density == pytest.approx(found.density)
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    d = json.loads(json.dumps(result.to_dict()))
    assert d["device"] == "cpu" and d["task"] == "digits" and d["dataset_fingerprint"] == digits.fingerprint
    assert d["runs"]["ticket"]["curve"][-1] == [150, found.test_accuracy]
    assert d["tolerance"] == tolerance(found.test_accuracy, 297)
    ticket, dense = d["runs"]["ticket"]["test_accuracy"], d["runs"]["dense"]["test_accuracy"]
    expected_winning = (
        ticket >= dense - d["tolerance"]
        and ticket > d["runs"]["reinit"]["test_accuracy"]
        and ticket > d["runs"]["random_mask"]["test_accuracy"]
    )
    assert d["winning"] == expected_winning
    assert d["recipe"]["steps"] == 150 and d["torch_version"] == torch.__version__


def test_verify_cancellation(digits: TaskData, digits_spec: TaskSpec, short_recipe: Recipe, small_init: dict[str, torch.Tensor]) -> None:
    def stop(fraction: float) -> None:
        if fraction > 0.3:
            raise KeyboardInterrupt

    mask = {k: torch.ones_like(v, dtype=torch.bool) for k, v in small_init.items() if k.endswith("weight")}
    with pytest.raises(KeyboardInterrupt):
        verify_ticket(architecture="lenet_32_16", task_data=digits, task_spec=digits_spec, init=small_init, mask=mask,
                      recipe=short_recipe, claimed_accuracy=0.9, scheme="kaiming_normal", on_progress=stop)
