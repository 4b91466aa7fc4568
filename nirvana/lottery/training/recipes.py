"""Training recipes as data: the ``Recipe`` model and the papers' named recipes.

A ``Recipe`` counts in optimizer *steps*. Papers and OpenLTH often count in epochs
(``160ep``); such a named recipe resolves to steps for a task's training-set size:
``steps = epochs * ceil(train_size / batch_size)`` and each milestone likewise, which
is OpenLTH's ``Step.from_str`` with its ``iterations_per_epoch``.

This module imports nothing else from ``lottery`` at run time, so ``tasks`` (whose
``TaskSpec`` carries a default recipe) and ``training`` can both import it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nirvana.lottery.errors import InvalidRecipeError

if TYPE_CHECKING:
    from nirvana.lottery.data.tasks import TaskSpec

__all__ = ["NamedRecipe", "Recipe", "check_compute", "list_recipes", "named_recipe", "steps_per_epoch"]

#: Milestones a schedule may list: far more than any paper's, few enough to check.
MAX_MILESTONES = 64
#: Default bound on training examples (steps x batch size) one run may cost: every
#: named recipe fits (openlth-resnet20 on CIFAR-10 is 8.0 million).
MAX_EXAMPLES = 10_000_000


class Recipe(BaseModel):
    """Training hyper-parameters. Unknown keys are rejected so typos cannot go unnoticed."""

    model_config = ConfigDict(extra="forbid")

    optimizer: Literal["sgd", "adam"] = "adam"
    lr: float = Field(gt=0, allow_inf_nan=False)
    momentum: float = Field(default=0.0, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    batch_size: int = Field(ge=1, le=65536)
    steps: int = Field(ge=1)
    data_seed: int = Field(default=0, ge=0, le=2**63 - 1)
    warmup_steps: int = Field(default=0, ge=0)
    schedule: Literal["constant", "step", "cosine"] = "constant"
    milestones: list[int] = Field(default_factory=list, max_length=MAX_MILESTONES)
    gamma: float = Field(default=0.1, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _check_milestones(self) -> Recipe:
        if any(m < 1 for m in self.milestones) or self.milestones != sorted(self.milestones):
            raise ValueError("milestones must be positive and increasing")
        return self

    def lr_factor(self, step: int) -> float:
        """The multiplier of ``lr`` for the optimizer step taken at ``step`` (0-based)."""
        f = 1.0
        if self.warmup_steps > 0 and step < self.warmup_steps:
            f *= (step + 1) / self.warmup_steps
        if self.schedule == "step":
            f *= self.gamma ** sum(1 for m in self.milestones if step >= m)
        elif self.schedule == "cosine":
            f *= 0.5 * (1.0 + math.cos(math.pi * min(step, self.steps) / self.steps))
        return f

    @property
    def constant_lr(self) -> bool:
        return self.warmup_steps == 0 and self.schedule == "constant"


def check_compute(recipe: Recipe, *, max_steps: int, max_examples: int = MAX_EXAMPLES) -> None:
    """Refuse a run that costs more than a server grants: more than ``max_steps``
    optimizer steps, or more than ``max_examples`` training examples (steps x batch
    size, which is what the time of a run grows with).

    Raises:
        InvalidRecipeError: either bound is exceeded.
    """
    if recipe.steps > max_steps:
        raise InvalidRecipeError(f"recipe.steps={recipe.steps} exceeds this server's limit of {max_steps} steps")
    examples = recipe.steps * recipe.batch_size
    if examples > max_examples:
        raise InvalidRecipeError(
            f"recipe.steps x recipe.batch_size = {recipe.steps} x {recipe.batch_size} = {examples} examples "
            f"exceeds this server's limit of {max_examples}"
        )


@dataclass(frozen=True)
class NamedRecipe:
    """A recipe from a paper. Exactly one of ``steps`` and ``epochs`` is set;
    ``milestone_epochs`` only with ``epochs``. ``fields`` are the other ``Recipe`` fields."""

    name: str
    source: str
    fields: dict[str, Any]
    steps: int | None = None
    epochs: int | None = None
    milestone_epochs: tuple[int, ...] = field(default=())

    def resolve(self, task: TaskSpec | None = None) -> Recipe:
        """The ``Recipe``; an epoch-based one needs ``task`` (its ``train_size``)."""
        if self.steps is not None:
            return Recipe(steps=self.steps, **self.fields)
        if task is None:
            raise InvalidRecipeError(
                f"recipe {self.name!r} counts in epochs; name a task to resolve it to steps"
            )
        per_epoch = steps_per_epoch(task.train_size, int(self.fields["batch_size"]))
        assert self.epochs is not None  # one of steps/epochs is set (checked at registration)
        return Recipe(
            steps=self.epochs * per_epoch,
            milestones=[e * per_epoch for e in self.milestone_epochs],
            **self.fields,
        )


def steps_per_epoch(train_size: int, batch_size: int) -> int:
    """``ceil(train_size / batch_size)``: OpenLTH's iterations per epoch (the last,
    smaller batch counts as a step there)."""
    return max(1, math.ceil(train_size / batch_size))


_RECIPES: dict[str, NamedRecipe] = {}


def _register(recipe: NamedRecipe) -> None:
    if (recipe.steps is None) == (recipe.epochs is None):
        raise ValueError(f"recipe {recipe.name!r}: set exactly one of steps and epochs")
    _RECIPES[recipe.name] = recipe


_LTH = "Frankle & Carbin 2019, Figure 2"
_register(NamedRecipe("lth-lenet", _LTH, {"optimizer": "adam", "lr": 1.2e-3, "batch_size": 60}, steps=50_000))
_register(NamedRecipe("lth-conv2", _LTH, {"optimizer": "adam", "lr": 2e-4, "batch_size": 60}, steps=20_000))
_register(NamedRecipe("lth-conv4", _LTH, {"optimizer": "adam", "lr": 3e-4, "batch_size": 60}, steps=25_000))
_register(NamedRecipe("lth-conv6", _LTH, {"optimizer": "adam", "lr": 3e-4, "batch_size": 60}, steps=30_000))
_register(
    NamedRecipe(
        "openlth-lenet",
        "OpenLTH mnist_lenet_300_100 defaults",
        {"optimizer": "sgd", "lr": 0.1, "batch_size": 128},
        epochs=40,
    )
)
_register(
    NamedRecipe(
        "openlth-resnet20",
        "OpenLTH cifar_resnet_20 defaults",
        {
            "optimizer": "sgd",
            "lr": 0.1,
            "momentum": 0.9,
            "weight_decay": 1e-4,
            "batch_size": 128,
            "schedule": "step",
            "gamma": 0.1,
        },
        epochs=160,
        milestone_epochs=(80, 120),
    )
)
_register(
    NamedRecipe(
        "mnist1d-lth",
        "Greydanus & Kobak, MNIST-1D lottery-ticket notebook",
        {"optimizer": "adam", "lr": 2e-2, "batch_size": 100},
        steps=1501,
    )
)


def named_recipe(name: str, task: TaskSpec | None = None) -> Recipe:
    """The named recipe as a ``Recipe``, epochs resolved to steps for ``task``.

    Raises:
        InvalidRecipeError: unknown name, or an epoch-based recipe without a task.
    """
    entry = _RECIPES.get(name)
    if entry is None:
        raise InvalidRecipeError(f"unknown recipe {name!r}; known: {', '.join(sorted(_RECIPES))}")
    return entry.resolve(task)


def list_recipes() -> list[NamedRecipe]:
    """Every named recipe, by name."""
    return [_RECIPES[n] for n in sorted(_RECIPES)]
