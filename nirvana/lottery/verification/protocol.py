"""The verification protocol: retrain a ticket with three controls, R times each.

Four arms, each trained ``replicates`` (R) times under the same recipe:

- ``ticket``: the mask on the ticket's init;
- ``reinit``: the mask on a fresh init of the same scheme, a new one per replicate
  (never equal to the ticket's init);
- ``random_mask``: a random mask with the same per-layer counts on the ticket's init,
  a new one per replicate;
- ``dense``: no mask, on the ticket's init.

Replicate ``r`` of every arm uses the same data order. Seeds are derived from the
ticket's init digest and ``control_seed`` (``derive_seed``), so a verification is
repeatable; replicate 0 is the single run of the protocol before replicates (the
recipe's own ``data_seed``, the reinit and random-mask seeds ``derive_seed("reinit" |
"random_mask", ...)``), replicate ``r >= 1`` uses the labels ``data:r``, ``reinit:r``
and ``random_mask:r``.

All runs are planned first (``plan_runs``, a list of ``RunSpec``) and trained by one
call (``train_runs``), so a trainer that trains many runs at once can take its place.
From two ticket replicates, ``stability.instability`` measures the error barrier, its
11 points evaluated together when the runs train together (``execution.choose_batched``
under the same ``ExecutionOptions.batching``, on the same device) and one at a time
otherwise; the verdict is ``verdict.decide``'s. ``VerificationResult.to_dict`` is result schema 2
(docs/verification.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from nirvana.lottery.models.architectures import build_model, describe
from nirvana.lottery.tickets.digests import tensors_digest
from nirvana.lottery.models.init import generate_distinct_init
from nirvana.lottery.pruning.masks import random_mask_like, sparsity_report
from nirvana.lottery.data.tasks import TaskData, TaskSpec
from nirvana.lottery.training.execution import Execution, ExecutionOptions, RunInput, choose_batched, train_many
from nirvana.lottery.training.loop import TrainResult
from nirvana.lottery.training.recipes import Recipe
from nirvana.lottery.verification.stability import instability
from nirvana.lottery.verification.verdict import Decision, Summary, decide

RUN_NAMES = ("ticket", "reinit", "random_mask", "dense")
#: The ``schema`` of what ``VerificationResult.to_dict`` writes.
RESULT_SCHEMA = 2


def pick_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def describe_device(device: str | torch.device) -> str:
    """``"cpu"`` or ``"cuda:0 (NVIDIA H200)"``: what a verification records."""
    dev = torch.device(device)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(dev)


def derive_seed(label: str, digest: str, control_seed: int) -> int:
    """A 63-bit seed from a label, the ticket's init digest and ``control_seed``:
    distinct runs (and distinct tickets) get unrelated controls, reproducibly."""
    h = hashlib.sha256(f"{label}:{digest}:{control_seed}".encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1


@dataclass(frozen=True)
class RunSpec:
    """One run of a verification: an arm's replicate, everything needed to train it.

    ``recipe`` carries the replicate's ``data_seed``; ``init_seed`` is the reinit's init
    seed, ``mask_seed`` the random mask's seed (None where the arm has none)."""

    arm: str
    replicate: int
    init: Mapping[str, torch.Tensor] = field(repr=False)
    mask: Mapping[str, torch.Tensor] | None = field(repr=False)
    recipe: Recipe
    density: float
    init_seed: int | None = None
    mask_seed: int | None = None


@dataclass(frozen=True)
class TrainedRun:
    """A run's record and its final weights (a CPU ``state_dict``)."""

    spec: RunSpec
    result: TrainResult
    final: dict[str, torch.Tensor] = field(repr=False)
    #: How it was trained (batched or not, precision); ``None`` from other trainers.
    execution: Execution | None = None


#: ``train_runs``'s signature: the seam where a trainer of many runs at once plugs in.
TrainRuns = Callable[..., list[TrainedRun]]


def _replicate_seed(label: str, r: int, digest: str, control_seed: int) -> int:
    return derive_seed(label if r == 0 else f"{label}:{r}", digest, control_seed)


def plan_runs(
    *, architecture: str, task_spec: TaskSpec, init: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor],
    recipe: Recipe, scheme: str, replicates: int, control_seed: int = 1,
) -> list[RunSpec]:
    """Every run of a verification, replicate by replicate, arms in ``RUN_NAMES`` order."""
    if replicates < 1:
        raise ValueError("a verification needs at least one replicate")
    info = describe(architecture, task_spec.input_shape, task_spec.num_classes)
    digest = tensors_digest(init)
    density = sparsity_report(mask, info).density
    runs: list[RunSpec] = []
    for r in range(replicates):
        data_seed = recipe.data_seed if r == 0 else _replicate_seed("data", r, digest, control_seed)
        rr = recipe.model_copy(update={"data_seed": data_seed})
        reinit_seed, reinit = generate_distinct_init(
            architecture, task_spec, scheme, _replicate_seed("reinit", r, digest, control_seed), unlike=init
        )
        mask_seed = _replicate_seed("random_mask", r, digest, control_seed)
        runs += [
            RunSpec("ticket", r, init, mask, rr, density),
            RunSpec("reinit", r, reinit, mask, rr, density, init_seed=reinit_seed),
            RunSpec("random_mask", r, init, random_mask_like(mask, mask_seed), rr, density, mask_seed=mask_seed),
            RunSpec("dense", r, init, None, rr, 1.0),
        ]
    return runs


def train_runs(
    architecture: str, task_spec: TaskSpec, task_data: TaskData, runs: list[RunSpec], *,
    device: str | torch.device = "cpu", on_progress: Callable[[float], None] | None = None,
    options: ExecutionOptions | None = None,
) -> list[TrainedRun]:
    """Train every run of ``runs`` and return them in order: together or one at a time,
    as ``nirvana.lottery.training.execution.train_many`` decides under ``options``;
    every ``TrainedRun.execution`` records what it chose.

    ``on_progress(fraction)`` reports progress in [0, 1] over all runs; an exception it
    raises stops training and propagates (cancellation)."""
    models = []
    for run in runs:
        model = build_model(architecture, task_spec.input_shape, task_spec.num_classes)
        model.load_state_dict(dict(run.init))
        models.append(model)
    inputs = [RunInput(m, run.mask, run.recipe) for m, run in zip(models, runs, strict=True)]
    results, execution = train_many(inputs, task_data, device=device, options=options, on_progress=on_progress)
    return [
        TrainedRun(run, result, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, execution)
        for run, result, model in zip(runs, results, models, strict=True)
    ]


@dataclass(frozen=True)
class VerificationResult:
    """The record of one verification; ``to_dict()`` is result schema 2, JSON-serialisable."""

    runs: list[TrainedRun]
    decision: Decision
    instability: float | None
    claimed_accuracy: float
    claimed_at: str
    dataset_fingerprint: str
    torch_version: str
    device: str
    task: str
    recipe: Recipe

    def arm(self, name: str) -> list[TrainedRun]:
        return [run for run in self.runs if run.spec.arm == name]

    @property
    def verdict(self) -> str:
        return self.decision.verdict

    def to_dict(self) -> dict[str, Any]:
        d = self.decision
        return {
            "schema": RESULT_SCHEMA,
            "verdict": d.verdict,
            "reasons": d.reasons,
            "reproduced": d.reproduced,
            "matches_dense": d.matches_dense,
            "beats_reinit": d.beats_reinit,
            "beats_random_mask": d.beats_random_mask,
            "single_replicate": d.single_replicate,
            "p_values": d.p_values,
            "instability": self.instability,
            "tolerance": d.tolerance,
            "replicates": len(self.arm("ticket")),
            "claimed_accuracy": self.claimed_accuracy,
            "claimed_at": self.claimed_at,
            "arms": {name: _arm_dict(self.arm(name)) for name in RUN_NAMES},
            "dataset_fingerprint": self.dataset_fingerprint,
            "torch_version": self.torch_version,
            "device": self.device,
            "task": self.task,
            "recipe": self.recipe.model_dump(mode="json"),
            "execution": self.runs[0].execution.to_dict() if self.runs and self.runs[0].execution else None,
        }


def _arm_dict(runs: list[TrainedRun]) -> dict[str, Any]:
    return {
        "density": runs[0].spec.density,
        "test_accuracy": Summary.of([r.result.test_accuracy for r in runs]).as_dict(),
        "early_stop_test_accuracy": Summary.of([r.result.early_stop.test_accuracy for r in runs]).as_dict(),
        "replicates": [_replicate_dict(r) for r in runs],
    }


def _replicate_dict(run: TrainedRun) -> dict[str, Any]:
    res, spec = run.result, run.spec
    d: dict[str, Any] = {
        "seed": spec.recipe.data_seed,
        "test_accuracy": res.test_accuracy,
        "early_stop": {
            "step": res.early_stop.step,
            "validation_accuracy": res.early_stop.validation_accuracy,
            "test_accuracy": res.early_stop.test_accuracy,
        },
        "accuracy_at_init": res.accuracy_at_init,
        "curve": [[s, a] for s, a in res.curve],
        "seconds": res.seconds,
    }
    if spec.init_seed is not None:
        d["init_seed"] = spec.init_seed
    if spec.mask_seed is not None:
        d["mask_seed"] = spec.mask_seed
    return d


def ticket_barrier(
    architecture: str, task_spec: TaskSpec, task_data: TaskData, a: Mapping[str, torch.Tensor],
    b: Mapping[str, torch.Tensor], *, device: str | torch.device = "cpu", options: ExecutionOptions | None = None,
) -> float:
    """``stability.instability`` between two replicates' final weights ``a`` and ``b`` on
    ``device``: its points evaluated together when ``options.batching`` batches the
    runs of this architecture on this device (``execution.choose_batched``), one at a
    time otherwise."""
    dev = torch.device(device)
    model = build_model(architecture, task_spec.input_shape, task_spec.num_classes).to(dev)
    # The training rule: where vmapped networks run faster, so do the barrier's points.
    batched, _rule = choose_batched((options or ExecutionOptions()).batching, dev, model)
    return instability(model, a, b, task_data, batched=batched)


def verify_ticket(
    *,
    architecture: str,
    task_data: TaskData,
    task_spec: TaskSpec,
    init: Mapping[str, torch.Tensor],
    mask: Mapping[str, torch.Tensor],
    recipe: Recipe,
    claimed_accuracy: float,
    scheme: str,
    replicates: int = 3,
    claimed_at: str = "final",
    device: str | torch.device = "cpu",
    control_seed: int = 1,
    on_progress: Callable[[float], None] | None = None,
    trainer: TrainRuns = train_runs,
    options: ExecutionOptions | None = None,
) -> VerificationResult:
    """Plan, train (one ``trainer`` call) and judge a verification (module docstring).

    ``init`` and ``mask`` are assumed validated (``prepare_ticket`` does it).
    ``claimed_at`` is ``"final"`` or ``"early_stop"``: which figure the claim is of.
    ``on_progress(fraction)`` reports progress in [0, 1]; an exception it raises stops
    the verification and propagates (cancellation). ``options``: how the runs execute
    (batched or not, precision; ``nirvana.lottery.training.execution``); its
    ``batching`` rule also decides whether the barrier's points are evaluated together.
    """
    runs = plan_runs(
        architecture=architecture, task_spec=task_spec, init=init, mask=mask, recipe=recipe, scheme=scheme,
        replicates=replicates, control_seed=control_seed,
    )  # fmt: skip
    trained = trainer(architecture, task_spec, task_data, runs, device=device, on_progress=on_progress,
                      options=options)
    by_arm = {name: [t for t in trained if t.spec.arm == name] for name in RUN_NAMES}
    tickets = by_arm["ticket"]
    claimed_values = [
        t.result.early_stop.test_accuracy if claimed_at == "early_stop" else t.result.test_accuracy for t in tickets
    ]
    decision = decide(
        {name: [t.result.early_stop.test_accuracy for t in runs_] for name, runs_ in by_arm.items()},
        claimed=claimed_accuracy, claimed_value=claimed_values, n_test=int(task_data.y_test.shape[0]),
    )  # fmt: skip
    barrier = None
    if len(tickets) >= 2:
        barrier = ticket_barrier(architecture, task_spec, task_data, tickets[0].final, tickets[1].final,
                                 device=device, options=options)
    return VerificationResult(
        runs=trained, decision=decision, instability=barrier, claimed_accuracy=claimed_accuracy,
        claimed_at=claimed_at, dataset_fingerprint=task_data.fingerprint, torch_version=torch.__version__,
        device=describe_device(device), task=task_spec.name, recipe=recipe,
    )  # fmt: skip
