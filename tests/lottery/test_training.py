from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from nirvana.lottery.models.architectures import build_model, describe
from nirvana.lottery.pruning.masks import dense_mask
from nirvana.lottery.data.tasks import TaskData, TaskSpec
from nirvana.lottery.training.loop import BatchSampler, train
from nirvana.lottery.training.optimizers import OptimizerStep, make_optimizer
from nirvana.lottery.training.recipes import Recipe


def model_from(init: dict[str, torch.Tensor], arch: str = "lenet_32_16") -> torch.nn.Module:
    model = build_model(arch, (1, 8, 8), 10)
    model.load_state_dict(init)
    return model


def some_mask() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    mask = dense_mask(describe("lenet_32_16", (1, 8, 8), 10))
    return {k: torch.rand(v.shape, generator=g) < 0.3 for k, v in mask.items()}


def test_masked_weights_stay_exactly_zero(digits: TaskData, small_init: dict[str, torch.Tensor]) -> None:
    mask = some_mask()
    model = model_from(small_init)
    seen: list[int] = []

    def check(step: int, total: int) -> None:
        seen.append(step)
        for name, p in model.named_parameters():
            if name in mask:
                assert bool((p[~mask[name]] == 0).all()), (name, step)

    recipe = Recipe(lr=1e-2, batch_size=32, steps=60, weight_decay=1e-3)
    train(model, digits, recipe, mask=mask, on_progress=check)
    assert seen[0] == 0 and seen[-1] == 60 and len(seen) > 10
    w = model.state_dict()["fc1.weight"]
    assert bool((w[~mask["fc1.weight"]] == 0).all()) and bool((w[mask["fc1.weight"]] != 0).any())
    pruned = sum(int((~m).sum()) for m in mask.values())
    assert sum(int((p == 0).sum()) for n, p in model.named_parameters() if n in mask) >= pruned


@pytest.mark.parametrize("recipe", [
    Recipe(lr=1e-3, batch_size=64, steps=80, data_seed=3),
    Recipe(optimizer="sgd", lr=0.05, momentum=0.9, batch_size=50, steps=80, schedule="cosine", warmup_steps=10),
])
def test_bitwise_repeatable(digits: TaskData, small_init: dict[str, torch.Tensor], recipe: Recipe) -> None:
    a, b = model_from(small_init), model_from(small_init)
    ra = train(a, digits, recipe, mask=some_mask())
    rb = train(b, digits, recipe, mask=some_mask())
    assert ra.curve == rb.curve
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("recipe", [
    Recipe(lr=1e-3, weight_decay=1e-4, batch_size=8, steps=5),
    Recipe(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=1e-4, batch_size=8, steps=5),
    Recipe(optimizer="sgd", lr=0.05, momentum=0.0, batch_size=8, steps=5),
])
def test_cpu_optimizer_is_fused_and_steps_like_torchs_default(small_init: dict[str, torch.Tensor], recipe: Recipe) -> None:
    """One kernel call a step on the CPU, the same updates as torch's default loop up to rounding."""
    a, b = model_from(small_init), model_from(small_init)
    fused = make_optimizer(a, recipe)
    assert fused.defaults["fused"]
    plain = (torch.optim.SGD(b.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
             if recipe.optimizer == "sgd" else torch.optim.Adam(b.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay))
    g = torch.Generator().manual_seed(0)
    for _ in range(recipe.steps):
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
            pa.grad = torch.randn(pa.shape, generator=g)
            pb.grad = pa.grad.clone()
        fused.step()
        plain.step()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-6, atol=1e-7, msg=name)


@pytest.mark.parametrize("recipe", [
    Recipe(lr=1e-3, weight_decay=1e-4, batch_size=8, steps=6),
    Recipe(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=1e-4, batch_size=8, steps=6),
    Recipe(optimizer="sgd", lr=0.05, momentum=0.0, batch_size=8, steps=6),
])
def test_lean_optimizer_step_is_bitwise_optimizer_step(small_init: dict[str, torch.Tensor], recipe: Recipe) -> None:
    """OptimizerStep makes optimizer.step()'s updates bit for bit, follows a changed
    learning rate, and leaves the optimizer's state the tensors it updated."""
    a, b = model_from(small_init), model_from(small_init)
    lean_optimizer, torch_optimizer = make_optimizer(a, recipe), make_optimizer(b, recipe)
    lean = OptimizerStep(lean_optimizer)
    assert lean.kind == recipe.optimizer
    g = torch.Generator().manual_seed(0)
    for step in range(recipe.steps):
        for group in (*lean_optimizer.param_groups, *torch_optimizer.param_groups):
            group["lr"] = recipe.lr / (1 + step)
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
            pa.grad = torch.randn(pa.shape, generator=g)
            pb.grad = pa.grad.clone()
        lean.step()
        torch_optimizer.step()
    assert lean._state is not None  # the later steps took the lean path
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb), name
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        for key, value in torch_optimizer.state[pb].items():
            assert torch.equal(lean_optimizer.state[pa][key], value), key


def test_lean_optimizer_step_falls_back_without_gradients(small_init: dict[str, torch.Tensor]) -> None:
    """A parameter without a gradient (frozen this step) takes optimizer.step(), which skips it."""
    a, b = model_from(small_init), model_from(small_init)
    recipe = Recipe(lr=1e-3, batch_size=8, steps=3)
    lean, plain = OptimizerStep(make_optimizer(a, recipe)), make_optimizer(b, recipe)
    for step in range(recipe.steps):
        for i, (pa, pb) in enumerate(zip(a.parameters(), b.parameters(), strict=True)):
            pa.grad = None if (step == 2 and i == 0) else torch.full(pa.shape, 0.5)
            pb.grad = None if pa.grad is None else pa.grad.clone()
        lean.step()
        plain.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_data_seed_changes_the_run(digits: TaskData, small_init: dict[str, torch.Tensor]) -> None:
    a, b = model_from(small_init), model_from(small_init)
    train(a, digits, Recipe(lr=1e-3, batch_size=64, steps=20, data_seed=0), eval_every=0)
    train(b, digits, Recipe(lr=1e-3, batch_size=64, steps=20, data_seed=1), eval_every=0)
    assert not torch.equal(a.state_dict()["fc1.weight"], b.state_dict()["fc1.weight"])


def test_sampler_epochs_are_permutations() -> None:
    s = BatchSampler(10, 3, seed=0, device=torch.device("cpu"))
    epoch = torch.cat([s.next() for _ in range(3)])  # 3 batches of 3, tail of 1 dropped
    assert len(set(epoch.tolist())) == 9
    assert BatchSampler(5, 100, seed=0, device=torch.device("cpu")).next().numel() == 5


def test_curve_and_progress_contract(digits: TaskData, small_init: dict[str, torch.Tensor]) -> None:
    r = train(model_from(small_init), digits, Recipe(lr=1e-3, batch_size=64, steps=95))
    steps = [s for s, _ in r.curve]
    assert steps[0] == 0 and steps[-1] == 95 and 20 <= len(steps) <= 22
    assert r.test_accuracy == r.curve[-1][1] and r.steps == 95 and r.seconds > 0
    assert [s for s, _ in r.validation_curve] == steps
    assert r.accuracy_at_init == r.curve[0][1]
    only_ends = train(model_from(small_init), digits, Recipe(lr=1e-3, batch_size=64, steps=5), eval_every=0)
    assert [s for s, _ in only_ends.curve] == [0, 5]


def test_progress_exception_cancels(digits: TaskData, small_init: dict[str, torch.Tensor]) -> None:
    class Cancelled(Exception):
        pass

    def cancel(step: int, total: int) -> None:
        if step >= 10:
            raise Cancelled

    with pytest.raises(Cancelled):
        train(model_from(small_init), digits, Recipe(lr=1e-3, batch_size=64, steps=1000), on_progress=cancel)


def test_capture_step(digits: TaskData, small_init: dict[str, torch.Tensor]) -> None:
    r = train(model_from(small_init), digits, Recipe(lr=1e-3, batch_size=64, steps=20), capture_step=0)
    assert r.captured is not None and torch.equal(r.captured["fc1.weight"], small_init["fc1.weight"])


def test_lr_schedule() -> None:
    r = Recipe(lr=1.0, batch_size=1, steps=100, warmup_steps=4, schedule="step", milestones=[50, 80], gamma=0.1)
    assert r.lr_factor(0) == 0.25 and r.lr_factor(3) == 1.0
    assert r.lr_factor(49) == 1.0 and r.lr_factor(50) == pytest.approx(0.1) and r.lr_factor(99) == pytest.approx(0.01)
    with pytest.raises(ValidationError):
        Recipe(lr=1.0, batch_size=1, steps=1, milestones=[5, 2])
    with pytest.raises(ValidationError):
        Recipe(lr=1.0, batch_size=70000, steps=1)


def test_digits_default_recipe_reaches_85_percent(digits: TaskData, digits_spec: TaskSpec) -> None:
    from nirvana.lottery.models.init import generate_init

    init = generate_init("lenet_300_100", digits_spec, "kaiming_normal", 0)
    model = build_model("lenet_300_100", digits_spec.input_shape, digits_spec.num_classes)
    model.load_state_dict(init)
    r = train(model, digits, digits_spec.default_recipe)
    assert r.test_accuracy > 0.85
