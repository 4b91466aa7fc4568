"""Architecture families beyond the MLP: each module defines its ``FAMILY``.

``nirvana.lottery.models.architectures`` registers them, so ``build_model("conv4", ...)`` works after
``import nirvana.lottery.models.architectures`` alone. The helpers here decide, from a task's input
shape, whether an image network can take it at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from nirvana.lottery.errors import IncompatibleTaskError

Builder = Callable[[str, tuple[int, ...], int], nn.Module]


@dataclass(frozen=True)
class Family:
    """A family of architectures sharing a name prefix.

    ``build(name, input_shape, num_classes)`` returns the module or raises
    ``UnknownArchitectureError`` for a malformed name (and ``IncompatibleTaskError``
    for an input it cannot take). ``examples`` are valid names shown to users.
    """

    prefix: str
    build: Builder
    examples: tuple[str, ...]
    description: str = ""


def image_shape(name: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``input_shape`` as ``(channels, height, width)``.

    Raises:
        IncompatibleTaskError: the task's inputs are not images (e.g. mnist1d's ``(40,)``).
    """
    if len(input_shape) != 3:
        raise IncompatibleTaskError(
            f"{name} is a convolutional network and takes images shaped (channels, height, "
            f"width); this task's input is shaped {tuple(input_shape)}"
        )
    c, h, w = input_shape
    return c, h, w


def pooled_size(name: str, shape: tuple[int, int, int], pools: int) -> tuple[int, int]:
    """Height and width after ``pools`` 2x2 max-pools (stride 2, floor), each >= 1.

    ``floor(floor(h / 2) / 2) == floor(h / 4)``, so the size is ``h // 2**pools``.

    Raises:
        IncompatibleTaskError: the image is too small for that many pools.
    """
    _, h, w = shape
    out = (h // 2**pools, w // 2**pools)
    if min(out) < 1:
        raise IncompatibleTaskError(
            f"{name} halves the image {pools} times and needs inputs of at least "
            f"{2**pools}x{2**pools}; this task's images are {h}x{w}"
        )
    return out
