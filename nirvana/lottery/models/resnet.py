"""``resnet<D>[_<W>]``: OpenLTH's ``cifar_resnet_D[_W]`` (He et al. 2016's CIFAR ResNets).

A 3x3 conv (no bias) + BatchNorm + ReLU with ``W`` channels (default 16), then three
stages of ``n = (D - 2) / 6`` residual blocks with ``W``, ``2W``, ``4W`` channels (the
first block of stages 2 and 3 halves the resolution with stride 2), a global average
pool and a linear layer. A block is conv3x3-BN-ReLU-conv3x3-BN, plus the input through
a 1x1 stride-2 conv + BN when its shape changes (else the identity), then ReLU.

``state_dict`` names are OpenLTH's: ``conv.weight``, ``bn.*``, then per block ``i``
(0-based across stages) ``blocks.{i}.conv1.weight``, ``blocks.{i}.bn1.*``,
``blocks.{i}.conv2.weight``, ``blocks.{i}.bn2.*`` and, for the first block of stages 2
and 3, ``blocks.{i}.shortcut.0.weight`` (conv) and ``blocks.{i}.shortcut.1.*`` (BN);
then ``fc.weight, fc.bias``. ``bn.*`` is ``weight, bias, running_mean, running_var,
num_batches_tracked``. ``resnet20`` on CIFAR-10: 272,474 parameters, 270,896 prunable.

The input conv takes the task's channels (OpenLTH hard-codes 3), so a ResNet runs on
any image: stride-2 3x3 convs with padding 1 never shrink a side below 1.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from nirvana.lottery.errors import UnknownArchitectureError
from nirvana.lottery.models.family import Family, image_shape

#: ResNet-1202 is the deepest CIFAR ResNet of He et al.; deeper names are typos.
MAX_DEPTH = 1202
#: Stage 3 has 4W channels; W=1024 already gives 4096x4096x3x3 convs.
MAX_WIDTH = 1024
DEFAULT_WIDTH = 16


class Block(nn.Module):
    """One residual block; ``shortcut`` is an empty Sequential (no state) when shapes match."""

    def __init__(self, f_in: int, f_out: int, downsample: bool) -> None:
        super().__init__()
        stride = 2 if downsample else 1
        self.conv1 = nn.Conv2d(f_in, f_out, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(f_out)
        self.conv2 = nn.Conv2d(f_out, f_out, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(f_out)
        self.shortcut = nn.Sequential()
        if downsample or f_in != f_out:
            # Stride 2 as in OpenLTH: in its plans a shape change is always a downsample.
            self.shortcut = nn.Sequential(
                nn.Conv2d(f_in, f_out, kernel_size=1, stride=2, bias=False),
                nn.BatchNorm2d(f_out),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        # In place is safe: BatchNorm's backward keeps its input, not its output.
        out += self.shortcut(x)
        return F.relu(out)


class ResNet(nn.Module):
    """``conv``, ``bn``, ``blocks`` (a Sequential of ``Block``), ``fc``."""

    def __init__(self, in_channels: int, width: int, per_stage: int, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        blocks: list[nn.Module] = []
        current = width
        for stage, filters in enumerate((width, 2 * width, 4 * width)):
            for index in range(per_stage):
                blocks.append(Block(current, filters, downsample=stage > 0 and index == 0))
                current = filters
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(current, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.conv(x)))
        out = self.blocks(out)
        # OpenLTH pools with kernel = the map's width (square inputs); this is the same
        # global pool, and also right for non-square maps.
        out = F.avg_pool2d(out, kernel_size=(out.shape[2], out.shape[3]))
        result: torch.Tensor = self.fc(out.flatten(1))
        return result


_NAME = re.compile(r"resnet([1-9][0-9]*)(?:_([1-9][0-9]*))?")


def _build(name: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    match = _NAME.fullmatch(name)
    if match is None:
        raise UnknownArchitectureError(
            f"malformed architecture name {name!r}: expected resnet<depth>[_<width>], "
            "e.g. resnet20, resnet56, resnet20_64"
        )
    depth = int(match.group(1))
    width = int(match.group(2) or DEFAULT_WIDTH)
    if depth < 8 or (depth - 2) % 6 != 0 or depth > MAX_DEPTH:
        raise UnknownArchitectureError(
            f"{name!r}: a CIFAR ResNet's depth is 6n+2 for n >= 1 (8, 14, 20, 32, 44, 56, "
            f"110, ... up to {MAX_DEPTH}); got {depth}"
        )
    if width > MAX_WIDTH:
        raise UnknownArchitectureError(f"{name!r}: width {width} is outside 1..{MAX_WIDTH}")
    shape = image_shape(name, input_shape)
    return ResNet(shape[0], width, (depth - 2) // 6, num_classes)


FAMILY = Family(
    prefix="resnet",
    build=_build,
    examples=("resnet20", "resnet56", "resnet20_64"),
    description="OpenLTH's CIFAR ResNet-D[_W] (D = 6n+2, W = first-stage width, default 16)",
)
