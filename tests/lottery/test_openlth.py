"""Importing OpenLTH lottery runs: a run folder built the way OpenLTH writes one
(``torch.save`` of plain tensor dicts), converted, validated and refused when unsafe."""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from nirvana.lottery.models.architectures import describe
from nirvana.lottery.errors import UnknownArchitectureError, UnknownTaskError
from nirvana.lottery.interop.torch_prune import StateDictMismatchError, pair_state_dict
from nirvana.lottery.interop.openlth import import_run
from nirvana.lottery.interop.openlth_hparams import (
    OpenLTHImportError,
    map_model_name,
    parse_hparams_log,
    parse_step,
    recipe_from_hparams,
)
from nirvana.lottery.data.tasks import TaskSpec, get_task
from nirvana.lottery.tickets.manifest import TicketFolder, prepare_ticket
from nirvana.lottery.training.recipes import Recipe

LENET_HPARAMS = """Dataset Hyperparameters
    * dataset_name => mnist
    * batch_size => 60
Model Hyperparameters
    * model_name => mnist_lenet_300_100
    * model_init => kaiming_normal
    * batchnorm_init => uniform
Training Hyperparameters
    * optimizer_name => adam
    * lr => 0.0012
    * training_steps => 2ep
    * data_order_seed => 3
Pruning Hyperparameters
    * pruning_strategy => sparse_global
    * pruning_fraction => 0.2
    * pruning_layers_to_ignore => fc.weight"""

REWIND_SECTIONS = """
Pretraining Dataset Hyperparameters
    * dataset_name => mnist
    * batch_size => 60
Pretraining Training Hyperparameters
    * optimizer_name => adam
    * lr => 0.0012
    * training_steps => 500it"""


def _has(kind: str, name: str) -> bool:
    try:
        if kind == "task":
            get_task(name)
        else:
            describe(name, (3, 32, 32), 10)
    except (UnknownTaskError, UnknownArchitectureError):
        return False
    return True


needs_mnist = pytest.mark.skipif(not _has("task", "mnist"), reason="task 'mnist' is not registered yet")


def _openlth_lenet(seed: int) -> OrderedDict[str, torch.Tensor]:
    """A state_dict under OpenLTH's mnist_lenet_300_100 names, in its module order."""
    g = torch.Generator().manual_seed(seed)
    shapes = [("fc_layers.0", 300, 784), ("fc_layers.1", 100, 300), ("fc", 10, 100)]
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()
    for name, out_f, in_f in shapes:
        sd[f"{name}.weight"] = torch.randn(out_f, in_f, generator=g)
        sd[f"{name}.bias"] = torch.randn(out_f, generator=g)
    return sd


def _prune(mask: dict[str, torch.Tensor], theta: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """20% of the remaining weights by magnitude, fc.weight ignored (OpenLTH's lenet default)."""
    out = {}
    for k, m in mask.items():
        if k == "fc.weight":
            out[k] = m.clone()
            continue
        scores = torch.where(m.bool(), theta[k].abs(), torch.full_like(theta[k], float("inf")))
        n = int(0.2 * int(m.sum()))
        flat = m.clone().reshape(-1)
        flat[torch.argsort(scores.reshape(-1))[:n]] = 0
        out[k] = flat.reshape(m.shape)
    return out


def _write_level(main: Path, mask: dict[str, torch.Tensor], start: dict[str, torch.Tensor], start_file: str, acc: float) -> None:
    main.mkdir(parents=True)
    torch.save({k: v.int() for k, v in mask.items()}, main / "mask.pth")  # OpenLTH saves ints
    masked = OrderedDict((k, v * mask[k].float() if k in mask else v) for k, v in start.items())
    torch.save(masked, main / start_file)
    total, kept = sum(m.numel() for m in mask.values()), sum(int(m.sum()) for m in mask.values())
    (main / "sparsity_report.json").write_text(f'{{"total": {float(total)}, "unpruned": {float(kept)}}}')
    (main / "logger").write_text(f"test_loss,0,2.3\ntest_accuracy,0,0.1\ntest_accuracy,2000,{acc}\ntrain_loss,2000,0.1")


def make_run(root: Path, *, levels: int = 2, rewind: bool = False) -> tuple[Path, dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
    """``lottery_<hash>/replicate_1/level_{0..levels}`` as OpenLTH writes it; returns the
    run folder, the init it saved and each level's mask (OpenLTH names, int)."""
    run = root / "lottery_0123abcd"
    rep = run / "replicate_1"
    theta0 = _openlth_lenet(0)
    init, start_file = theta0, "model_ep0_it0.pth"
    if rewind:
        init, start_file = _openlth_lenet(1), "model_ep0_it500.pth"
        (rep / "level_pretrain" / "main").mkdir(parents=True)
        torch.save(theta0, rep / "level_pretrain" / "main" / "model_ep0_it0.pth")
        torch.save(init, rep / "level_pretrain" / "main" / start_file)
    mask = {k: torch.ones_like(v, dtype=torch.int32) for k, v in theta0.items() if k.endswith("weight")}
    masks = []
    for level in range(levels + 1):
        _write_level(rep / f"level_{level}" / "main", mask, init, start_file, acc=0.98 - 0.01 * level)
        masks.append(mask)
        mask = _prune(mask, _openlth_lenet(10 + level))  # "trained" weights
    (rep / "level_0" / "main" / "hparams.log").write_text(LENET_HPARAMS + (REWIND_SECTIONS if rewind else ""))
    return run, init, masks


OURS = {"fc_layers.0.weight": "fc1.weight", "fc_layers.0.bias": "fc1.bias", "fc_layers.1.weight": "fc2.weight",
        "fc_layers.1.bias": "fc2.bias", "fc.weight": "fc3.weight", "fc.bias": "fc3.bias"}  # fmt: skip


@needs_mnist
def test_import_lenet_run(tmp_path: Path) -> None:
    run, init, masks = make_run(tmp_path)
    folders = import_run(run, tmp_path / "tickets")
    assert [f.name for f in folders] == [f"lottery_0123abcd-r1-level{i}" for i in range(3)]
    for folder, their_mask, acc in zip(folders, masks, (0.98, 0.97, 0.96), strict=True):
        manifest, mask, got_init = TicketFolder.read(folder)
        prepared = prepare_ticket(
            (folder / "ticket.json").read_bytes(), (folder / "mask.safetensors").read_bytes(),
            (folder / "init.safetensors").read_bytes(),
        )  # fmt: skip
        assert prepared.manifest.architecture == "lenet_300_100" and manifest.task == "mnist"
        assert set(mask) == {"fc1.weight", "fc2.weight", "fc3.weight"}
        for theirs, ours in OURS.items():
            if theirs in their_mask:
                assert mask[ours].dtype == torch.bool
                assert torch.equal(mask[ours], their_mask[theirs].bool())
            assert got_init is not None and torch.equal(got_init[ours], init[theirs])
        assert manifest.claimed.test_accuracy == pytest.approx(acc)
        assert manifest.recipe == Recipe(optimizer="adam", lr=0.0012, batch_size=60, steps=2000, data_seed=3)
        assert manifest.init.seed is None and manifest.init.rewind_step == 0
        assert "openlth" in manifest.tags
    assert prepared.sparsity.layers["fc3.weight"].density == 1.0  # fc.weight was ignored
    assert prepared.sparsity.density == pytest.approx(sum(int(m.sum()) for m in masks[2].values()) / 266200)
    assert not list((tmp_path / "tickets").glob(".import-openlth-*"))


@needs_mnist
def test_import_with_rewinding_uses_the_rewind_checkpoint(tmp_path: Path) -> None:
    run, init, _ = make_run(tmp_path, levels=1, rewind=True)
    folders = import_run(run / "replicate_1", tmp_path / "out")
    manifest, _, got = TicketFolder.read(folders[1])
    assert manifest.init.rewind_step == 500 and "rewind" in manifest.tags
    assert manifest.recipe is not None and manifest.recipe.steps == 2000 - 500  # OpenLTH trains T - k from theta_k
    assert got is not None and torch.equal(got["fc2.weight"], init["fc_layers.1.weight"])


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {_Evil.marker}",))

    marker = ""


@needs_mnist
@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_a_malicious_pth_is_refused_without_running_it(tmp_path: Path, how: str) -> None:
    run, _, _ = make_run(tmp_path)
    _Evil.marker = str(tmp_path / "pwned")
    target = run / "replicate_1" / "level_1" / "main" / "mask.pth"
    if how == "torch.save":
        torch.save({"fc_layers.0.weight": _Evil()}, target)
    else:
        target.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(OpenLTHImportError, match="refused to load"):
        import_run(run, tmp_path / "tickets")
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "tickets").exists() or not any((tmp_path / "tickets").iterdir())


@needs_mnist
def test_a_bad_level_writes_nothing(tmp_path: Path) -> None:
    run, _, _ = make_run(tmp_path)
    bad = {k: v.float() * 2 for k, v in _openlth_lenet(0).items() if k.endswith("weight")}
    torch.save(bad, run / "replicate_1" / "level_2" / "main" / "mask.pth")
    with pytest.raises(OpenLTHImportError, match="other than 0 and 1"):
        import_run(run, tmp_path / "tickets")
    assert not (tmp_path / "tickets").exists()


@needs_mnist
def test_cli_import_openlth(tmp_path: Path) -> None:
    from nirvana.cli import app

    run, _, _ = make_run(tmp_path, levels=1)
    result = CliRunner().invoke(app, ["import-openlth", str(run), "--out", str(tmp_path / "t")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "t" / "lottery_0123abcd-r1-level1" / "ticket.json").is_file()
    again = CliRunner().invoke(app, ["import-openlth", str(run), "--out", str(tmp_path / "t")])
    assert again.exit_code == 1 and "already exists" in again.output and "(invalid_openlth_run)" in again.output


def test_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(OpenLTHImportError, match="no replicate_"):
        import_run(tmp_path, tmp_path / "out")


def test_model_names() -> None:
    assert map_model_name("mnist_lenet_300_100") == ("lenet_300_100", "mnist")
    assert map_model_name("cifar_resnet_20") == ("resnet20", "cifar10")
    assert map_model_name("cifar_resnet_20_64") == ("resnet20_64", "cifar10")
    assert map_model_name("cifar_vgg_16") == ("vgg16", "cifar10")
    with pytest.raises(OpenLTHImportError, match="unsupported OpenLTH model"):
        map_model_name("imagenet_resnet_50")


def test_resnet_recipe_from_hparams() -> None:
    hp = parse_hparams_log(
        "Dataset Hyperparameters\n    * dataset_name => cifar10\n    * batch_size => 128\n"
        "Model Hyperparameters\n    * model_name => cifar_resnet_20\n"
        "Training Hyperparameters\n    * optimizer_name => sgd\n    * lr => 0.1\n    * training_steps => 160ep\n"
        "    * momentum => 0.9\n    * milestone_steps => 80ep,120ep\n    * gamma => 0.1\n    * weight_decay => 0.0001\n"
    )
    cifar = TaskSpec(name="cifar10", input_shape=(3, 32, 32), num_classes=10, train_size=50000, test_size=10000,
                     default_recipe=Recipe(lr=0.1, batch_size=128, steps=1), description="")  # fmt: skip
    recipe, rewind, notes = recipe_from_hparams(hp, cifar)
    assert rewind == 0 and recipe.steps == 160 * 391  # ceil(50000 / 128) iterations per epoch
    assert (recipe.optimizer, recipe.momentum, recipe.weight_decay) == ("sgd", 0.9, 0.0001)
    assert recipe.schedule == "step" and recipe.milestones == [80 * 391, 120 * 391]
    assert any("augmentation" in n for n in notes) and any("unseeded" in n for n in notes)
    del hp["Dataset Hyperparameters"]["batch_size"]
    with pytest.raises(OpenLTHImportError, match="lacks 'batch_size'"):
        recipe_from_hparams(hp, cifar)
    hp["Dataset Hyperparameters"].update(batch_size="128", dataset_name="mnist")
    with pytest.raises(OpenLTHImportError, match="trained on mnist"):
        recipe_from_hparams(hp, cifar)
    assert parse_step("2ep100it", 391) == 882
    with pytest.raises(OpenLTHImportError, match="malformed step"):
        parse_step("ten", 391)


def _openlth_resnet20() -> nn.Module:
    """OpenLTH's cifar_resnet_20 module tree (names and order only matter here)."""

    class Block(nn.Module):
        def __init__(self, f_in: int, f_out: int, down: bool) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(f_in, f_out, 3, stride=2 if down else 1, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(f_out)
            self.conv2 = nn.Conv2d(f_out, f_out, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(f_out)
            self.shortcut = (nn.Sequential(nn.Conv2d(f_in, f_out, 1, stride=2, bias=False), nn.BatchNorm2d(f_out))
                             if down or f_in != f_out else nn.Sequential())  # fmt: skip

    class ResNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(16)
            blocks, cur = [], 16
            for seg, width in enumerate((16, 32, 64)):
                for b in range(3):
                    blocks.append(Block(cur, width, seg > 0 and b == 0))
                    cur = width
            self.blocks = nn.Sequential(*blocks)
            self.fc = nn.Linear(64, 10)

    with torch.device("meta"):
        return ResNet()


def _openlth_vgg16() -> nn.Module:
    class ConvModule(nn.Module):
        def __init__(self, f_in: int, f_out: int) -> None:
            super().__init__()
            self.conv = nn.Conv2d(f_in, f_out, 3, padding=1)
            self.bn = nn.BatchNorm2d(f_out)

    plan = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
    layers: list[nn.Module] = []
    cur = 3
    for spec in plan:
        layers.append(nn.MaxPool2d(2) if spec == "M" else ConvModule(cur, int(spec)))
        cur = cur if spec == "M" else int(spec)

    class VGG(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.Sequential(*layers)
            self.fc = nn.Linear(512, 10)

    with torch.device("meta"):
        return VGG()


@pytest.mark.parametrize(
    ("arch", "build", "pairs"),
    [
        ("resnet20", _openlth_resnet20, {"conv.weight": None, "blocks.3.shortcut.0.weight": None, "fc.weight": None}),
        ("vgg16", _openlth_vgg16, {"layers.0.conv.weight": None, "layers.16.bn.running_var": None, "fc.weight": None}),
    ],
)
def test_cifar_models_pair_with_ours(arch: str, build: object, pairs: dict[str, None]) -> None:
    if not _has("arch", arch):
        pytest.skip(f"architecture {arch!r} is not registered yet")
    theirs = build().state_dict()  # type: ignore[operator]
    info = describe(arch, (3, 32, 32), 10)
    names = pair_state_dict(theirs, info)
    assert set(pairs) <= set(names)
    prunable = {names[k] for k in theirs if k.endswith("weight") and theirs[k].dim() > 1}
    assert prunable == set(info.prunable_names())


def test_pairing_names_the_first_mismatch() -> None:
    info = describe("lenet_300_100", (1, 28, 28), 10)
    theirs = _openlth_lenet(0)
    assert pair_state_dict(theirs, info) == OURS
    theirs["fc_layers.1.weight"] = torch.zeros(100, 299)
    with pytest.raises(StateDictMismatchError, match=r"#2 'fc_layers.1.weight' \[100, 299\].*'fc2.weight'"):
        pair_state_dict(theirs, info)
    with pytest.raises(StateDictMismatchError, match="has 5 tensors"):
        pair_state_dict(dict(list(_openlth_lenet(0).items())[:5]), info)
