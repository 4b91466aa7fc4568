"""How a list of runs of one architecture executes on a device: batched or one at a
time, in batches that fit the device's memory, in which precision.

The choice (``ExecutionOptions.batching``; workers pass ``NIRVANA_VERIFY_BATCH`` down,
the core reads no environment variables):

- ``"on"`` / ``"off"``: always batched (``train_batched``) / always one at a time
  (``train``), whatever the device; for tests and operators.
- ``"auto"`` (the default): batched on CUDA, always (a GPU runs one small network far
  below its capacity). On the CPU: batched only for networks without convolutions,
  where N runs become one batched matmul per layer; one at a time for convolutional
  networks, whose vmapped (grouped) convolutions the CPU kernels run slower than N
  plain ones. ``bench/verify_throughput.py`` measures both paths and checks this rule
  (figures in docs/operations.md).

Batch size (how many runs train together): ``fits = budget // per_run`` with
``budget = MEMORY_FRACTION`` of the device's free memory (CUDA: ``mem_get_info``; CPU:
available physical memory) and ``per_run`` = the parameter bytes times (weights,
gradients and the optimizer's state: 1 + 1 + 0, 1 or 2 moments) plus the training
activations: ``ACTIVATION_FACTOR * batch_size`` times the float32 bytes of every
module's output for one input (measured by a forward pass on the meta device). The
runs are split into ``ceil(n / min(fits, max_batch))`` batches of near-equal size.

On CUDA (never on the CPU): bf16 autocast when the recipe allows it
(``Recipe.mixed_precision``), channels_last weights for convolutional networks trained
one at a time (a batch's vmapped convolutions take five-dimensional inputs, for which
there is no channels_last), optional ``torch.compile`` (``compile``). What was chosen
is returned as an ``Execution`` record that a verification stores with its result.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from nirvana.lottery.training.batched import shared_recipe, train_batched
from nirvana.lottery.training.loop import TrainResult, train
from nirvana.lottery.training.recipes import Recipe

if TYPE_CHECKING:
    from nirvana.lottery.data.tasks import TaskData

__all__ = [
    "ACTIVATION_FACTOR", "MEMORY_FRACTION", "Execution", "ExecutionOptions", "RunInput",
    "activation_numel", "batch_sizes", "choose_batched", "per_run_bytes", "train_many",
]

Batching = Literal["auto", "on", "off"]
#: Share of the device's free memory a batch of runs may plan to use.
MEMORY_FRACTION = 0.5
#: Training activation bytes per output byte of a forward pass: the saved output,
#: its gradient, and headroom for the kernels' workspaces.
ACTIVATION_FACTOR = 3


@dataclass(frozen=True)
class ExecutionOptions:
    """How a worker wants runs executed (see the module docstring)."""

    batching: Batching = "auto"
    #: At most this many runs in one batch (``None``: as many as fit).
    max_batch: int | None = None
    #: Allow bf16 autocast on CUDA when the recipe does.
    mixed_precision: bool = True
    #: ``torch.compile`` the training step (CUDA only; compiling costs seconds per job).
    compile: bool = False

    def __post_init__(self) -> None:
        if self.batching not in ("auto", "on", "off"):
            raise ValueError(f"batching must be auto, on or off, not {self.batching!r}")
        if self.max_batch is not None and self.max_batch < 1:
            raise ValueError("max_batch must be at least 1")


@dataclass(frozen=True)
class RunInput:
    """One run to train: its model (its init loaded), its mask, its recipe."""

    model: nn.Module
    mask: Mapping[str, torch.Tensor] | None
    recipe: Recipe


@dataclass(frozen=True)
class Execution:
    """What ``train_many`` chose; ``to_dict()`` is JSON-serialisable."""

    batched: bool
    batches: list[int]
    precision: Literal["float32", "bf16-autocast"]
    channels_last: bool
    compiled: bool
    rule: str = field(default="")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def choose_batched(batching: Batching, device: torch.device, model: nn.Module) -> tuple[bool, str]:
    """Whether to batch, and the rule that said so (see the module docstring)."""
    if batching != "auto":
        return batching == "on", f"forced {batching}"
    if device.type == "cuda":
        return True, "auto: CUDA batches"
    if _has_conv(model):
        return False, "auto: convolutions on the CPU run one at a time"
    return True, "auto: matmul-only networks on the CPU batch"


def activation_numel(model: nn.Module, input_shape: tuple[int, ...], largest: bool = False) -> int:
    """Elements every leaf module outputs for one input, summed (or the largest one
    output's, with ``largest``); a meta-device forward pass."""
    meta = copy.deepcopy(model).to("meta")
    total = 0

    def count(_module: nn.Module, _inputs: Any, output: Any) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total = max(total, output.numel()) if largest else total + output.numel()

    hooks = [m.register_forward_hook(count) for m in meta.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            meta(torch.empty((1, *input_shape), device="meta"))
    finally:
        for h in hooks:
            h.remove()
    return total


def per_run_bytes(model: nn.Module, input_shape: tuple[int, ...], recipe: Recipe) -> int:
    """Planned bytes of one run in a batch (see the module docstring)."""
    param_bytes = sum(p.numel() for p in model.parameters()) * 4
    moments = 2 if recipe.optimizer == "adam" else (1 if recipe.momentum > 0 else 0)
    activations = ACTIVATION_FACTOR * recipe.batch_size * activation_numel(model, input_shape) * 4
    return param_bytes * (2 + moments) + activations


def free_bytes(device: torch.device) -> int:
    """Free memory of ``device`` (CUDA: ``mem_get_info``; CPU: available physical pages)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def batch_sizes(n: int, per_run: int, free: int, max_batch: int | None) -> list[int]:
    """``n`` runs split into near-equal batches of at most ``min(fits, max_batch)``."""
    fits = max(1, int(free * MEMORY_FRACTION) // max(1, per_run))
    size = max(1, min(fits, max_batch or n, n))
    count = math.ceil(n / size)
    return [n // count + (1 if i < n % count else 0) for i in range(count)]


def train_many(
    runs: Sequence[RunInput],
    data: TaskData,
    *,
    device: str | torch.device = "cpu",
    options: ExecutionOptions | None = None,
    eval_every: int | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> tuple[list[TrainResult], Execution]:
    """Train every run (in place on its model) and return their results in order, with
    the ``Execution`` chosen. The runs share one architecture and, batched, one recipe
    but for ``data_seed``. ``on_progress(fraction)`` counts finished steps over all
    runs; an exception it raises stops training and propagates (cancellation)."""
    options = options or ExecutionOptions()
    dev = torch.device(device)
    if not runs:
        return [], Execution(False, [], "float32", False, False, "no runs")
    first = runs[0].model
    batched, rule = choose_batched(options.batching, dev, first)
    recipe = shared_recipe([r.recipe for r in runs]) if batched else runs[0].recipe
    bf16 = dev.type == "cuda" and options.mixed_precision and all(r.recipe.mixed_precision for r in runs)
    compiled = dev.type == "cuda" and options.compile
    channels_last = dev.type == "cuda" and not batched and _has_conv(first)
    sizes = [1] * len(runs)
    if batched:
        per_run = per_run_bytes(first, tuple(data.x_train.shape[1:]), recipe)
        sizes = batch_sizes(len(runs), per_run, free_bytes(dev), options.max_batch)
    total_steps = sum(r.recipe.steps for r in runs)
    done = 0
    results: list[TrainResult] = []
    start = 0
    for size in sizes:
        group = runs[start : start + size]
        start += size

        def progress(step: int, _total: int, done: int = done, k: int = len(group)) -> None:
            if on_progress is not None:
                on_progress((done + k * step) / total_steps)

        results += _train_group(group, data, dev, batched, bf16, compiled, channels_last, eval_every, progress)
        done += sum(r.recipe.steps for r in group)
    precision: Literal["float32", "bf16-autocast"] = "bf16-autocast" if bf16 else "float32"
    return results, Execution(batched, sizes, precision, channels_last, compiled, rule)


def _train_group(
    group: Sequence[RunInput], data: TaskData, dev: torch.device, batched: bool, bf16: bool,
    compiled: bool, channels_last: bool, eval_every: int | None, progress: Callable[[int, int], None],
) -> list[TrainResult]:
    autocast = torch.bfloat16 if bf16 else None
    if batched:
        return train_batched(
            [r.model for r in group], data, [r.recipe for r in group], masks=[r.mask for r in group],
            device=dev, eval_every=eval_every, on_progress=progress, autocast=autocast, compile_step=compiled,
        )
    (run,) = group
    model = run.model
    if channels_last:
        # torch's stubs omit ``memory_format``, which ``Module.to`` accepts.
        model.to(dev).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if compiled:
        model.compile()  # in place: parameter names (and so mask keys) stay as they are
    cast: Any = torch.autocast(dev.type, dtype=autocast) if autocast is not None else nullcontext()
    with cast:
        result = train(model, data, run.recipe, mask=run.mask, device=dev, eval_every=eval_every,
                       on_progress=progress)
    return [result]
