"""The run-batched trainer against the one-run loop: every run of a batch ends where
``train`` takes it alone (weights, buffers, curves), for an MLP, a conv net and a
batch-norm ResNet, under SGD with momentum, weight decay, warmup and a schedule, and
under Adam."""

from __future__ import annotations

import copy

import pytest
import torch

from nirvana.lottery.data.tasks import TaskData, get_task
from nirvana.lottery.models.architectures import build_model, describe
from nirvana.lottery.pruning.masks import dense_mask, random_mask_like
from nirvana.lottery.training.batched import train_batched
from nirvana.lottery.training.loop import TrainResult, train
from nirvana.lottery.training.recipes import Recipe

SGD = Recipe(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=1e-3, batch_size=16, steps=24,
             warmup_steps=5, schedule="step", milestones=[16], gamma=0.5)
ADAM = Recipe(optimizer="adam", lr=2e-3, weight_decay=1e-4, batch_size=16, steps=24, schedule="cosine")


def teacher_data(shape: tuple[int, ...], n_train: int = 128, n_val: int = 64, n_test: int = 100) -> TaskData:
    """Inputs of ``shape`` labelled by a random linear teacher, so accuracy moves."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_train + n_val + n_test, *shape, generator=g)
    w = torch.randn(x[0].numel(), 10, generator=g)
    y = (x.flatten(1) @ w).argmax(dim=1)
    a, b = n_train, n_train + n_val
    return TaskData(get_task("digits"), x[:a], y[:a], x[b:], y[b:], "synthetic", x_val=x[a:b], y_val=y[a:b])


def runs(arch: str, shape: tuple[int, ...], n: int) -> tuple[list[torch.nn.Module], list[dict[str, torch.Tensor] | None]]:
    """``n`` models with distinct inits; masks: random sparse, another, none, ..."""
    models, masks = [], []
    base = dense_mask(describe(arch, shape, 10))
    for i in range(n):
        torch.manual_seed(100 + i)
        models.append(build_model(arch, shape, 10))
        masks.append(None if i % 3 == 2 else {k: v & (torch.rand(v.shape) < 0.5) for k, v in base.items()})
    return models, masks


def alone(models: list[torch.nn.Module], masks: list[dict[str, torch.Tensor] | None], data: TaskData,
          recipes: list[Recipe]) -> list[TrainResult]:
    return [train(m, data, r, mask=k, eval_every=7) for m, k, r in zip(models, masks, recipes, strict=True)]


def assert_same(a: torch.nn.Module, b: torch.nn.Module, ra: TrainResult, rb: TrainResult, n_test: int) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        if sa[k].is_floating_point():
            torch.testing.assert_close(sa[k], sb[k], rtol=1e-3, atol=2e-4, msg=k)
        else:
            assert torch.equal(sa[k], sb[k]), k
    assert [s for s, _ in ra.curve] == [s for s, _ in rb.curve] == [s for s, _ in rb.validation_curve]
    # Weights agree to float tolerance (Adam divides by small second moments, which
    # magnifies summation-order differences), so at most a borderline input may flip.
    for (_, x), (_, y) in zip(ra.curve, rb.curve, strict=True):
        assert abs(x - y) <= 1 / n_test + 1e-12
    for (_, x), (_, y) in zip(ra.validation_curve, rb.validation_curve, strict=True):
        assert abs(x - y) <= 1 / 64 + 1e-12
    assert ra.early_stop == rb.early_stop
    assert ra.accuracy_at_init == rb.accuracy_at_init
    assert ra.steps == rb.steps


CROP_FLIP = SGD.model_copy(update={"augment": "crop-flip"})


@pytest.mark.parametrize(("arch", "shape"), [
    ("lenet_32_16", (1, 8, 8)),
    ("conv2", (3, 4, 4)),
    ("resnet8_4", (3, 4, 4)),
])
@pytest.mark.parametrize("recipe", [SGD, ADAM], ids=["sgd", "adam"])
def test_batched_runs_equal_runs_alone(arch: str, shape: tuple[int, ...], recipe: Recipe) -> None:
    data = teacher_data(shape)
    models, masks = runs(arch, shape, 3)
    recipes = [recipe.model_copy(update={"data_seed": s}) for s in (0, 1, 7)]
    twins = copy.deepcopy(models)
    inits = [copy.deepcopy(m.state_dict()) for m in models]
    batched = train_batched(twins, data, recipes, masks=masks, eval_every=7)
    solo = alone(models, masks, data, recipes)
    for a, b, ra, rb in zip(models, twins, solo, batched, strict=True):
        assert_same(a, b, ra, rb, data.y_test.numel())
    # The runs really trained, and really differed (own init, mask and order).
    for before, after in zip(inits, twins, strict=True):
        assert any(not torch.equal(v, after.state_dict()[k]) for k, v in before.items())
    out = [k for k in inits[0] if k.endswith("weight")][-1]  # the output layer's
    assert not torch.equal(twins[0].state_dict()[out], twins[1].state_dict()[out])


def test_every_run_draws_its_own_augmentation() -> None:
    data = teacher_data((3, 4, 4))
    models, masks = runs("conv2", (3, 4, 4), 2)
    recipes = [CROP_FLIP.model_copy(update={"data_seed": s}) for s in (0, 5)]
    twins = copy.deepcopy(models)
    batched = train_batched(twins, data, recipes, masks=masks, eval_every=7)
    solo = alone(models, masks, data, recipes)
    for a, b, ra, rb in zip(models, twins, solo, batched, strict=True):
        assert_same(a, b, ra, rb, data.y_test.numel())


def test_masked_weights_stay_exactly_zero_in_a_batch() -> None:
    data = teacher_data((1, 8, 8))
    models, masks = runs("lenet_32_16", (1, 8, 8), 2)
    masks[1] = random_mask_like(masks[0] or {}, 3)
    seen: list[int] = []

    def check(step: int, total: int) -> None:
        seen.append(step)

    train_batched(models, data, [ADAM, ADAM], masks=masks, on_progress=check)
    for model, mask in zip(models, masks, strict=True):
        for name, keep in (mask or {}).items():
            w = model.state_dict()[name]
            assert bool((w[~keep] == 0).all()) and bool((w[keep] != 0).any())
    assert seen[0] == 0 and seen[-1] == ADAM.steps


def test_runs_must_share_recipe_and_architecture() -> None:
    data = teacher_data((1, 8, 8))
    models, _ = runs("lenet_32_16", (1, 8, 8), 2)
    with pytest.raises(ValueError, match="share their recipe"):
        train_batched(models, data, [ADAM, ADAM.model_copy(update={"lr": 1.0})])
    other = build_model("lenet_16", (1, 8, 8), 10)
    with pytest.raises(ValueError, match="one architecture"):
        train_batched([models[0], other], data, [ADAM, ADAM])
