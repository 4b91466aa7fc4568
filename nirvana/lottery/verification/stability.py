"""Linear mode connectivity (Frankle et al. 2020): the error barrier between two networks.

``instability(a, b)`` evaluates the networks ``(1 - t) a + t b`` for ``t`` in
``POINTS`` evenly spaced values of [0, 1] (evaluation only, no training) and returns
the largest rise of test error above the mean of the two ends:
``max_t err(t) - (err(0) + err(1)) / 2``. Two identical networks give exactly 0.

Batch norm's running statistics do not interpolate; at each point they are
re-estimated on training data (the first ``BN_EXAMPLES`` training examples in file
order, cumulative averages over batches of ``EVAL_BATCH``) before evaluating.
Buffers other than BN statistics (none in our architectures) are taken from ``a``.

Two ways to evaluate the path, with the same figures to float tolerance (a vmapped
kernel sums in another order than the one-network kernel, so an input on a decision
boundary may flip):

- one at a time (``batched=False``): each point is loaded into ``model`` in turn;
- batched (``batched=True``): the points' states are stacked along a new leading
  dimension (``nirvana.lottery.training.batched.StackedModels``, the run-batched
  trainer's stack) and every forward pass is one vmapped ``functional_call`` over all
  of them, the same inputs for every point. Batch norm is re-estimated per point from
  the same batches as above: every point's statistics are reset, then the ``k``-th
  batch goes through all points in training mode with momentum ``1 / k``, which is
  the cumulative average that ``momentum=None`` computes one at a time (under vmap
  ``num_batches_tracked`` cannot be read as a number). The test set is then evaluated
  in eval mode, ``EVAL_BATCH // points`` inputs per call.

  Memory: a batch-norm pass puts ``EVAL_BATCH`` inputs through every point at once, so
  the points go in groups that fit (``training.execution.batch_sizes``), planning
  ``per_point`` = 2 x the state's bytes (the mixed and the stacked copy) +
  ``INFERENCE_FACTOR`` x the batch x the float32 bytes of the largest layer output of
  one input; a network without batch norm plans only its state (its eval calls hold
  what one network's ``evaluate`` holds).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from nirvana.lottery.data.tasks import TaskData
from nirvana.lottery.training.batched import StackedModels
from nirvana.lottery.training.execution import activation_numel, batch_sizes, free_bytes
from nirvana.lottery.training.loop import EVAL_BATCH, evaluate

#: Interpolation points, ends included (the paper uses 30; at least 11).
POINTS = 11
#: Training examples used to re-estimate batch-norm statistics at each point.
BN_EXAMPLES = 10_000
#: Peak bytes of a no-grad vmapped forward, in largest-layer outputs: the layer's input
#: and output, the residual branch's, and the copies vmap makes to fold the points into
#: the channels of a grouped convolution or batch norm. Measured on the CPU (peak RSS,
#: 11 points): 6.0 for resnet20, 2.9 for vgg11; 8 leaves headroom.
INFERENCE_FACTOR = 8

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
State = Mapping[str, torch.Tensor]


def _bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, _BN)]


@torch.no_grad()
def _reestimate_bn(model: nn.Module, x: torch.Tensor) -> None:
    layers = _bn_layers(model)
    if not layers:
        return
    saved = [(m.momentum, m.training) for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
    model.train()
    for i in range(0, x.shape[0], EVAL_BATCH):
        model(x[i : i + EVAL_BATCH])
    for m, (momentum, _) in zip(layers, saved):
        m.momentum = momentum
    model.eval()


@torch.no_grad()
def _reestimate_bn_stacked(stack: StackedModels, x: torch.Tensor) -> None:
    """``_reestimate_bn`` for every network of ``stack`` at once (module docstring)."""
    named = [(name, m) for name, m in stack.base.named_modules() if isinstance(m, _BN) and m.track_running_stats]
    if not named:
        return
    for name, _ in named:
        prefix = f"{name}." if name else ""
        stack.buffers[prefix + "running_mean"].zero_()  # what reset_running_stats does
        stack.buffers[prefix + "running_var"].fill_(1)
        stack.buffers[prefix + "num_batches_tracked"].zero_()
    saved = [m.momentum for _, m in named]
    try:
        for k, i in enumerate(range(0, x.shape[0], EVAL_BATCH), start=1):
            for _, m in named:
                m.momentum = 1.0 / k
            stack.forward_shared(x[i : i + EVAL_BATCH], train=True)
    finally:
        for (_, m), momentum in zip(named, saved, strict=True):
            m.momentum = momentum


def _mix(a: State, b: State, t: float, device: torch.device) -> dict[str, torch.Tensor]:
    """The state ``(1 - t) a + t b`` on ``device``; non-float entries are ``a``'s."""
    return {
        k: ((1 - t) * a[k].to(device) + t * b[k].to(device)) if a[k].is_floating_point() else a[k].to(device)
        for k in a
    }


def _errors_one_at_a_time(
    model: nn.Module, a: State, b: State, ts: list[float], bn_x: torch.Tensor, x_test: torch.Tensor,
    y_test: torch.Tensor,
) -> list[float]:
    errors = []
    for t in ts:
        model.load_state_dict(_mix(a, b, t, bn_x.device))
        _reestimate_bn(model, bn_x)
        errors.append(1.0 - evaluate(model, x_test, y_test))
    return errors


def _point_groups(model: nn.Module, a: State, points: int, bn_x: torch.Tensor) -> list[int]:
    """How many points each stacked group holds (module docstring, Memory)."""
    per_point = 2 * sum(v.numel() * v.element_size() for v in a.values())
    if _bn_layers(model) and bn_x.shape[0] > 0:
        largest = activation_numel(model, tuple(bn_x.shape[1:]), largest=True)
        per_point += INFERENCE_FACTOR * min(EVAL_BATCH, bn_x.shape[0]) * largest * 4
    return batch_sizes(points, per_point, free_bytes(bn_x.device), None)


def _errors_batched(
    model: nn.Module, a: State, b: State, ts: list[float], bn_x: torch.Tensor, x_test: torch.Tensor,
    y_test: torch.Tensor,
) -> list[float]:
    param_names = {name for name, _ in model.named_parameters()}
    errors: list[float] = []
    start = 0
    for size in _point_groups(model, a, len(ts), bn_x):
        states = [_mix(a, b, t, bn_x.device) for t in ts[start : start + size]]
        start += size
        stacked = {k: torch.stack([s[k] for s in states]) for k in a}
        del states
        stack = StackedModels(
            model, {k: v for k, v in stacked.items() if k in param_names},
            {k: v for k, v in stacked.items() if k not in param_names},
        )  # fmt: skip
        _reestimate_bn_stacked(stack, bn_x)
        errors += [1.0 - acc for acc in stack.accuracies(x_test, y_test)]
    return errors


@torch.no_grad()
def error_curve(
    model: nn.Module, a: State, b: State, data: TaskData, points: int = POINTS, *, batched: bool = False,
) -> list[tuple[float, float]]:
    """``(t, test error)`` of ``(1 - t) a + t b`` at ``points`` values of ``t``, on
    ``model``'s device. ``model`` is of the architecture of ``a`` and ``b`` (whose keys
    are its ``state_dict``'s); one at a time its weights are overwritten, batched it
    only gives the architecture. ``batched``: all points together (module docstring)."""
    if points < 2:
        raise ValueError("an interpolation needs at least its two ends")
    ts = [i / (points - 1) for i in range(points)]
    device = next(model.parameters()).device
    bn_x = data.x_train[:BN_EXAMPLES].to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    errors = (_errors_batched if batched else _errors_one_at_a_time)(model, a, b, ts, bn_x, x_test, y_test)
    return list(zip(ts, errors, strict=True))


def instability(
    model: nn.Module, a: State, b: State, data: TaskData, points: int = POINTS, *, batched: bool = False,
) -> float:
    """The error barrier between ``a`` and ``b`` (see the module docstring); ``model``
    and ``batched`` as in ``error_curve``."""
    curve = error_curve(model, a, b, data, points, batched=batched)
    ends = (curve[0][1] + curve[-1][1]) / 2
    return max(err for _, err in curve) - ends
