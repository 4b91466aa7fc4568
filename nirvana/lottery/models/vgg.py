"""``vgg11``, ``vgg13``, ``vgg16``, ``vgg19``: OpenLTH's ``cifar_vgg_*`` networks.

A plan of 3x3 convolutions (padding 1, with bias) each followed by BatchNorm and ReLU,
and 2x2 max-pools (``M``); then a global average pool and one linear layer to the
classes. ``state_dict`` names are OpenLTH's, so its checkpoints load as they are:
``layers.{i}.conv.weight``, ``layers.{i}.conv.bias``, ``layers.{i}.bn.{weight, bias,
running_mean, running_var, num_batches_tracked}`` (``i`` counts the pools too, which
hold nothing), then ``fc.weight, fc.bias``.

OpenLTH average-pools with a fixed 2x2 window, which is a global pool on 32x32 inputs
(the four pools leave 2x2); we pool over the whole remaining map, the same operation
on CIFAR-10 that also fits other sizes (1x28x28 leaves 1x1). Inputs under 16x16 leave
nothing after four pools and are an ``IncompatibleTaskError``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nirvana.lottery.errors import UnknownArchitectureError
from nirvana.lottery.models.family import Family, image_shape, pooled_size

Plan = tuple[int | str, ...]

#: OpenLTH's models/cifar_vgg.py plans, verbatim.
PLANS: dict[int, Plan] = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512),
    19: (
        64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
        512, 512, 512, 512, "M", 512, 512, 512, 512,
    ),
}


class ConvModule(nn.Module):
    """conv3x3 -> BatchNorm -> ReLU (``conv``, ``bn``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class VGG(nn.Module):
    """``layers`` (ConvModules and max-pools, in plan order), then ``fc``."""

    def __init__(self, in_channels: int, plan: Plan, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for spec in plan:
            if spec == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                assert isinstance(spec, int)
                layers.append(ConvModule(c, spec))
                c = spec
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(x)
        x = F.avg_pool2d(x, kernel_size=(x.shape[2], x.shape[3]))
        out: torch.Tensor = self.fc(x.flatten(1))
        return out


def _build(name: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    depth = name.removeprefix("vgg")
    plan = PLANS.get(int(depth)) if depth.isdigit() and depth.isascii() else None
    if plan is None or depth != str(int(depth)):
        raise UnknownArchitectureError(
            f"unknown architecture {name!r}: the vgg family is vgg11, vgg13, vgg16 or vgg19"
        )
    shape = image_shape(name, input_shape)
    pooled_size(name, shape, plan.count("M"))
    return VGG(shape[0], plan, num_classes)


FAMILY = Family(
    prefix="vgg",
    build=_build,
    examples=tuple(f"vgg{d}" for d in PLANS),
    description="OpenLTH's CIFAR VGG: 3x3 conv + BatchNorm + ReLU, max-pools, global "
    "average pool, one linear layer",
)
