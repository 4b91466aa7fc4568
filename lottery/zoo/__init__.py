"""Architecture families beyond the MLP: each module registers its family on import.

``lottery.architectures`` imports them at its bottom, so ``build_model("conv4", ...)``
works after ``import lottery.architectures`` alone. The helpers here decide, from a
task's input shape, whether an image network can take it at all.
"""

from __future__ import annotations

from lottery.errors import IncompatibleTaskError


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
