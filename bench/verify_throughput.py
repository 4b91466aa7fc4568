"""Is training a verification's runs together faster than one at a time, and does the
``auto`` rule pick the faster path?

For each model of ``--models``, one full verification's worth of runs: 4 arms (ticket,
reinit, random mask, dense) x ``--replicates`` (3) runs of a short recipe, every run
with its own init, mask and data order, as ``nirvana.lottery.training.execution.
train_many`` trains them. Timed in the same run, rounds alternating and the best of
each kept (a shared machine disturbs both alike):

- batched (``batching="on"``) and one at a time (``batching="off"``), wall seconds of
  the whole verification, and their ratio: training every run, then (with 2 or more
  replicates) the error barrier between ticket replicates 0 and 1 as the protocol
  measures it (``protocol.ticket_barrier``: its 11 points together on the batched
  path, one at a time on the other; the run-steps/s below count this time too);
- the plain single-run loop (``train``, one run, no eval) in steps/s, the baseline of
  the one-at-a-time path;
- which path ``auto`` chooses on this device, and its time over the faster one's
  (goal: >= 0.95).

Data: ``lenet_300_100`` on Fashion-MNIST (``/usr/share/datasets/fashion-mnist``; random
tensors of its shape when absent), Adam 1.2e-3, batch 60; ``conv4`` (Adam 3e-4,
batch 60) and ``resnet20`` (SGD 0.1, momentum 0.9, wd 1e-4, batch 128) on random
CIFAR-shaped tensors (3x32x32, 2,048 train / 256 test).

    python bench/verify_throughput.py [--models lenet_300_100,conv4,resnet20]
        [--lenet-steps 100] [--conv-steps 4] [--replicates 3] [--rounds 2]
        [--device cpu] [--threads N]
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nirvana.lottery.data.tasks import TaskData, TaskSpec, get_task, is_available, load_task  # noqa: E402
from nirvana.lottery.models.architectures import build_model, describe  # noqa: E402
from nirvana.lottery.models.init import generate_init  # noqa: E402
from nirvana.lottery.pruning.masks import dense_mask, random_mask_like  # noqa: E402
from nirvana.lottery.training.execution import (  # noqa: E402
    ExecutionOptions, RunInput, choose_batched, train_many,
)
from nirvana.lottery.training.loop import train  # noqa: E402
from nirvana.lottery.training.recipes import Recipe  # noqa: E402
from nirvana.lottery.verification.protocol import ticket_barrier  # noqa: E402
from train_loop import random_data  # noqa: E402  (bench/ is sys.path[0] when run)

MODELS = ("lenet_300_100", "conv4", "resnet20")
print = functools.partial(print, flush=True)  # noqa: A001  # progress shows while a slow case runs
CIFAR_TRAIN, CIFAR_TEST = 2048, 256


@dataclass(frozen=True)
class Case:
    arch: str
    spec: TaskSpec
    data: TaskData
    recipe: Recipe
    source: str


def make_case(arch: str, args: argparse.Namespace) -> Case:
    if arch.startswith("lenet"):
        spec = get_task("fashion-mnist")
        recipe = Recipe(optimizer="adam", lr=1.2e-3, batch_size=60, steps=args.lenet_steps)
        if is_available("fashion-mnist"):
            return Case(arch, spec, load_task("fashion-mnist", device=args.device), recipe, "fashion-mnist")
        return Case(arch, spec, random_data(spec, 60_000, 10_000, args.device, n_val=10_000), recipe, "random 1x28x28")
    spec = get_task("cifar10")
    data = random_data(spec, CIFAR_TRAIN, CIFAR_TEST, args.device, n_val=CIFAR_TEST)
    if arch == "conv4":
        recipe = Recipe(optimizer="adam", lr=3e-4, batch_size=60, steps=args.conv_steps)
    else:
        recipe = Recipe(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, batch_size=128,
                        steps=args.conv_steps)
    return Case(arch, spec, data, recipe, "random 3x32x32")


def verification_runs(case: Case, replicates: int) -> list[RunInput]:
    """4 arms x ``replicates``: a ~20%-density ticket, its reinit, a random mask, dense."""
    info = describe(case.arch, case.spec.input_shape, case.spec.num_classes)
    g = torch.Generator().manual_seed(1)
    mask = {k: torch.rand(v.shape, generator=g) < 0.2 for k, v in dense_mask(info).items()}
    runs = []
    for r in range(replicates):
        recipe = case.recipe.model_copy(update={"data_seed": r})
        for arm, seed, arm_mask in (("ticket", 0, mask), ("reinit", 100 + r, mask),
                                    ("random_mask", 0, random_mask_like(mask, 200 + r)), ("dense", 0, None)):
            model = build_model(case.arch, case.spec.input_shape, case.spec.num_classes)
            model.load_state_dict(generate_init(case.arch, case.spec, "kaiming_normal", seed))
            runs.append(RunInput(model, arm_mask, recipe))
    return runs


def time_verification(case: Case, batching: str, args: argparse.Namespace) -> float:
    runs = verification_runs(case, args.replicates)
    options = ExecutionOptions(batching=batching)  # type: ignore[arg-type]
    start = time.perf_counter()
    train_many(runs, case.data, device=args.device, options=options, eval_every=0)
    if args.replicates >= 2:  # runs[0] and runs[4]: the ticket's replicates 0 and 1, trained in place
        ticket_barrier(case.arch, case.spec, case.data, runs[0].model.state_dict(), runs[4].model.state_dict(),
                       device=args.device, options=options)
    return time.perf_counter() - start


def plain_steps_per_second(case: Case, args: argparse.Namespace) -> float:
    model = build_model(case.arch, case.spec.input_shape, case.spec.num_classes)
    start = time.perf_counter()
    result = train(model, case.data, case.recipe, device=args.device, eval_every=0)
    return result.steps / (time.perf_counter() - start)


def bench(arch: str, args: argparse.Namespace) -> bool:
    case = make_case(arch, args)
    best = {"on": float("inf"), "off": float("inf")}
    plain = 0.0
    for _ in range(args.rounds):
        for batching in ("on", "off"):
            best[batching] = min(best[batching], time_verification(case, batching, args))
        plain = max(plain, plain_steps_per_second(case, args))
    probe = build_model(case.arch, case.spec.input_shape, case.spec.num_classes)
    batched, rule = choose_batched("auto", torch.device(args.device), probe)
    chosen = best["on"] if batched else best["off"]
    ratio = min(best.values()) / chosen
    n = 4 * args.replicates
    print(f"{arch} ({case.source}, {case.recipe.optimizer}, batch {case.recipe.batch_size}, "
          f"{case.recipe.steps} steps, {n} runs):")
    print(f"  one verification: batched {best['on']:.2f} s, one at a time {best['off']:.2f} s, "
          f"batched/one-at-a-time speed-up {best['off'] / best['on']:.2f}x")
    print(f"  plain single-run loop: {plain:.1f} steps/s "
          f"({n * case.recipe.steps / best['off']:.1f} run-steps/s one at a time, "
          f"{n * case.recipe.steps / best['on']:.1f} batched)")
    ok = ratio >= 0.95
    print(f"  auto chooses {'batched' if batched else 'one at a time'} ({rule}): "
          f"{ratio:.2f}x the faster path [{'OK' if ok else 'BELOW 0.95'}]")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--lenet-steps", type=int, default=100)
    parser.add_argument("--conv-steps", type=int, default=4)
    parser.add_argument("--replicates", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    print(f"device {args.device} ({where}), torch {torch.__version__}, {torch.get_num_threads()} threads")
    results = [bench(arch, args) for arch in args.models.split(",")]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
