"""The training-loop contract: validation split, early stopping, accuracy at init, augmentation."""

from __future__ import annotations

import pytest
import torch

from nirvana.lottery.data.tasks import TaskData, get_task, validation_indices
from nirvana.lottery.errors import InvalidRecipeError
from nirvana.lottery.models.architectures import build_model
from nirvana.lottery.training.loop import EarlyStop, crop_flip, early_stop, pad_fill, train
from nirvana.lottery.training.recipes import Recipe
from nirvana.lottery.training.recipes import named_recipe


def test_validation_split_is_every_kth_and_disjoint(digits: TaskData) -> None:
    assert validation_indices(12, 3).tolist() == [3, 7, 11]
    assert validation_indices(10, 0).numel() == 0
    held = validation_indices(1500, 300)
    assert len(set(held.tolist())) == 300 and int(held.max()) < 1500
    # The split rows are the files' rows: rows 4, 9 ... of the training file are validation.
    from sklearn.datasets import load_digits

    x = torch.from_numpy(load_digits().data[:1500].astype("float32") / 16.0).reshape(-1, 1, 8, 8)
    assert torch.equal(digits.x_val, x[held]) and digits.x_train.shape[0] == 1200
    keep = torch.ones(1500, dtype=torch.bool)
    keep[held] = False
    assert torch.equal(digits.x_train, x[keep])
    assert {t.name: t.validation_size for t in map(get_task, ["digits", "mnist1d", "mnist", "fashion-mnist", "cifar10"])} == {
        "digits": 300, "mnist1d": 500, "mnist": 5000, "fashion-mnist": 5000, "cifar10": 5000}  # fmt: skip


def test_early_stop_is_the_earliest_best_validation_point() -> None:
    val = [(0, 0.1), (10, 0.8), (20, 0.9), (30, 0.9), (40, 0.85)]
    test = [(0, 0.12), (10, 0.7), (20, 0.88), (30, 0.91), (40, 0.86)]
    assert early_stop(val, test, True) == EarlyStop(step=20, validation_accuracy=0.9, test_accuracy=0.88)
    assert early_stop(val, test, False) == EarlyStop(step=40, validation_accuracy=0.85, test_accuracy=0.86)


def test_train_records_init_final_and_early_stop(digits: TaskData, small_init: dict[str, torch.Tensor]) -> None:
    model = build_model("lenet_32_16", (1, 8, 8), 10)
    model.load_state_dict(small_init)
    r = train(model, digits, Recipe(lr=1e-3, batch_size=64, steps=100), eval_every=10)
    assert [s for s, _ in r.curve] == list(range(0, 101, 10)) == [s for s, _ in r.validation_curve]
    # Step 0 is the untrained init: roughly chance on ten classes.
    assert r.accuracy_at_init == r.curve[0][1] and r.accuracy_at_init < 0.4
    best = max(a for _, a in r.validation_curve)
    assert r.early_stop.validation_accuracy == best
    assert (r.early_stop.step, r.early_stop.test_accuracy) in r.curve
    assert r.test_accuracy == r.curve[-1][1]


def test_crop_flip_geometry() -> None:
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    fill = torch.tensor([-1.0])
    centred = crop_flip(x, torch.tensor([[4, 4], [4, 4]]), torch.tensor([0, 1]), fill)
    assert torch.equal(centred[0], x[0]) and torch.equal(centred[1], x[1].flip(-1))
    corner = crop_flip(x, torch.tensor([[0, 0], [8, 8]]), torch.tensor([0, 0]), fill)
    assert bool((corner == -1).all())  # shifted by 4 on a 4-pixel image: all padding
    down = crop_flip(x, torch.tensor([[5, 4], [4, 4]]), torch.tensor([0, 0]), fill)
    assert torch.equal(down[0, 0, :3], x[0, 0, 1:]) and bool((down[0, 0, 3] == -1).all())
    assert pad_fill(torch.stack([torch.full((3, 2, 2), 5.0), torch.zeros(3, 2, 2) - 2])).tolist() == [-2.0] * 3


def test_augmented_runs_are_seeded_and_differ_from_plain(small_init: dict[str, torch.Tensor], digits: TaskData) -> None:
    def run(augment: str) -> torch.Tensor:
        model = build_model("lenet_32_16", (1, 8, 8), 10)
        model.load_state_dict(small_init)
        train(model, digits, Recipe(lr=1e-3, batch_size=64, steps=15, augment=augment), eval_every=0)  # type: ignore[arg-type]
        weight: torch.Tensor = model.state_dict()["fc1.weight"]
        return weight

    a, b, plain = run("crop-flip"), run("crop-flip"), run("none")
    assert torch.equal(a, b) and not torch.equal(a, plain)


def test_augmentation_is_part_of_the_recipe() -> None:
    assert get_task("cifar10").default_recipe.augment == "crop-flip"
    assert named_recipe("openlth-resnet20", get_task("cifar10")).augment == "crop-flip"
    assert named_recipe("lth-conv4").augment == "crop-flip"
    assert get_task("fashion-mnist").default_recipe.augment == "none"
    plain = Recipe(lr=0.1, batch_size=8, steps=1)
    assert plain.model_dump()["augment"] == "none"
    assert Recipe.model_validate({"lr": 0.1, "batch_size": 8, "steps": 1}) == plain  # old records still load
    assert Recipe(lr=0.1, batch_size=8, steps=1, augment="crop-flip") != plain


def test_augmentation_needs_images(small_init: dict[str, torch.Tensor]) -> None:
    from nirvana.lottery.data.tasks import load_task

    data = load_task("mnist1d")
    model = build_model("lenet_32_16", (40,), 10)
    with pytest.raises(InvalidRecipeError):
        train(model, data, Recipe(lr=1e-3, batch_size=8, steps=1, augment="crop-flip"))
