"""The recipe's optimizer, its learning-rate schedule, and a lean step for small models.

``make_optimizer`` builds torch's optimizer; ``OptimizerStep`` then steps it. On the
CPU a step of ``torch.optim.Adam.step`` costs ~250 us of Python around a ~70-us fused
kernel (a profiler range, hooks, a state lookup per parameter, grouping the tensors by
device), which is a tenth of a LeNet step at batch 60 and more for a compact ticket.
``OptimizerStep`` calls torch's public functional ``adam``/``sgd`` on the optimizer's
own state tensors instead: the same fused kernel with the same arguments, so the
update is bitwise the one ``optimizer.step()`` makes, and ``optimizer.state`` stays
true (its step counts and moments are the tensors updated).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.adam import adam
from torch.optim.sgd import sgd

from nirvana.lottery.training.recipes import Recipe

__all__ = ["OptimizerStep", "make_optimizer", "set_learning_rate"]


def make_optimizer(model: nn.Module | Iterable[torch.Tensor], recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimizer over all of ``model``'s parameters (or over the tensors given).

    On the CPU (every tensor a float on the CPU) it is torch's fused kernel: one call
    a step for all tensors. Torch's CPU default is a Python loop of a few elementwise ops
    per tensor, and its Adam takes a ``sqrt`` that measured 4-8x slower on zeros, which
    the second moment is full of under a sparse mask. The fused kernels compute the same
    update, rounded differently on some elements (an ulp), and are as repeatable.
    Elsewhere (CUDA) torch's default.
    """
    params = list(model.parameters()) if isinstance(model, nn.Module) else list(model)
    fused = bool(params) and all(p.device.type == "cpu" and p.is_floating_point() for p in params)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=recipe.lr,
            momentum=recipe.momentum,
            weight_decay=recipe.weight_decay,
            fused=fused or None,
        )
    return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=fused or None)


def set_learning_rate(optimizer: torch.optim.Optimizer, recipe: Recipe, step: int) -> None:
    """The recipe's schedule at ``step`` (warmup, milestones), on every parameter group;
    nothing for a constant rate."""
    if not recipe.constant_lr:
        for group in optimizer.param_groups:
            group["lr"] = recipe.lr * recipe.lr_factor(step)


class OptimizerStep:
    """``step()`` updates like ``optimizer.step()``, bitwise, with less Python per call.

    The lean path serves one parameter group of a fused ``Adam`` (no amsgrad) or
    ``SGD`` whose parameters all have gradients; its first call is ``optimizer.step()``
    itself (which creates the state), later ones call the functional kernel on that
    state. Anything else (CUDA's default optimizers, several groups, a parameter
    without a gradient) is always ``optimizer.step()``. The group's ``lr`` is read at
    every step, so ``set_learning_rate`` works as before.
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        groups = optimizer.param_groups
        self.group = groups[0] if len(groups) == 1 else {}
        self.params: list[torch.Tensor] = list(self.group.get("params", []))
        self.kind = ""
        if self.group.get("fused") and isinstance(optimizer, torch.optim.Adam) and not self.group["amsgrad"]:
            self.kind = "adam"
        elif self.group.get("fused") and isinstance(optimizer, torch.optim.SGD):
            self.kind = "sgd"
        self._state: tuple[list[torch.Tensor], ...] | None = None

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad for p in self.params]
        if self._state is None or any(g is None for g in grads):
            self.optimizer.step()
            self._state = self._read_state()
            return
        g = self.group
        if self.kind == "adam":
            moments, squares, steps = self._state
            adam(self.params, grads, moments, squares, [], steps, fused=True,  # type: ignore[arg-type]
                 decoupled_weight_decay=g["decoupled_weight_decay"], amsgrad=False, beta1=g["betas"][0],
                 beta2=g["betas"][1], lr=g["lr"], weight_decay=g["weight_decay"], eps=g["eps"], maximize=g["maximize"])  # fmt: skip
        else:
            (buffers,) = self._state
            sgd(self.params, grads, buffers, fused=True, weight_decay=g["weight_decay"], momentum=g["momentum"],  # type: ignore[arg-type]
                lr=g["lr"], dampening=g["dampening"], nesterov=g["nesterov"], maximize=g["maximize"])  # fmt: skip

    def _read_state(self) -> tuple[list[torch.Tensor], ...] | None:
        """The state tensors ``optimizer.step()`` keeps, in parameter order; ``None``
        (stay on ``optimizer.step()``) off the lean path or if any is missing."""
        state = self.optimizer.state
        if self.kind == "sgd" and self.group["momentum"] == 0:
            return ([],)  # plain SGD keeps no state
        keys = {"adam": ("exp_avg", "exp_avg_sq", "step"), "sgd": ("momentum_buffer",)}.get(self.kind, ())
        if not keys or any(key not in state.get(p, {}) for p in self.params for key in keys):
            return None
        return tuple([state[p][key] for p in self.params] for key in keys)
