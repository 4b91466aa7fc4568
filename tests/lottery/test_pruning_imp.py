"""search_ticket: rewinding, one-shot, at-init strategies, controls, resuming."""

from __future__ import annotations

import pytest
import torch

from nirvana.lottery.models.architectures import build_model
from nirvana.lottery.models.init import generate_init
from nirvana.lottery.pruning.config import SearchConfig
from nirvana.lottery.pruning.imp import ResumePoint, search_ticket
from nirvana.lottery.data.tasks import TaskData, TaskSpec
from nirvana.lottery.training.loop import train
from nirvana.lottery.training.recipes import Recipe
from nirvana.lottery.training.execution import ExecutionOptions
from nirvana.lottery.verification.protocol import verify_ticket

RECIPE = Recipe(optimizer="adam", lr=1e-3, batch_size=64, steps=20)


def config(**fields: object) -> SearchConfig:
    return SearchConfig.model_validate({"architecture": "lenet_16", "recipe": RECIPE, **fields})


def test_rewinding_resets_to_the_step_k_weights(digits: TaskData, digits_spec: TaskSpec) -> None:
    levels = search_ticket(config(levels=1, rate=0.5, rewind_step=7), digits)
    model = build_model("lenet_16", digits_spec.input_shape, 10)
    model.load_state_dict(generate_init("lenet_16", digits_spec, "kaiming_normal", 0))
    train(model, digits, RECIPE.model_copy(update={"steps": 7}), eval_every=0)
    assert all(torch.equal(levels[1].init[k], v) for k, v in model.state_dict().items())
    assert levels[0].next_init is not None and torch.equal(levels[0].next_init["fc1.weight"], levels[1].init["fc1.weight"])


def test_one_shot_and_at_init_hit_the_target(digits: TaskData, digits_spec: TaskSpec) -> None:
    one_shot = search_ticket(config(levels=1, strategy="global", density=0.1), digits)
    assert [lv.level for lv in one_shot] == [0, 1]
    assert one_shot[1].density == pytest.approx(0.1, abs=1e-3)
    synflow = search_ticket(config(levels=5, strategy="synflow", density=0.1), digits)
    assert [lv.level for lv in synflow] == [0] and synflow[0].density == pytest.approx(0.1, abs=1e-3)
    assert synflow[0].next_mask is None


def test_controls_are_the_verification_controls(digits: TaskData, digits_spec: TaskSpec) -> None:
    levels = search_ticket(config(levels=1, rate=0.5, controls=True), digits)
    assert levels[0].controls == {} and set(levels[1].controls) == {"reinit", "random_mask"}
    result = verify_ticket(architecture="lenet_16", task_data=digits, task_spec=digits_spec, init=levels[1].init,
                           mask=levels[1].mask, recipe=RECIPE, claimed_accuracy=levels[1].test_accuracy,
                           scheme="kaiming_normal", replicates=1,
                           options=ExecutionOptions(batching="off"))  # fmt: skip
    # Replicate 0 of each control is the search's control, bit for bit (one at a time:
    # the batched trainer agrees only to float tolerance).
    assert result.arm("reinit")[0].result.test_accuracy == levels[1].controls["reinit"]
    assert result.arm("random_mask")[0].result.test_accuracy == levels[1].controls["random_mask"]


def test_resume_continues_exactly(digits: TaskData, digits_spec: TaskSpec) -> None:
    random = config(levels=2, rate=0.3, strategy="random", rewind_step=3)
    full = search_ticket(random, digits)
    first = full[0]
    assert first.next_mask is not None and first.next_init is not None
    resumed = search_ticket(random, digits, resume=ResumePoint(level=1, mask=first.next_mask, init=first.next_init))
    assert [lv.level for lv in resumed] == [1, 2]
    for a, b in zip(full[1:], resumed, strict=True):
        assert a.test_accuracy == b.test_accuracy
        assert all(torch.equal(a.mask[k], b.mask[k]) for k in a.mask)
