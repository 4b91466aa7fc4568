"""Searching for tickets: iterative magnitude pruning (IMP), one-shot pruning, pruning
at init, each described by one :class:`~nirvana.lottery.pruning.config.SearchConfig`
and run by :func:`search_ticket`.

``search_ticket`` repeats: train, prune with a strategy of
:mod:`nirvana.lottery.pruning.registry` (``layerwise`` by default: a fraction of each
layer's remaining weights by magnitude), reset the survivors to the init (or to the
weights after ``rewind_step`` steps: late resetting / rewinding), retrain. Level 0 is
the dense network. An ``at_init`` strategy (``snip``, ``synflow``) instead prunes the
init to ``density`` once and trains once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from nirvana.lottery.data.tasks import TaskData, TaskSpec
from nirvana.lottery.models.architectures import build_model, describe
from nirvana.lottery.models.init import generate_distinct_init, generate_init
from nirvana.lottery.pruning.masks import dense_mask, random_mask_like, sparsity_report
from nirvana.lottery.pruning.config import SearchConfig
from nirvana.lottery.pruning.registry import get_strategy, prune_to_density
from nirvana.lottery.pruning.strategies import InvalidPruningError, PruneContext, lth_rates, prune_layerwise_strategy
from nirvana.lottery.tickets.digests import tensors_digest
from nirvana.lottery.training.loop import TrainResult, train
from nirvana.lottery.training.recipes import Recipe
from nirvana.lottery.verification.protocol import derive_seed

__all__ = ["LevelResult", "ResumePoint", "prune_layerwise", "search_ticket"]

CONTROL_NAMES = ("reinit", "random_mask")


def prune_layerwise(
    weights: Mapping[str, torch.Tensor],
    mask: Mapping[str, torch.Tensor],
    rates: Mapping[str, float] | float,
    output_rate: float | None = None,
) -> dict[str, torch.Tensor]:
    """A new mask removing, in each layer of ``mask``, ``round(rate * kept)`` of its
    *remaining* weights with the smallest ``|weights[name]|`` (ties: lower flat index).

    ``rates`` is one fraction for every layer or one per layer name (a layer absent
    from the dict is not pruned; ``lth_rates`` builds the paper's). ``output_rate``,
    when given, overrides the rate of the output layer, the *last* entry of ``mask``.
    """
    if isinstance(rates, float | int):
        ctx = PruneContext(output_rate=output_rate)
        return prune_layerwise_strategy(weights, mask, float(rates), ctx)
    per_layer = dict(rates)
    if output_rate is not None:
        per_layer[list(mask)[-1]] = output_rate
    return prune_layerwise_strategy(weights, mask, 0.0, PruneContext(layer_rates=per_layer))


@dataclass
class LevelResult:
    """One level: the mask, the tensors it was reset to, and how it trained.

    ``controls`` holds the test accuracy of the ``reinit`` and ``random_mask`` controls
    when asked for (not at density 1). ``next_mask``/``next_init`` are what the next
    level would train: enough to resume a search after this level.
    """

    level: int
    mask: dict[str, torch.Tensor]
    init: dict[str, torch.Tensor] = field(repr=False)
    test_accuracy: float
    density: float
    curve: list[tuple[int, float]]
    controls: dict[str, float] = field(default_factory=dict)
    next_mask: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    next_init: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    seconds: float = 0.0


@dataclass(frozen=True)
class ResumePoint:
    """Where to pick a search up: train ``level`` with ``mask`` from ``init``."""

    level: int
    mask: dict[str, torch.Tensor]
    init: dict[str, torch.Tensor]


ProgressFn = Callable[[int, str, int, int], None]  # (level, run, step, total)
EvalFn = Callable[[int, str, int, float], None]  # (level, run, step, accuracy)


@dataclass(frozen=True)
class _Runner:
    """Trains one run of a level, wiring the progress callbacks."""

    architecture: str
    data: TaskData
    spec: TaskSpec
    recipe: Recipe
    device: str | torch.device
    on_progress: ProgressFn | None
    on_eval: EvalFn | None

    def model(self) -> torch.nn.Module:
        return build_model(self.architecture, self.spec.input_shape, self.spec.num_classes)

    def run(
        self, level: int, name: str, weights: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor],
        capture_step: int | None = None,
    ) -> tuple[torch.nn.Module, TrainResult]:
        model = self.model()
        model.load_state_dict(dict(weights))
        progress, evaluated = self.on_progress, self.on_eval
        result = train(
            model, self.data, self.recipe, mask=mask, device=self.device, capture_step=capture_step,
            on_progress=None if progress is None else lambda s, t: progress(level, name, s, t),
            on_eval=None if evaluated is None else lambda s, a: evaluated(level, name, s, a),
        )  # fmt: skip
        return model, result


def _controls(
    runner: _Runner, level: int, scheme: str, init: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor],
    control_seed: int,
) -> dict[str, float]:
    """The two controls of ``verify_ticket``, with the seeds it derives, so on the same
    device they give the numbers a verification of this level will report."""
    digest = tensors_digest(dict(init))
    _, fresh = generate_distinct_init(
        runner.architecture, runner.spec, scheme, derive_seed("reinit", digest, control_seed), unlike=init
    )
    random_mask = random_mask_like(mask, derive_seed("random_mask", digest, control_seed))
    _, reinit = runner.run(level, "reinit", fresh, mask)
    _, rand = runner.run(level, "random_mask", init, random_mask)
    return {"reinit": reinit.test_accuracy, "random_mask": rand.test_accuracy}


def _layer_rates(config: SearchConfig, mask: Mapping[str, torch.Tensor]) -> dict[str, float] | None:
    """The LTH paper's per-layer rates for ``layerwise``/``random`` at a fixed rate."""
    if config.strategy in ("layerwise", "random") and config.density is None:
        return lth_rates(mask, config.rate, conv_rate=config.conv_rate, output_rate=config.output_rate)
    return None


def search_ticket(
    config: SearchConfig,
    task_data: TaskData,
    *,
    device: str | torch.device = "cpu",
    resume: ResumePoint | None = None,
    on_level: Callable[[LevelResult], None] | None = None,
    on_progress: ProgressFn | None = None,
    on_eval: EvalFn | None = None,
) -> list[LevelResult]:
    """Run the search ``config`` describes on ``task_data``; returns the levels
    trained, in order.

    IMP (``layerwise``, ``global``, ``random``): levels ``0..config.levels``; each trains
    the masked network from its reset point under ``config.recipe``, then prunes by
    final-weight magnitude (only ``layers`` minus ``exclude``). The reset point is
    ``generate_init(architecture, task, scheme, seed)``, or with ``rewind_step > 0`` the
    weights after that many steps of the dense run. ``random`` prunes at random with
    seed ``seed + level``. At init (``snip``, ``synflow``): the init is pruned to
    ``density`` and trained once (level 0); ``levels`` and the rates are ignored.

    ``controls`` also trains, at every level below density 1, the ``reinit`` and
    ``random_mask`` controls of ``verify_ticket`` (with ``control_seed``). ``resume``
    starts at a level saved from an earlier ``LevelResult`` (``next_mask``/
    ``next_init``). ``on_level`` is called with each result as soon as it exists;
    ``on_progress(level, run, step, total)`` and ``on_eval(level, run, step,
    accuracy)`` follow training (run is ``ticket``, ``reinit`` or ``random_mask``). What
    a callback raises stops the search and propagates.

    Raises:
        InvalidPruningError: an unknown strategy or layer, or a density the strategy
            cannot use; ``ValueError``: ``rewind_step`` beyond the recipe's steps.
    """
    c, spec = config, task_data.spec
    chosen = get_strategy(c.strategy)
    if c.rewind_step > c.recipe.steps:
        raise ValueError(f"rewind_step must be in [0, {c.recipe.steps}], got {c.rewind_step}")
    info = describe(c.architecture, spec.input_shape, spec.num_classes)
    runner = _Runner(c.architecture, task_data, spec, c.recipe, device, on_progress, on_eval)
    ctx = PruneContext(
        layers=c.layers, exclude=c.exclude, output_rate=c.output_rate, layer_rates=_layer_rates(c, dense_mask(info)),
        seed=c.seed, model=runner.model(), input_shape=spec.input_shape, data_x=task_data.x_train,
        data_y=task_data.y_train, device=device,
    )  # fmt: skip
    if resume is not None:
        start, mask, reset_to = resume.level, resume.mask, resume.init
    else:
        start, mask = 0, dense_mask(info)
        reset_to = generate_init(c.architecture, spec, c.scheme, c.seed)
    levels, rate = c.levels, c.rate
    if chosen.at_init:
        if c.density is None:
            raise InvalidPruningError(f"{c.strategy} prunes at init: give a target density")
        if c.rewind_step:
            raise InvalidPruningError(f"{c.strategy} prunes the init: rewinding does not apply")
        levels = 0
        if resume is None:
            mask = prune_to_density(c.strategy, reset_to, mask, c.density, ctx)
    elif c.density is not None:
        if levels < 1:
            raise InvalidPruningError("a target density needs levels >= 1")
        rate = 1.0 - c.density ** (1.0 / levels)

    results: list[LevelResult] = []
    for level in range(start, levels + 1):
        capture = c.rewind_step if level == 0 and c.rewind_step > 0 else None
        model, trained = runner.run(level, "ticket", reset_to, mask, capture)
        report = sparsity_report(mask, info)
        ctrl = _controls(runner, level, c.scheme, reset_to, mask, c.control_seed) if c.controls and report.density < 1 else {}
        final = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        level_ctx = dataclasses.replace(ctx, seed=c.seed + level)
        next_mask = chosen.prune(final, mask, rate, level_ctx) if not chosen.at_init else None
        captured = trained.captured
        result = LevelResult(
            level=level, mask=mask, init=reset_to, test_accuracy=trained.test_accuracy,
            density=report.density, curve=trained.curve, controls=ctrl, next_mask=next_mask,
            next_init=captured if captured is not None else reset_to,
            seconds=trained.seconds,
        )  # fmt: skip
        results.append(result)
        if on_level is not None:
            on_level(result)
        if next_mask is not None and result.next_init is not None:
            mask, reset_to = next_mask, result.next_init
    return results
