"""Regenerable initial weights: (architecture, task shape, scheme, seed) -> state_dict.

The algorithm (also in docs/lottery.md), which ticket ids depend on, so never change
what an existing scheme produces; add a new scheme instead:

1. Build the model on the ``meta`` device, then materialise it empty on the CPU, so
   PyTorch's own default init never runs and the global RNG is never touched.
2. Create one ``torch.Generator()`` seeded with ``seed``.
3. Visit ``model.named_modules()`` in order (definition order, depth first). For each
   ``nn.Linear`` / ``nn.Conv2d``: fill ``weight`` by the scheme, drawing from the
   generator; then the bias (zero for every scheme but ``torch_default``). For each
   BatchNorm: weight from U[0, 1) (OpenLTH's default ``bn_initializers.uniform``,
   ``torch.rand``; ``uniform_(0, 1)`` draws the same values), bias zero, running mean
   0, running var 1, ``num_batches_tracked`` 0 (int64; buffers are part of the init).
4. Return ``state_dict()`` as contiguous CPU tensors (float32; integer buffers keep
   their dtype).

Everything happens on the CPU whatever the default device (``torch.device("cuda")``
contexts included), so the same tensors come out on any machine; move them afterwards.

Schemes: ``kaiming_normal`` (OpenLTH's default: ``kaiming_normal_(w)``, i.e. fan-in,
gain sqrt(2)), ``kaiming_uniform`` (same, uniform), ``glorot_normal`` and
``glorot_uniform`` (Xavier; the LTH paper's "Glorot gaussian" for LeNet), and
``torch_default`` (what ``nn.Linear.reset_parameters`` does: kaiming-uniform with
a=sqrt(5) and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))). OpenLTH leaves biases at
PyTorch's default; we zero them so a scheme is one rule and one stream of numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import torch
from torch import nn

from nirvana.lottery.models.architectures import build_model
from nirvana.lottery.errors import UnknownInitSchemeError

if TYPE_CHECKING:
    from nirvana.lottery.data.tasks import TaskSpec

INIT_SCHEMES: tuple[str, ...] = (
    "kaiming_normal",
    "kaiming_uniform",
    "glorot_normal",
    "glorot_uniform",
    "torch_default",
)

WeightInit = Callable[[torch.Tensor, torch.Generator], object]

_WEIGHT_INITS: dict[str, WeightInit] = {
    "kaiming_normal": lambda w, g: nn.init.kaiming_normal_(w, generator=g),
    "kaiming_uniform": lambda w, g: nn.init.kaiming_uniform_(w, generator=g),
    "glorot_normal": lambda w, g: nn.init.xavier_normal_(w, generator=g),
    "glorot_uniform": lambda w, g: nn.init.xavier_uniform_(w, generator=g),
    "torch_default": lambda w, g: nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=g),
}


def check_scheme(scheme: str) -> None:
    """Raise ``UnknownInitSchemeError`` unless ``scheme`` is one of ``INIT_SCHEMES``."""
    if scheme not in INIT_SCHEMES:
        raise UnknownInitSchemeError(
            f"unknown init scheme {scheme!r}; known: {', '.join(INIT_SCHEMES)}"
        )


@torch.no_grad()
def _init_module(module: nn.Module, scheme: str, g: torch.Generator) -> None:
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        _WEIGHT_INITS[scheme](module.weight, g)
        if module.bias is not None:
            if scheme == "torch_default":
                fan_in = module.weight[0].numel()
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                nn.init.uniform_(module.bias, -bound, bound, generator=g)
            else:
                nn.init.zeros_(module.bias)
    elif isinstance(module, nn.modules.batchnorm._BatchNorm):
        if module.weight is not None:
            nn.init.uniform_(module.weight, 0.0, 1.0, generator=g)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
        module.reset_running_stats()
    elif any(True for _ in module.parameters(recurse=False)):
        # A new layer type must get an explicit rule here, or ids would silently
        # depend on uninitialised memory.
        raise TypeError(f"no init rule for {type(module).__name__}")


def generate_init(
    architecture: str, task: TaskSpec, scheme: str, seed: int
) -> dict[str, torch.Tensor]:
    """The initial ``state_dict`` of ``architecture`` on ``task`` for ``(scheme, seed)``.

    Deterministic and device-independent: the same arguments give bitwise-equal
    tensors in any process on any machine with the same torch version (CPU RNG only).
    Returns contiguous CPU float32 tensors keyed exactly like ``model.state_dict()``.

    Raises:
        UnknownInitSchemeError, UnknownArchitectureError.
    """
    check_scheme(scheme)
    with torch.device("meta"):
        model = build_model(architecture, task.input_shape, task.num_classes)
    model = model.to_empty(device="cpu")
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    for _, module in model.named_modules():
        _init_module(module, scheme, g)
    out: dict[str, torch.Tensor] = {}
    for name, t in model.state_dict().items():
        t = t.detach()
        out[name] = (t.to(torch.float32) if t.is_floating_point() else t).contiguous().clone()
    return out


def generate_distinct_init(
    architecture: str, task: TaskSpec, scheme: str, seed: int, *, unlike: Mapping[str, torch.Tensor]
) -> tuple[int, dict[str, torch.Tensor]]:
    """``(seed used, init)``: ``generate_init`` from ``seed``, or from the first seed
    after it whose init differs from ``unlike`` (the reinit control's contract: a fresh
    init, never the ticket's own; a second try is astronomically unlikely)."""
    while True:
        fresh = generate_init(architecture, task, scheme, seed)
        if not all(torch.equal(fresh[k], unlike[k].to(fresh[k].dtype)) for k in fresh):
            return seed, fresh
        seed += 1
