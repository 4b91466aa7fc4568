"""Training under a recipe: a small, fast, bitwise-repeatable loop.

Contract of ``train`` (what verification results depend on):

- The whole dataset is moved to the device once; batches are gathered by index, so a
  step costs one ``index_select`` plus the forward/backward, no DataLoader.
- Data order: a CPU ``torch.Generator`` seeded with ``recipe.data_seed`` draws one
  permutation per epoch; batch ``i`` of an epoch is ``perm[i*b:(i+1)*b]``. The tail
  of a permutation shorter than a batch is dropped (every batch has the same size);
  a batch larger than the training set is clamped to it.
- Masks: weights are multiplied by the mask once before the first step and again
  after every optimizer step, in place under ``no_grad``. No forward hooks, so a
  masked forward pass costs what a dense one does, and masked weights are exactly
  zero (``== 0``; a negative weight times 0 is ``-0.0``) at every step boundary (the
  optimizer may move them within a step; we undo it). A float multiply, because
  ``masked_fill_`` with a bool mask measured 20x slower on the CPU (15% of a step).
- Learning rate: ``lr * warmup(step) * schedule(step)``; warmup is linear from
  ``lr/warmup_steps`` to ``lr``; ``step`` multiplies by ``gamma`` at each milestone,
  ``cosine`` anneals to 0 at ``steps``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from nirvana.lottery.pruning.masks import mask_pairs
from nirvana.lottery.training.recipes import Recipe

if TYPE_CHECKING:
    from nirvana.lottery.data.tasks import TaskData

__all__ = ["EVAL_BATCH", "BatchSampler", "TrainResult", "evaluate", "make_optimizer", "train"]

#: Eval batch size: eval is inference only, so big batches amortise per-call overhead.
EVAL_BATCH = 8192


@dataclass
class TrainResult:
    """Final test accuracy, the (step, test accuracy) curve, steps taken, wall seconds.

    ``captured`` holds a CPU copy of the ``state_dict`` after ``capture_step`` steps
    when ``train`` was asked for one (rewinding), else ``None``.
    """

    test_accuracy: float
    curve: list[tuple[int, float]]
    steps: int
    seconds: float
    captured: dict[str, torch.Tensor] | None = field(default=None, repr=False)


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimizer over all of ``model``'s parameters."""
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=recipe.lr,
            momentum=recipe.momentum,
            weight_decay=recipe.weight_decay,
        )
    return torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)


class BatchSampler:
    """Epoch-wise permutations from a seeded CPU generator; yields index tensors on ``device``."""

    def __init__(self, n: int, batch_size: int, seed: int, device: torch.device) -> None:
        self.n = n
        self.batch_size = min(batch_size, n)
        self.per_epoch = n // self.batch_size
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.device = device
        self._batches: list[torch.Tensor] = []

    def next(self) -> torch.Tensor:
        if not self._batches:
            perm = torch.randperm(self.n, generator=self.generator).to(self.device)
            used = perm[: self.per_epoch * self.batch_size]
            self._batches = list(torch.split(used, self.batch_size))[::-1]
        return self._batches.pop()


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = EVAL_BATCH) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)`` in eval mode; restores the previous mode."""
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, x.shape[0], batch):
        pred = model(x[i : i + batch]).argmax(dim=1)
        correct += int((pred == y[i : i + batch]).sum().item())
    model.train(was_training)
    return correct / max(1, x.shape[0])


def _mask_pairs(
    model: nn.Module, mask: Mapping[str, torch.Tensor] | None, device: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(parameter, mask) pairs, the mask as 0/1 in the parameter's dtype on ``device``."""
    if not mask:
        return []
    return [(p, keep.to(device=device, dtype=p.dtype)) for _, p, keep in mask_pairs(model, mask)]


@torch.no_grad()
def _zero_pruned(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    for p, keep in pairs:
        p.mul_(keep)


def _eval_steps(steps: int, eval_every: int | None) -> set[int]:
    if eval_every is None:
        eval_every = max(1, math.ceil(steps / 10))
    if eval_every <= 0:
        return {steps}
    return {0, steps, *range(eval_every, steps, eval_every)}


def train(
    model: nn.Module,
    data: TaskData,
    recipe: Recipe,
    *,
    mask: Mapping[str, torch.Tensor] | None = None,
    device: str | torch.device = "cpu",
    eval_every: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    capture_step: int | None = None,
    on_eval: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``data`` under ``recipe``; see the module docstring.

    Args:
        mask: bool tensors keyed by parameter name; ``True`` keeps a weight.
        eval_every: test accuracy every this many steps (default: ~10 points); ``0``
            evaluates only at the end. The curve always ends at ``recipe.steps``.
        on_progress: called as ``(step, total)`` every ~1% of the steps and at the
            end; an exception it raises stops training and propagates (cancellation).
        capture_step: keep a CPU copy of the weights after this many steps (0 = before
            training) in ``TrainResult.captured`` (late resetting / rewinding).
        on_eval: called as ``(step, test accuracy)`` at every point of the curve, e.g.
            to show the current accuracy on a progress bar.

    Bitwise repeatable on the CPU for the same model weights, data and recipe.
    """
    start = time.perf_counter()
    dev = torch.device(device)
    model.to(dev)
    model.train()
    x_train, y_train = data.x_train.to(dev), data.y_train.to(dev)
    x_test, y_test = data.x_test.to(dev), data.y_test.to(dev)
    pairs = _mask_pairs(model, mask, dev)
    _zero_pruned(pairs)

    optimizer = make_optimizer(model, recipe)
    sampler = BatchSampler(x_train.shape[0], recipe.batch_size, recipe.data_seed, dev)
    evals = _eval_steps(recipe.steps, eval_every)
    progress_every = max(1, recipe.steps // 100)
    loss_fn = nn.CrossEntropyLoss()
    curve: list[tuple[int, float]] = []
    captured: dict[str, torch.Tensor] | None = None

    for step in range(recipe.steps + 1):
        if step == capture_step:
            captured = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if step in evals:
            curve.append((step, evaluate(model, x_test, y_test)))
            if on_eval is not None:
                on_eval(*curve[-1])
        if on_progress is not None and (step % progress_every == 0 or step == recipe.steps):
            on_progress(step, recipe.steps)
        if step == recipe.steps:
            break
        if not recipe.constant_lr:
            for group in optimizer.param_groups:
                group["lr"] = recipe.lr * recipe.lr_factor(step)
        idx = sampler.next()
        loss = loss_fn(model(x_train[idx]), y_train[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _zero_pruned(pairs)

    return TrainResult(
        test_accuracy=curve[-1][1],
        curve=curve,
        steps=recipe.steps,
        seconds=time.perf_counter() - start,
        captured=captured,
    )
