"""The verification protocol: retrain a ticket with three controls and give a verdict.

Four runs, same recipe, same data order:

- ``ticket``: the mask on the ticket's init;
- ``reinit``: the mask on a fresh init of the same scheme (a seed derived from the
  ticket's init digest and ``control_seed``, never equal to the ticket's init);
- ``random_mask``: a random mask with the same per-layer counts on the ticket's init;
- ``dense``: no mask, on the ticket's init.

``reproduced``: ``|ticket - claimed| <= tolerance``. ``winning``: the ticket is within
``tolerance`` of dense and strictly beats both controls. The tolerance is
``max(0.01, 2 * sqrt(p (1 - p) / n_test))`` with ``p`` the claimed accuracy: two
binomial standard errors of a test-set accuracy, at least one point.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from nirvana.lottery.models.architectures import build_model, describe
from nirvana.lottery.tickets.digests import tensors_digest
from nirvana.lottery.models.init import generate_init
from nirvana.lottery.pruning.masks import random_mask_like, sparsity_report
from nirvana.lottery.data.tasks import TaskData, TaskSpec
from nirvana.lottery.training.loop import train
from nirvana.lottery.training.recipes import Recipe

RUN_NAMES = ("ticket", "reinit", "random_mask", "dense")


def tolerance(claimed: float, n_test: int) -> float:
    """``max(0.01, 2 * sqrt(p (1 - p) / n))``; ``p`` clamped to [0, 1]."""
    p = min(1.0, max(0.0, claimed))
    return max(0.01, 2.0 * math.sqrt(p * (1.0 - p) / max(1, n_test)))


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
class RunResult:
    test_accuracy: float
    curve: list[tuple[int, float]]
    density: float
    seconds: float


@dataclass(frozen=True)
class VerificationResult:
    """The record of one verification; ``to_dict()`` is JSON-serialisable."""

    runs: dict[str, RunResult]
    tolerance: float
    claimed_accuracy: float
    reproduced: bool
    winning: bool
    dataset_fingerprint: str
    torch_version: str
    device: str
    task: str
    recipe: Recipe
    reinit_seed: int
    random_mask_seed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": {
                name: {**asdict(run), "curve": [[s, a] for s, a in run.curve]}
                for name, run in self.runs.items()
            },
            "tolerance": self.tolerance,
            "claimed_accuracy": self.claimed_accuracy,
            "reproduced": self.reproduced,
            "winning": self.winning,
            "dataset_fingerprint": self.dataset_fingerprint,
            "torch_version": self.torch_version,
            "device": self.device,
            "task": self.task,
            "recipe": self.recipe.model_dump(mode="json"),
            "reinit_seed": self.reinit_seed,
            "random_mask_seed": self.random_mask_seed,
        }


def _reinit(
    architecture: str, task_spec: TaskSpec, scheme: str, init: Mapping[str, torch.Tensor],
    digest: str, control_seed: int,
) -> tuple[int, dict[str, torch.Tensor]]:
    seed = derive_seed("reinit", digest, control_seed)
    while True:  # astronomically unlikely to loop, but "distinct" is the contract
        fresh = generate_init(architecture, task_spec, scheme, seed)
        if not all(torch.equal(fresh[k], init[k].to(fresh[k].dtype)) for k in fresh):
            return seed, fresh
        seed += 1


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
    device: str | torch.device = "cpu",
    control_seed: int = 1,
    on_progress: Callable[[float], None] | None = None,
) -> VerificationResult:
    """Run the four runs (see the module docstring) and return the verdict.

    ``init`` and ``mask`` are assumed validated (``prepare_ticket`` does it).
    ``on_progress(fraction)`` reports progress in [0, 1] over all runs; an exception
    it raises stops the verification and propagates (cancellation).
    """
    info = describe(architecture, task_spec.input_shape, task_spec.num_classes)
    digest = tensors_digest(init)
    reinit_seed, reinit = _reinit(architecture, task_spec, scheme, init, digest, control_seed)
    random_seed = derive_seed("random_mask", digest, control_seed)
    density = sparsity_report(mask, info).density
    plans: list[tuple[str, Mapping[str, torch.Tensor], Mapping[str, torch.Tensor] | None, float]] = [
        ("ticket", init, mask, density),
        ("reinit", reinit, mask, density),
        ("random_mask", init, random_mask_like(mask, random_seed), density),
        ("dense", init, None, 1.0),
    ]
    runs: dict[str, RunResult] = {}
    for i, (name, weights, run_mask, run_density) in enumerate(plans):
        model = build_model(architecture, task_spec.input_shape, task_spec.num_classes)
        model.load_state_dict(dict(weights))

        def progress(step: int, total: int, i: int = i) -> None:
            if on_progress is not None:
                on_progress((i + step / total) / len(plans))

        result = train(model, task_data, recipe, mask=run_mask, device=device, on_progress=progress)
        runs[name] = RunResult(result.test_accuracy, result.curve, run_density, result.seconds)

    tol = tolerance(claimed_accuracy, int(task_data.y_test.shape[0]))
    ticket = runs["ticket"].test_accuracy
    return VerificationResult(
        runs=runs,
        tolerance=tol,
        claimed_accuracy=claimed_accuracy,
        reproduced=abs(ticket - claimed_accuracy) <= tol,
        winning=(
            ticket >= runs["dense"].test_accuracy - tol
            and ticket > runs["reinit"].test_accuracy
            and ticket > runs["random_mask"].test_accuracy
        ),
        dataset_fingerprint=task_data.fingerprint,
        torch_version=torch.__version__,
        device=describe_device(device),
        task=task_spec.name,
        recipe=recipe,
        reinit_seed=reinit_seed,
        random_mask_seed=random_seed,
    )
