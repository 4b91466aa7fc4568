"""Linear mode connectivity (Frankle et al. 2020): the error barrier between two networks.

``instability(a, b)`` evaluates the networks ``(1 - t) a + t b`` for ``t`` in
``POINTS`` evenly spaced values of [0, 1] (evaluation only, no training) and returns
the largest rise of test error above the mean of the two ends:
``max_t err(t) - (err(0) + err(1)) / 2``. Two identical networks give exactly 0.

Batch norm's running statistics do not interpolate; at each point they are
re-estimated on training data (the first ``BN_EXAMPLES`` training examples in file
order, cumulative averages over batches of ``EVAL_BATCH``) before evaluating.
Buffers other than BN statistics (none in our architectures) are taken from ``a``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from nirvana.lottery.data.tasks import TaskData
from nirvana.lottery.training.loop import EVAL_BATCH, evaluate

#: Interpolation points, ends included (the paper uses 30; at least 11).
POINTS = 11
#: Training examples used to re-estimate batch-norm statistics at each point.
BN_EXAMPLES = 10_000

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


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
def error_curve(
    model: nn.Module, a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], data: TaskData,
    points: int = POINTS,
) -> list[tuple[float, float]]:
    """``(t, test error)`` of ``(1 - t) a + t b`` at ``points`` values of ``t``; ``model``
    (of the architecture of ``a`` and ``b``) is overwritten."""
    if points < 2:
        raise ValueError("an interpolation needs at least its two ends")
    device = next(model.parameters()).device
    bn_x = data.x_train[:BN_EXAMPLES].to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    curve: list[tuple[float, float]] = []
    for i in range(points):
        t = i / (points - 1)
        mixed = {
            k: ((1 - t) * a[k].to(device) + t * b[k].to(device)) if a[k].is_floating_point() else a[k].to(device)
            for k in a
        }
        model.load_state_dict(mixed)
        _reestimate_bn(model, bn_x)
        curve.append((t, 1.0 - evaluate(model, x_test, y_test)))
    return curve


def instability(
    model: nn.Module, a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], data: TaskData,
    points: int = POINTS,
) -> float:
    """The error barrier between ``a`` and ``b`` (see the module docstring)."""
    curve = error_curve(model, a, b, data, points)
    ends = (curve[0][1] + curve[-1][1]) / 2
    return max(err for _, err in curve) - ends
