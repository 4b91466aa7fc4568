"""Run-batched training: N runs of one architecture trained together, each exactly as
``nirvana.lottery.training.loop.train`` would train it alone.

How: the N models' parameters and buffers are stacked along a new leading dimension
(``torch.func.stack_module_state``) and one step is ``torch.func.vmap`` over
``functional_call`` of a weightless copy of the architecture, so a linear layer becomes
one batched matmul and a convolution one grouped convolution. The loss is the sum of
the runs' mean losses, so each run's slice of the gradient is its own run's gradient.

What each run keeps of its own (the contract the CPU test checks step by step):

- its init (its model's ``state_dict``), its mask, its data order (a ``BatchSampler``
  seeded with its recipe's ``data_seed``) and its batch-norm statistics;
- the optimizer: the recipe's optimizer over the *stacked* tensors. SGD (momentum,
  weight decay) and Adam are elementwise, and every run takes the same step count
  and learning rate, so each slice follows the one-run update exactly;
- masks multiply the weights before the first step and after every step, as in
  ``train``; a run without a mask (or without an entry for a weight) keeps it dense;
- its augmentation draws (its own ``_Augmenter``, seeded from its ``data_seed``);
- its record: test and validation curves at the steps ``train`` evaluates at, the
  early stop chosen from them, accuracy at init (``curve[0]``).

The runs must share everything of the recipe but ``data_seed`` (one learning rate for
all), and their models one architecture (same names and shapes); ``ValueError``
otherwise. Results agree with ``train`` to float tolerance, not bitwise: a batched
matmul or grouped convolution sums in another order than the one-run kernel.
"""

from __future__ import annotations

import copy
import time
from contextlib import nullcontext
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from nirvana.lottery.training.loop import (
    EVAL_BATCH,
    BatchSampler,
    TrainResult,
    _Augmenter,
    _mask_pairs,
    early_stop,
    eval_steps,
)
from nirvana.lottery.training.optimizers import OptimizerStep, make_optimizer, set_learning_rate
from nirvana.lottery.training.recipes import Recipe

if TYPE_CHECKING:
    from nirvana.lottery.data.tasks import TaskData

__all__ = ["StackedModels", "shared_recipe", "train_batched"]

Mask = Mapping[str, torch.Tensor]
Stacked = dict[str, torch.Tensor]


def shared_recipe(recipes: Sequence[Recipe]) -> Recipe:
    """The recipe the runs share (the first); ``ValueError`` unless all of them equal it
    but for ``data_seed``."""
    if not recipes:
        raise ValueError("no runs to train")
    first = recipes[0].model_dump(exclude={"data_seed"})
    for r in recipes[1:]:
        if r.model_dump(exclude={"data_seed"}) != first:
            raise ValueError("batched runs must share their recipe but for data_seed")
    return recipes[0]


def _check_same_architecture(models: Sequence[nn.Module]) -> None:
    shapes = {k: tuple(v.shape) for k, v in models[0].state_dict().items()}
    for m in models[1:]:
        if {k: tuple(v.shape) for k, v in m.state_dict().items()} != shapes:
            raise ValueError("batched runs must share one architecture (state_dict names and shapes)")


def _stacked_masks(
    models: Sequence[nn.Module], masks: Sequence[Mask | None], params: Stacked, device: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(stacked parameter, stacked 0/1 keep) for every parameter any run masks; a run
    without an entry for it keeps it dense (a keep of ones)."""
    per_run = [
        {name: keep for (p, keep), name in zip(_mask_pairs(model, mask, device), mask or {}, strict=True)}
        for model, mask in zip(models, masks, strict=True)
    ]
    names = sorted({name for run in per_run for name in run})
    pairs = []
    for name in names:
        p = params[name]
        keep = torch.stack([run.get(name, torch.ones_like(p[0])) for run in per_run])
        pairs.append((p, keep))
    return pairs


class StackedModels:
    """N networks of one architecture as stacked tensors (a leading dimension of N), and
    the vmapped forward over them: the runs of a batch, or the points of an
    interpolation path (``nirvana.lottery.verification.stability``).

    ``params`` and ``buffers`` together are every entry of the architecture's
    ``state_dict``, each stacked; they are used as given (not copied), and a forward in
    training mode updates the stacked batch-norm statistics in ``buffers`` in place."""

    def __init__(self, architecture: nn.Module, params: Stacked, buffers: Stacked, compile_step: bool = False) -> None:
        self.params = params
        self.buffers = buffers
        # A weightless copy: functional_call swaps the stacked slices in for each call.
        self.base = copy.deepcopy(architecture).to("meta")
        self.n = next(iter(params.values())).shape[0]

        def one(p: Stacked, b: Stacked, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = functional_call(self.base, (p, b), (x,))
            return out

        self._train_fwd = vmap(one)  # every run its own inputs
        self._shared_fwd = vmap(one, in_dims=(0, 0, None))  # every run the same inputs
        if compile_step:
            self._train_fwd = torch.compile(self._train_fwd)

    @classmethod
    def of_models(cls, models: Sequence[nn.Module], device: torch.device, compile_step: bool = False) -> StackedModels:
        """The models' parameters and buffers stacked on ``device`` (copies: the stacked
        parameters are leaves an optimizer can own)."""
        for m in models:
            m.to(device)
        params, buffers = stack_module_state(list(models))
        return cls(models[0], params, buffers, compile_step)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` is ``(N, batch, ...)``; returns ``(N, batch, classes)`` logits, training mode."""
        self.base.train()
        return self._train_fwd(self.params, self.buffers, x)

    def forward_shared(self, x: torch.Tensor, *, train: bool) -> torch.Tensor:
        """``x`` is ``(batch, ...)``, the same inputs for every network; returns ``(N,
        batch, classes)`` logits in training (``train``) or eval mode."""
        self.base.train(train)
        return self._shared_fwd(self.params, self.buffers, x)

    @torch.no_grad()
    def accuracies(self, x: torch.Tensor, y: torch.Tensor) -> list[float]:
        """Top-1 accuracy of every network on ``(x, y)`` in eval mode."""
        correct = torch.zeros(self.n, dtype=torch.long, device=y.device)
        # The same number of inputs per call as the one-run ``evaluate`` over all runs.
        chunk = max(1, EVAL_BATCH // self.n)
        for i in range(0, x.shape[0], chunk):
            pred = self.forward_shared(x[i : i + chunk], train=False).argmax(dim=2)
            correct += (pred == y[i : i + chunk]).sum(dim=1)
        self.base.train()
        return [int(c) / max(1, x.shape[0]) for c in correct.tolist()]

    def write_back(self, models: Sequence[nn.Module]) -> None:
        """Copy network ``i``'s state into ``models[i]``."""
        with torch.no_grad():
            for i, model in enumerate(models):
                state = {k: v[i] for k, v in (self.params | self.buffers).items()}
                model.load_state_dict(state)


@torch.no_grad()
def _zero_pruned(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    for p, keep in pairs:
        p.mul_(keep)


def train_batched(
    models: Sequence[nn.Module],
    data: TaskData,
    recipes: Sequence[Recipe],
    *,
    masks: Sequence[Mask | None] | None = None,
    device: str | torch.device = "cpu",
    eval_every: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    autocast: torch.dtype | None = None,
    compile_step: bool = False,
) -> list[TrainResult]:
    """Train ``models[i]`` in place under ``recipes[i]`` with ``masks[i]``, all together;
    see the module docstring. Returns one ``TrainResult`` per run, in order.

    Args:
        eval_every: as in ``train`` (the same curve steps for every run).
        on_progress: ``(step, total)`` for the whole batch, as ``train`` calls it; an
            exception it raises stops training and propagates (cancellation).
        autocast: run forward passes under ``torch.autocast`` with this dtype (e.g.
            ``torch.bfloat16`` on CUDA); ``None`` trains in float32 like ``train``.
        compile_step: ``torch.compile`` the vmapped training forward.

    ``TrainResult.seconds`` of every run is the wall time of the whole batch.
    """
    start = time.perf_counter()
    if not models or len(models) != len(recipes):
        raise ValueError("need one recipe per model, and at least one model")
    recipe = shared_recipe(recipes)
    masks = list(masks) if masks is not None else [None] * len(models)
    _check_same_architecture(models)
    dev = torch.device(device)
    stack = StackedModels.of_models(models, dev, compile_step)
    pairs = _stacked_masks(models, masks, stack.params, dev)
    _zero_pruned(pairs)
    x_train, y_train = data.x_train.to(dev), data.y_train.to(dev)
    x_val, y_val = data.x_val.to(dev), data.y_val.to(dev)
    x_test, y_test = data.x_test.to(dev), data.y_test.to(dev)

    optimizer = make_optimizer(stack.params.values(), recipe)
    optimizer_step = OptimizerStep(optimizer)
    samplers = [BatchSampler(x_train.shape[0], recipe.batch_size, r.data_seed, dev) for r in recipes]
    augments = [_Augmenter(x_train, r) for r in recipes] if recipe.augment == "crop-flip" else None
    evals = set(eval_steps(recipe.steps, eval_every))
    progress_every = max(1, recipe.steps // 100)
    curves: list[list[tuple[int, float]]] = [[] for _ in models]
    validation_curves: list[list[tuple[int, float]]] = [[] for _ in models]
    cast: Any = torch.autocast(dev.type, dtype=autocast) if autocast is not None else nullcontext()

    for step in range(recipe.steps + 1):
        if step in evals:
            with cast:
                for record, x, y in ((validation_curves, x_val, y_val), (curves, x_test, y_test)):
                    for curve, acc in zip(record, stack.accuracies(x, y), strict=True):
                        curve.append((step, acc))
        if on_progress is not None and (step % progress_every == 0 or step == recipe.steps):
            on_progress(step, recipe.steps)
        if step == recipe.steps:
            break
        set_learning_rate(optimizer, recipe, step)
        idx = torch.stack([s.next() for s in samplers])
        x = x_train[idx]
        if augments is not None:
            x = torch.stack([a(xi) for a, xi in zip(augments, x, strict=True)])
        with cast:
            logits = stack.forward(x)
        y = y_train[idx]
        per_run = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="none")
        loss: torch.Tensor = per_run.view(y.shape).mean(dim=1).sum()
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        optimizer_step.step()
        _zero_pruned(pairs)

    stack.write_back(models)
    seconds = time.perf_counter() - start
    has_validation = x_val.shape[0] > 0
    return [
        TrainResult(test_accuracy=c[-1][1], curve=c, validation_curve=v, early_stop=early_stop(v, c, has_validation),
                    steps=recipe.steps, seconds=seconds)
        for c, v in zip(curves, validation_curves, strict=True)
    ]

