"""``conv2``, ``conv4``, ``conv6``: the LTH paper's CIFAR-10 networks (Frankle & Carbin 2019, Fig. 2).

Each is ``k`` pairs of 3x3 convolutions (padding 1, with bias) + ReLU, with 64, 128,
256 channels for pairs 1, 2, 3, a 2x2 max-pool after each pair, then fully connected
layers 256 -> 256 -> classes with ReLU between. ``state_dict`` names (stable, part of
the wire format): ``conv1.weight, conv1.bias, ..., conv{2k}.bias`` in order, then
``fc1 .. fc3`` (``fc3`` is the output layer). ``conv4`` on CIFAR-10 has 2,425,930
parameters: fc1 alone is 128*8*8*256 + 256.

The flattened size is computed from the task's input, so ``conv4`` also runs on
1x28x28 (128*7*7 into fc1) and ``conv6`` on 1x8x8 (one pixel left after three pools).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nirvana.lottery.errors import UnknownArchitectureError
from nirvana.lottery.models.family import Family, image_shape, pooled_size

#: Channels of each conv pair, as in the paper; ``conv{2k}`` takes the first ``k``.
PAIR_CHANNELS = (64, 128, 256)
#: The hidden fully connected widths, the same for Conv-2/4/6.
FC_WIDTHS = (256, 256)


class ConvNet(nn.Module):
    """Conv pairs + max-pools, then a ReLU MLP; see the module docstring for names."""

    def __init__(
        self,
        in_channels: int,
        pair_channels: Sequence[int],
        pooled_hw: tuple[int, int],
        num_classes: int,
    ) -> None:
        super().__init__()
        self.pairs = len(pair_channels)
        c = in_channels
        for i, out in enumerate(pair_channels):
            # setattr, not a ModuleList: names are conv1.weight, not convs.0.weight.
            setattr(self, f"conv{2 * i + 1}", nn.Conv2d(c, out, kernel_size=3, padding=1))
            setattr(self, f"conv{2 * i + 2}", nn.Conv2d(out, out, kernel_size=3, padding=1))
            c = out
        sizes = [c * pooled_hw[0] * pooled_hw[1], *FC_WIDTHS, num_classes]
        self.fc_depth = len(sizes) - 1
        for i in range(self.fc_depth):
            setattr(self, f"fc{i + 1}", nn.Linear(sizes[i], sizes[i + 1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.pairs):
            x = F.relu(getattr(self, f"conv{2 * i + 1}")(x))
            x = F.relu(getattr(self, f"conv{2 * i + 2}")(x))
            x = F.max_pool2d(x, kernel_size=2, stride=2)
        x = x.flatten(1)
        for i in range(1, self.fc_depth):
            x = F.relu(getattr(self, f"fc{i}")(x))
        out: torch.Tensor = getattr(self, f"fc{self.fc_depth}")(x)
        return out


_NAMES = {f"conv{2 * k}": k for k in range(1, len(PAIR_CHANNELS) + 1)}


def _build(name: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    pairs = _NAMES.get(name)
    if pairs is None:
        raise UnknownArchitectureError(
            f"unknown architecture {name!r}: the conv family is conv2, conv4 or conv6 "
            "(the LTH paper's Conv-2/4/6)"
        )
    shape = image_shape(name, input_shape)
    hw = pooled_size(name, shape, pairs)
    return ConvNet(shape[0], PAIR_CHANNELS[:pairs], hw, num_classes)


FAMILY = Family(
    prefix="conv",
    build=_build,
    examples=tuple(_NAMES),
    description="the LTH paper's Conv-2/4/6: 3x3 conv pairs (64, 128, 256) + max-pool, FC 256-256",
)
