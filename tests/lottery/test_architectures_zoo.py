"""conv2/4/6, vgg11..19 and resnet<D>[_<W>]: names, layouts, prunable flags, forward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nirvana.lottery.models.architectures import build_model, describe, list_architectures, prunable_names
from nirvana.lottery.errors import IncompatibleTaskError, UnknownArchitectureError
from nirvana.lottery.pruning.masks import dense_mask

CIFAR = (3, 32, 32)


@pytest.mark.parametrize(
    "name",
    ["conv2", "conv4", "conv6", "vgg11", "vgg13", "vgg16", "vgg19", "resnet8", "resnet20",
     "resnet56", "resnet110", "resnet20_64", "resnet20_1", "resnet1202"],
)
def test_good_names(name: str) -> None:
    assert describe(name, CIFAR, 10).total > 0


@pytest.mark.parametrize(
    "name",
    ["conv", "conv3", "conv8", "conv4_64", "vgg", "vgg12", "vgg011", "vgg16_bn", "vgg١١",
     "resnet", "resnet2", "resnet21", "resnet18", "resnet20_", "resnet20_0", "resnet020",
     "resnet_20", "resnet20_16_2", "resnet1208", "resnet20_1025", "Resnet20"],
)
def test_bad_names(name: str) -> None:
    with pytest.raises(UnknownArchitectureError) as info:
        describe(name, CIFAR, 10)
    assert info.value.code == "unknown_architecture"


def test_depth_not_6n_plus_2_says_so() -> None:
    with pytest.raises(UnknownArchitectureError, match="6n\\+2"):
        describe("resnet18", CIFAR, 10)


def test_conv4_on_cifar10_layout() -> None:
    info = describe("conv4", CIFAR, 10)
    assert [(p.name, p.shape, p.prunable) for p in info.parameters] == [
        ("conv1.weight", (64, 3, 3, 3), True),
        ("conv1.bias", (64,), False),
        ("conv2.weight", (64, 64, 3, 3), True),
        ("conv2.bias", (64,), False),
        ("conv3.weight", (128, 64, 3, 3), True),
        ("conv3.bias", (128,), False),
        ("conv4.weight", (128, 128, 3, 3), True),
        ("conv4.bias", (128,), False),
        ("fc1.weight", (256, 128 * 8 * 8), True),
        ("fc1.bias", (256,), False),
        ("fc2.weight", (256, 256), True),
        ("fc2.bias", (256,), False),
        ("fc3.weight", (10, 256), True),
        ("fc3.bias", (10,), False),
    ]
    assert info.total == 2_425_930  # the paper's "2.4M"
    assert info.prunable == info.total - (64 + 64 + 128 + 128 + 256 + 256 + 10)
    assert describe("conv2", CIFAR, 10).total == 4_301_642  # the paper's "4.3M"
    assert describe("conv6", CIFAR, 10).total == 2_262_602


def test_resnet20_on_cifar10_layout() -> None:
    info = describe("resnet20", CIFAR, 10)
    params = info.by_name()
    # By hand: input conv 16*3*3*3 = 432; a stage-1 conv 16*16*9 = 2,304; the first
    # stage-3 block's shortcut conv 32->64 1x1 = 2,048; fc 64*10 + 10.
    assert params["conv.weight"].shape == (16, 3, 3, 3) and params["conv.weight"].numel == 432
    assert params["blocks.0.conv1.weight"].numel == 2_304
    assert params["blocks.6.shortcut.0.weight"].shape == (64, 32, 1, 1)
    assert params["blocks.3.shortcut.1.running_var"].shape == (32,)
    assert "blocks.1.shortcut.0.weight" not in params  # identity shortcut: no state
    assert (params["fc.weight"].shape, params["fc.bias"].shape) == ((10, 64), (10,))
    # 432 + 32 (bn) + 3*(2*2304 + 64) + (4608 + 9216 + 128 + 512 + 64) + 2*(2*9216 + 128)
    # + (18432 + 36864 + 256 + 2048 + 128) + 2*(2*36864 + 256) + 650
    assert info.total == 272_474
    bn_params = sum(p.numel for p in info.parameters if ".bn" in f".{p.name}" and not p.buffer
                    or "shortcut.1." in p.name and not p.buffer)
    assert bn_params == 1_568
    assert info.prunable == 272_474 - 1_568 - 10 == 270_896
    convs = [n for n in info.prunable_names() if n != "fc.weight"]
    assert len(convs) == 1 + 18 + 2  # input conv, 9 blocks x 2, two shortcuts
    assert describe("resnet56", CIFAR, 10).total == 855_770
    assert describe("resnet20_64", CIFAR, 10).by_name()["blocks.8.conv2.weight"].shape == (256, 256, 3, 3)


def test_vgg16_layout_matches_openlth_names() -> None:
    info = describe("vgg16", CIFAR, 10)
    names = [p.name for p in info.parameters]
    assert names[:7] == [
        "layers.0.conv.weight", "layers.0.conv.bias", "layers.0.bn.weight", "layers.0.bn.bias",
        "layers.0.bn.running_mean", "layers.0.bn.running_var", "layers.0.bn.num_batches_tracked",
    ]
    assert "layers.2.conv.weight" not in names and "layers.3.conv.weight" in names  # 2 is a pool
    assert names[-2:] == ["fc.weight", "fc.bias"]
    assert info.by_name()["fc.weight"].shape == (10, 512)
    assert info.total == 14_728_266


@pytest.mark.parametrize("name", ["conv6", "vgg11", "resnet20"])
def test_prunable_flags_bn_never_prunable(name: str) -> None:
    info = describe(name, CIFAR, 10)
    for p in info.parameters:
        is_weight = p.name.endswith(".weight") and len(p.shape) in (2, 4)
        assert p.prunable == is_weight, p.name
        assert p.buffer == (p.name.rsplit(".", 1)[1] in {"running_mean", "running_var", "num_batches_tracked"})
        assert not (p.buffer and p.prunable)
    assert list(dense_mask(info)) == info.prunable_names()
    assert info.total == sum(p.numel for p in info.parameters if not p.buffer)


@pytest.mark.parametrize(
    "name, shape",
    [("conv2", CIFAR), ("conv4", CIFAR), ("conv6", CIFAR), ("resnet20", CIFAR),
     ("conv4", (1, 28, 28)), ("conv6", (1, 8, 8)), ("resnet8", (1, 8, 8)), ("resnet14", (1, 28, 28)),
     ("vgg11", (1, 28, 28)), ("vgg11", (3, 16, 16)), ("resnet8_4", (2, 9, 13))],
)
def test_forward_gives_batch_by_classes(name: str, shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    model = build_model(name, shape, 7)
    assert list(model.state_dict()) == [p.name for p in describe(name, shape, 7).parameters]
    model.train()
    out = model(torch.rand(3, *shape))
    assert out.shape == (3, 7) and bool(torch.isfinite(out).all())
    out.sum().backward()  # the in-place residual add must not break autograd
    model.eval()
    assert model(torch.rand(2, *shape)).shape == (2, 7)


def test_prunable_names_of_built_model_match_describe() -> None:
    model = build_model("resnet8", (1, 8, 8), 10)
    assert prunable_names(model) == describe("resnet8", (1, 8, 8), 10).prunable_names()
    assert all(isinstance(m, (nn.Conv2d, nn.Linear)) for n, m in model.named_modules()
               if f"{n}.weight" in prunable_names(model))


@pytest.mark.parametrize("name", ["conv2", "conv6", "vgg11", "resnet20"])
def test_conv_nets_refuse_1d_inputs(name: str) -> None:
    with pytest.raises(IncompatibleTaskError, match=r"images shaped \(channels, height, width\).*\(40,\)") as info:
        describe(name, (40,), 10)
    assert info.value.code == "incompatible_task"


@pytest.mark.parametrize(
    "name, shape, fragment",
    [("vgg11", (1, 8, 8), "at least 16x16"), ("conv6", (1, 4, 4), "at least 8x8"),
     ("conv4", (3, 32, 3), "32x3"), ("conv2", (1, 28), "(1, 28)")],
)
def test_images_too_small_for_the_pools(name: str, shape: tuple[int, ...], fragment: str) -> None:
    with pytest.raises(IncompatibleTaskError) as info:
        describe(name, shape, 10)
    assert fragment in info.value.detail


def test_every_example_is_listed() -> None:
    names = set(list_architectures())
    assert {"conv2", "conv4", "conv6", "vgg11", "vgg19", "resnet20", "resnet20_64"} <= names
