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
- Optimizer: ``optimizers.make_optimizer`` (on the CPU torch's fused Adam or SGD: one
  kernel call a step for all parameters), stepped by ``optimizers.OptimizerStep``.
- Learning rate: ``lr * warmup(step) * schedule(step)``; warmup is linear from
  ``lr/warmup_steps`` to ``lr``; ``step`` multiplies by ``gamma`` at each milestone,
  ``cosine`` anneals to 0 at ``steps``.
- Data: ``data.x_train`` trains; ``data.x_val`` (the task's held-out validation split,
  ``nirvana.lottery.data.tasks``) only chooses the early-stopping step; ``data.x_test``
  only measures.
- Augmentation (``recipe.augment == "crop-flip"``, OpenLTH's CIFAR-10 augmentation):
  a second CPU generator seeded with ``augment_seed(recipe.data_seed)`` draws, for every
  batch after its indices, ``shifts = randint(0, 9, (b, 2))`` (row, column offsets
  into the batch padded by 4 on each side) then ``flips = randint(0, 2, (b,))``; the
  batch is gathered on the device by ``crop_flip`` (crop 32, then mirror where
  ``flips == 1``). Padding is a black pixel: the per-channel minimum of ``x_train``
  (``pad_fill``), which is what OpenLTH's zero padding of the raw image becomes after
  its normalisation.
- Evaluation points: steps ``0, e, 2e, ...`` and ``steps`` with ``e = eval_every``
  (default ``ceil(steps / 20)``); ``eval_every=0`` evaluates at 0 and ``steps`` only.
  At each point (before that step's update) the model is evaluated in eval mode on
  the validation set and then on the test set.

What ``train`` records (``TrainResult``), the per-run record of a verification:

- ``test_accuracy``: test accuracy after the last step (final accuracy);
- ``curve``: ``(step, test accuracy)`` at every evaluation point; ``curve[0]`` is step
  0, the accuracy of the masked init before any training (``accuracy_at_init``);
- ``validation_curve``: ``(step, validation accuracy)`` at the same points;
- ``early_stop``: the evaluation point with the highest validation accuracy (the
  earliest on ties): its step, validation accuracy and test accuracy there. A task
  without a validation split (``validation_size == 0``) early-stops at the last step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from nirvana.lottery.errors import InvalidRecipeError
from nirvana.lottery.pruning.masks import mask_pairs
from nirvana.lottery.training.optimizers import OptimizerStep, make_optimizer, set_learning_rate
from nirvana.lottery.training.recipes import Recipe

if TYPE_CHECKING:
    from nirvana.lottery.data.tasks import TaskData

__all__ = [
    "AUGMENT_PAD", "EVAL_BATCH", "EVAL_POINTS", "BatchSampler", "EarlyStop", "TrainResult",
    "augment_seed", "crop_flip", "early_stop", "eval_steps", "evaluate", "pad_fill", "train",
]

#: Eval batch size: eval is inference only, so big batches amortise per-call overhead.
EVAL_BATCH = 8192
#: Default number of evaluation intervals: ``eval_every = ceil(steps / EVAL_POINTS)``.
EVAL_POINTS = 20
#: Padding of the random crop, on each side (OpenLTH: 4).
AUGMENT_PAD = 4


@dataclass(frozen=True)
class EarlyStop:
    """The evaluation point of best validation accuracy and the test accuracy there."""

    step: int
    validation_accuracy: float
    test_accuracy: float


@dataclass
class TrainResult:
    """What one run records; see the module docstring.

    ``captured`` holds a CPU copy of the ``state_dict`` after ``capture_step`` steps
    when ``train`` was asked for one (rewinding), else ``None``.
    """

    test_accuracy: float
    curve: list[tuple[int, float]]
    validation_curve: list[tuple[int, float]]
    early_stop: EarlyStop
    steps: int
    seconds: float
    captured: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    @property
    def accuracy_at_init(self) -> float:
        """Test accuracy before the first step (``curve[0]``)."""
        return self.curve[0][1]


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
    """``p *= keep`` for every pair, in one call."""
    if pairs:
        torch._foreach_mul_([p for p, _ in pairs], [keep for _, keep in pairs])


def eval_steps(steps: int, eval_every: int | None) -> list[int]:
    """The evaluation points of a run, increasing; see the module docstring."""
    if eval_every is None:
        eval_every = max(1, math.ceil(steps / EVAL_POINTS))
    if eval_every <= 0:
        return [0, steps]
    return sorted({0, steps, *range(eval_every, steps, eval_every)})


def early_stop(validation_curve: list[tuple[int, float]], curve: list[tuple[int, float]], has_validation: bool) -> EarlyStop:
    """The earliest point of highest validation accuracy (the last point without a
    validation split); ``curve`` gives the test accuracy at that point."""
    i = len(curve) - 1
    if has_validation:
        best = max(a for _, a in validation_curve)
        i = next(j for j, (_, a) in enumerate(validation_curve) if a == best)
    return EarlyStop(step=curve[i][0], validation_accuracy=validation_curve[i][1], test_accuracy=curve[i][1])


def augment_seed(data_seed: int) -> int:
    """The seed of the augmentation generator: apart from the data order's, fixed by it."""
    return (data_seed + 0x9E3779B97F4A7C15) % 2**64


def pad_fill(x_train: torch.Tensor) -> torch.Tensor:
    """Per-channel padding value of the crop: the channel's minimum over ``x_train``."""
    return x_train.amin(dim=(0, 2, 3))


def crop_flip(x: torch.Tensor, shifts: torch.Tensor, flips: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """Random crop (``x``'s size, from ``x`` padded by ``AUGMENT_PAD`` with ``fill``) at
    offsets ``shifts[i] = (row, col)``, then a horizontal flip where ``flips[i] == 1``;
    one gather on ``x``'s device. ``shifts`` ``(b, 2)``, ``flips`` ``(b,)``, any device."""
    b, c, h, w = x.shape
    p, dev = AUGMENT_PAD, x.device
    padded = fill.to(dev, x.dtype).view(1, c, 1, 1).expand(b, c, h + 2 * p, w + 2 * p).clone()
    padded[:, :, p : p + h, p : p + w] = x
    shifts, flips = shifts.to(dev), flips.to(dev).bool()
    rows = shifts[:, 0, None] + torch.arange(h, device=dev)
    base = torch.arange(w, device=dev)
    cols = shifts[:, 1, None] + torch.where(flips[:, None], w - 1 - base, base)
    return padded[
        torch.arange(b, device=dev)[:, None, None, None],
        torch.arange(c, device=dev)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


class _Augmenter:
    """Draws each batch's crop offsets and flips on a seeded CPU generator."""

    def __init__(self, x_train: torch.Tensor, recipe: Recipe) -> None:
        if x_train.dim() != 4:
            raise InvalidRecipeError("augment='crop-flip' needs image inputs (channels, height, width)")
        self.generator = torch.Generator(device="cpu").manual_seed(augment_seed(recipe.data_seed))
        self.fill = pad_fill(x_train)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        shifts = torch.randint(0, 2 * AUGMENT_PAD + 1, (b, 2), generator=self.generator)
        flips = torch.randint(0, 2, (b,), generator=self.generator)
        return crop_flip(x, shifts, flips, self.fill)


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
        eval_every: evaluate every this many steps (default: ~20 points); ``0``
            evaluates only at 0 and at the end. The curve always runs from 0 to
            ``recipe.steps``.
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
    x_val, y_val = data.x_val.to(dev), data.y_val.to(dev)
    x_test, y_test = data.x_test.to(dev), data.y_test.to(dev)
    pairs = _mask_pairs(model, mask, dev)
    _zero_pruned(pairs)

    optimizer = make_optimizer(model, recipe)
    optimizer_step = OptimizerStep(optimizer)
    sampler = BatchSampler(x_train.shape[0], recipe.batch_size, recipe.data_seed, dev)
    augment = _Augmenter(x_train, recipe) if recipe.augment == "crop-flip" else None
    evals = set(eval_steps(recipe.steps, eval_every))
    progress_every = max(1, recipe.steps // 100)
    params = list(model.parameters())
    curve: list[tuple[int, float]] = []
    validation_curve: list[tuple[int, float]] = []
    captured: dict[str, torch.Tensor] | None = None

    for step in range(recipe.steps + 1):
        if step == capture_step:
            captured = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if step in evals:
            validation_curve.append((step, evaluate(model, x_val, y_val)))
            curve.append((step, evaluate(model, x_test, y_test)))
            if on_eval is not None:
                on_eval(*curve[-1])
        if on_progress is not None and (step % progress_every == 0 or step == recipe.steps):
            on_progress(step, recipe.steps)
        if step == recipe.steps:
            break
        set_learning_rate(optimizer, recipe, step)
        idx = sampler.next()
        # index_select: the copy x_train[idx] makes, in half the CPU time.
        x = x_train.index_select(0, idx)
        x = x if augment is None else augment(x)
        loss = F.cross_entropy(model(x), y_train.index_select(0, idx))
        for p in params:  # optimizer.zero_grad(set_to_none=True) without its profiler range
            p.grad = None
        torch.autograd.backward(loss)
        optimizer_step.step()
        _zero_pruned(pairs)

    return TrainResult(
        test_accuracy=curve[-1][1],
        curve=curve,
        validation_curve=validation_curve,
        early_stop=early_stop(validation_curve, curve, x_val.shape[0] > 0),
        steps=recipe.steps,
        seconds=time.perf_counter() - start,
        captured=captured,
    )
