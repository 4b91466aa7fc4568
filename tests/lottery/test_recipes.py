"""Named recipes reproduce the papers' numbers; epochs resolve to steps per task."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from nirvana.lottery.errors import InvalidRecipeError
from nirvana.lottery.training.recipes import list_recipes, named_recipe, steps_per_epoch
from nirvana.lottery.data.tasks import get_task


def test_lth_recipes_are_the_papers() -> None:
    lenet = named_recipe("lth-lenet")
    assert (lenet.optimizer, lenet.lr, lenet.batch_size, lenet.steps) == ("adam", 1.2e-3, 60, 50_000)
    convs = {n: named_recipe(f"lth-{n}") for n in ("conv2", "conv4", "conv6")}
    assert [(r.lr, r.batch_size, r.steps) for r in convs.values()] == [
        (2e-4, 60, 20_000), (3e-4, 60, 25_000), (3e-4, 60, 30_000),
    ]  # fmt: skip
    m1 = named_recipe("mnist1d-lth")
    assert (m1.optimizer, m1.lr, m1.batch_size, m1.steps) == ("adam", 2e-2, 100, 1501)
    assert m1 == get_task("mnist1d").default_recipe


def test_epoch_recipes_resolve_for_a_task() -> None:
    cifar_sized = dataclasses.replace(get_task("digits"), train_size=50_000)
    r = named_recipe("openlth-resnet20", cifar_sized)
    per_epoch = 391  # ceil(50,000 / 128)
    assert steps_per_epoch(50_000, 128) == per_epoch
    assert (r.optimizer, r.lr, r.momentum, r.weight_decay, r.batch_size) == ("sgd", 0.1, 0.9, 1e-4, 128)
    assert r.steps == 160 * per_epoch and r.milestones == [80 * per_epoch, 120 * per_epoch]
    assert r.schedule == "step" and r.gamma == 0.1
    assert r.lr_factor(80 * per_epoch - 1) == 1.0 and r.lr_factor(120 * per_epoch) == pytest.approx(0.01)
    mnist_sized = dataclasses.replace(get_task("digits"), train_size=60_000)
    lenet = named_recipe("openlth-lenet", mnist_sized)
    assert (lenet.optimizer, lenet.lr, lenet.momentum, lenet.steps) == ("sgd", 0.1, 0.0, 40 * 469)


def test_unknown_and_unresolvable_recipes() -> None:
    with pytest.raises(InvalidRecipeError, match="unknown recipe"):
        named_recipe("lth-lenett")
    with pytest.raises(InvalidRecipeError, match="epochs"):
        named_recipe("openlth-resnet20")
    names = [r.name for r in list_recipes()]
    assert names == sorted(names) and {"lth-lenet", "openlth-resnet20", "mnist1d-lth"} <= set(names)


def test_recipes_import_no_other_core_module() -> None:
    # Recipes sit at the bottom of the core (tasks and the loop import them), so they
    # must import nothing of it but its errors: no cycle can form through them.
    code = "import sys, nirvana.lottery.training.recipes; print(sorted(m for m in sys.modules if m.startswith('nirvana.lottery')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(
        ["nirvana.lottery", "nirvana.lottery.errors", "nirvana.lottery.training", "nirvana.lottery.training.recipes"]
    )


def test_a_manifest_may_name_a_recipe() -> None:
    import json

    from nirvana.lottery.errors import InvalidManifestError
    from nirvana.lottery.tickets.manifest import parse_manifest

    base = {"architecture": "lenet_16", "task": "digits", "claimed": {"test_accuracy": 0.9}, "title": "t"}
    manifest = parse_manifest(json.dumps({**base, "recipe": "openlth-lenet"}).encode())
    assert manifest.recipe == named_recipe("openlth-lenet", get_task("digits"))
    assert manifest.recipe is not None and manifest.recipe.steps == 40 * 12  # ceil(1500 / 128) = 12
    with pytest.raises(InvalidManifestError, match="unknown recipe"):
        parse_manifest(json.dumps({**base, "recipe": "no-such"}).encode())
