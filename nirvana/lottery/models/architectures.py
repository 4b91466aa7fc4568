"""The architecture zoo: networks named OpenLTH-style (``lenet_300_100``).

A name is parsed by the first registered *family* whose prefix matches it; a family
turns the rest of the name plus the task's input shape and class count into a module.
Adding a family is a module that defines its ``FAMILY`` (a ``nirvana.lottery.models.family.Family``),
registered at the bottom of this one: ``nirvana.lottery.models.conv`` (``conv2/4/6``),
``nirvana.lottery.models.vgg`` (``vgg11..19``), ``nirvana.lottery.models.resnet`` (``resnet<D>[_<W>]``).

Parameter names are part of the wire format (masks and inits are keyed by them), so
every family documents its ``state_dict`` names and keeps them stable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from nirvana.lottery.errors import UnknownArchitectureError
from nirvana.lottery.models import conv, resnet, vgg
from nirvana.lottery.models.family import Family

if TYPE_CHECKING:
    from nirvana.lottery.data.tasks import TaskSpec

#: The widest layer a name may ask for; keeps a typo like ``lenet_3000000`` from
#: allocating gigabytes on a server that only wanted to validate a mask.
MAX_WIDTH = 16384
#: The deepest MLP a name may ask for.
MAX_LAYERS = 32

_FAMILIES: list[Family] = []


def register_family(family: Family) -> None:
    """Add a family; longer prefixes are tried first so ``vgg`` never shadows ``vgg_bn``."""
    if any(f.prefix == family.prefix for f in _FAMILIES):
        raise ValueError(f"architecture family {family.prefix!r} is already registered")
    _FAMILIES.append(family)
    _FAMILIES.sort(key=lambda f: -len(f.prefix))


@dataclass(frozen=True)
class ParameterInfo:
    """One ``state_dict`` entry: its name, shape, and whether masks may prune it.

    ``buffer`` is true for non-learnable state (BatchNorm running statistics): an init
    must carry it, but it counts towards no parameter total.
    """

    name: str
    shape: tuple[int, ...]
    prunable: bool
    buffer: bool = False

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class ArchitectureInfo:
    """The ``state_dict`` layout of an architecture on a task, in module order.

    ``total`` counts learnable parameters, ``prunable`` the elements of prunable weights.
    """

    name: str
    parameters: list[ParameterInfo] = field(default_factory=list)
    total: int = 0
    prunable: int = 0

    def by_name(self) -> dict[str, ParameterInfo]:
        return {p.name: p for p in self.parameters}

    def prunable_names(self) -> list[str]:
        return [p.name for p in self.parameters if p.prunable]


# --------------------------------------------------------------------------- lenet


class LeNet(nn.Module):
    """A ReLU MLP over the flattened input: ``fc1 .. fc{k}``, ``fc{k}`` the output layer.

    ``lenet_300_100`` on 1x28x28 inputs is 784 -> 300 -> 100 -> 10 with parameters
    ``fc1.weight, fc1.bias, fc2.weight, fc2.bias, fc3.weight, fc3.bias``.
    """

    def __init__(self, in_features: int, widths: Sequence[int], num_classes: int) -> None:
        super().__init__()
        sizes = [in_features, *widths, num_classes]
        self.depth = len(sizes) - 1
        for i in range(self.depth):
            # setattr, not a ModuleList, so state_dict names are fc1.weight, not layers.0.weight.
            setattr(self, f"fc{i + 1}", nn.Linear(sizes[i], sizes[i + 1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for i in range(1, self.depth):
            x = torch.relu(getattr(self, f"fc{i}")(x))
        out: torch.Tensor = getattr(self, f"fc{self.depth}")(x)
        return out


_LENET = re.compile(r"lenet(?:_[0-9]+)+")


def _build_lenet(name: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if not _LENET.fullmatch(name):
        raise UnknownArchitectureError(
            f"malformed architecture name {name!r}: expected lenet_<width>[_<width>...], "
            "e.g. lenet_300_100"
        )
    widths = [int(w) for w in name.split("_")[1:]]
    if len(widths) > MAX_LAYERS:
        raise UnknownArchitectureError(f"{name!r} has more than {MAX_LAYERS} hidden layers")
    for w in widths:
        if not 1 <= w <= MAX_WIDTH:
            raise UnknownArchitectureError(
                f"{name!r}: layer width {w} is outside 1..{MAX_WIDTH}"
            )
    return LeNet(math.prod(input_shape), widths, num_classes)


register_family(
    Family(
        prefix="lenet",
        build=_build_lenet,
        examples=("lenet_300_100", "lenet_100", "lenet_500_500"),
        description="ReLU MLP over the flattened input (LeNet-300-100 of the LTH paper)",
    )
)


# ------------------------------------------------------------------------- registry


def _family_for(name: str) -> Family:
    for family in _FAMILIES:
        if name == family.prefix or name.startswith(family.prefix):
            return family
    known = ", ".join(sorted(f.prefix for f in _FAMILIES))
    raise UnknownArchitectureError(
        f"unknown architecture {name!r}; known families: {known} (e.g. {list_architectures()[0]})"
    )


def _check_io(input_shape: tuple[int, ...], num_classes: int) -> None:
    # Programming errors, not user errors: sizes always come from a TaskSpec.
    if not input_shape or any(d < 1 for d in input_shape):
        raise ValueError(f"input_shape must be non-empty and positive, got {input_shape}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Build the architecture ``name`` for inputs of ``input_shape`` (no batch dim).

    Weights are PyTorch's defaults drawn from the global RNG: load an init
    (``nirvana.lottery.models.init.generate_init``) before using them. Built on the current default
    device, so ``with torch.device("meta"):`` builds without allocating.

    Raises:
        UnknownArchitectureError: unknown family or malformed name.
        IncompatibleTaskError: the family cannot take this input shape.
    """
    _check_io(tuple(input_shape), num_classes)
    return _family_for(name).build(name, tuple(input_shape), num_classes)


def for_task(name: str, task: TaskSpec) -> nn.Module:
    """``build_model`` with the input and output sizes of ``task``."""
    return build_model(name, task.input_shape, task.num_classes)


def prunable_names(model: nn.Module) -> list[str]:
    """Names of the weights of every ``nn.Linear`` and ``nn.Conv2d``, in module order.

    Biases and normalisation parameters are never prunable.
    """
    return [
        f"{mod_name}.weight" if mod_name else "weight"
        for mod_name, module in model.named_modules()
        if isinstance(module, (nn.Linear, nn.Conv2d))
    ]


def describe(name: str, input_shape: tuple[int, ...], num_classes: int) -> ArchitectureInfo:
    """The ``state_dict`` layout of ``name`` on this input, built on the meta device.

    Cheap for any size: nothing is allocated. Raises what ``build_model`` raises.
    """
    with torch.device("meta"):
        model = build_model(name, input_shape, num_classes)
    prunable = set(prunable_names(model))
    learnable = {n for n, _ in model.named_parameters()}
    params = [
        ParameterInfo(
            name=n,
            shape=tuple(t.shape),
            prunable=n in prunable,
            buffer=n not in learnable,
        )
        for n, t in model.state_dict().items()
    ]
    return ArchitectureInfo(
        name=name,
        parameters=params,
        total=sum(p.numel for p in params if not p.buffer),
        prunable=sum(p.numel for p in params if p.prunable),
    )


def list_architectures() -> list[str]:
    """Example names of every registered family (any width works where a family allows)."""
    return [ex for f in sorted(_FAMILIES, key=lambda f: f.prefix) for ex in f.examples]


for _family in (conv.FAMILY, vgg.FAMILY, resnet.FAMILY):
    register_family(_family)
