"""How much does ``nirvana.lottery.training.loop.train`` cost over a plain PyTorch loop?

For each model of ``--models``, trains it twice per round: once through
``nirvana.lottery.training.loop.train`` with a ~20%-density ticket mask, once through the plain loop
below (same init, same index-drawn batches from the same seeded generator, no mask).
Eval is disabled in both (``eval_every=0`` keeps only the final eval, which the plain
loop also does). Rounds alternate the two and the best time of each is kept, so a
noisy shared machine hurts both alike. Prints steps/s of each and the ratio
(goal: >= 0.95). On the CPU it also prints the ratio of process CPU times, which other
jobs on a shared machine disturb far less than wall time (use ``--threads 1``).

- ``lenet_300_100``: Fashion-MNIST (random tensors of its shape when absent), Adam
  1.2e-3, batch 60 (the LTH paper's LeNet recipe);
- ``conv4``: random CIFAR-shaped tensors (3x32x32, 10 classes, 2,048 train / 256
  test), Adam 3e-4, batch 60 (the LTH paper's Conv-4 recipe);
- ``resnet20``: the same tensors, SGD 0.1, momentum 0.9, weight decay 1e-4, batch 128
  (OpenLTH's ResNet-20 recipe, BatchNorm in train mode).

    python bench/train_loop.py [--models lenet_300_100,conv4,resnet20] [--steps 2000]
        [--conv-steps 5] [--device cpu] [--rounds 3] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

# Run as a script (`python bench/train_loop.py`), sys.path[0] is bench/; make the repo
# importable even when the project is not pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nirvana.lottery.models.architectures import build_model, describe  # noqa: E402
from nirvana.lottery.models.init import generate_init  # noqa: E402
from nirvana.lottery.pruning.masks import random_mask_like  # noqa: E402
from nirvana.lottery.training.recipes import Recipe  # noqa: E402
from nirvana.lottery.data.tasks import TaskData, TaskSpec, get_task, is_available, load_task  # noqa: E402
from nirvana.lottery.training.loop import evaluate, train  # noqa: E402

MODELS = ("lenet_300_100", "conv4", "resnet20")
#: Random CIFAR-shaped data: small enough for memory, big enough for several batches.
#: A small test set: the final eval of both loops would otherwise cost as much as the
#: few timed steps of a conv net on the CPU.
CIFAR_TRAIN, CIFAR_TEST = 2048, 64


@dataclass(frozen=True)
class Case:
    """One model to time: its data, recipe (steps set later) and a description."""

    arch: str
    data: TaskData
    recipe: Recipe
    source: str


def random_data(spec: TaskSpec, n_train: int, n_test: int, device: str, n_val: int = 0) -> TaskData:
    """Random inputs and labels shaped like ``spec``'s, from a fixed seed (the benches
    time training, so the data need not mean anything); ``n_val`` validation examples,
    drawn after the rest, for loops that early-stop."""
    g = torch.Generator().manual_seed(0)
    return TaskData(
        spec=spec,
        x_train=torch.rand(n_train, *spec.input_shape, generator=g).to(device),
        y_train=torch.randint(0, spec.num_classes, (n_train,), generator=g).to(device),
        x_test=torch.rand(n_test, *spec.input_shape, generator=g).to(device),
        y_test=torch.randint(0, spec.num_classes, (n_test,), generator=g).to(device),
        fingerprint="random",
        x_val=torch.rand(n_val, *spec.input_shape, generator=g).to(device),
        y_val=torch.randint(0, spec.num_classes, (n_val,), generator=g).to(device),
    )


def make_case(arch: str, device: str) -> Case:
    if arch == "lenet_300_100":
        spec = get_task("fashion-mnist")
        recipe = Recipe(optimizer="adam", lr=1.2e-3, batch_size=60, steps=1)
        data_dir = os.environ.get("NIRVANA_DATA_DIR")  # as the CLI and the server read it
        if is_available("fashion-mnist", data_dir):
            return Case(arch, load_task("fashion-mnist", data_dir, device=device), recipe, "fashion-mnist")
        data = random_data(spec, spec.train_size, spec.test_size, device)
        return Case(arch, data, recipe, "RANDOM fashion-mnist-shaped tensors (set NIRVANA_DATA_DIR)")
    spec = get_task("cifar10")
    data = random_data(spec, CIFAR_TRAIN, CIFAR_TEST, device)
    source = f"RANDOM cifar10-shaped tensors ({CIFAR_TRAIN}/{CIFAR_TEST})"
    if arch == "conv4":
        return Case(arch, data, Recipe(optimizer="adam", lr=3e-4, batch_size=60, steps=1), source)
    if arch == "resnet20":
        recipe = Recipe(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, batch_size=128, steps=1)
        return Case(arch, data, recipe, source)
    raise SystemExit(f"unknown model {arch!r}; choose from {', '.join(MODELS)}")


def plain_loop(model: nn.Module, data: TaskData, recipe: Recipe, device: torch.device) -> float:
    """The baseline: what anyone would write by hand. Returns final test accuracy."""
    if recipe.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
        )
    else:
        opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(recipe.data_seed)
    n, b = data.x_train.shape[0], recipe.batch_size
    batches: list[torch.Tensor] = []
    model.train()
    for _ in range(recipe.steps):
        if not batches:
            perm = torch.randperm(n, generator=g).to(device)
            batches = list(perm[: (n // b) * b].split(b))[::-1]
        idx = batches.pop()
        loss = loss_fn(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return evaluate(model, data.x_test, data.y_test)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ticket_mask(arch: str, spec: TaskSpec) -> dict[str, torch.Tensor]:
    """20% density in every prunable layer, at random positions (the cost does not
    depend on which weights survive)."""
    info = describe(arch, spec.input_shape, spec.num_classes)
    counts = {p.name: torch.zeros(p.shape, dtype=torch.bool) for p in info.parameters if p.prunable}
    for m in counts.values():
        m.view(-1)[: max(1, m.numel() // 5)] = True
    return random_mask_like(counts, seed=0)


def time_case(case: Case, steps: int, rounds: int, device: torch.device) -> dict[str, float]:
    """Best-of-``rounds`` steps/s (wall and process CPU time) of both loops, after a warm-up."""
    spec = case.data.spec
    init = generate_init(case.arch, spec, "kaiming_normal", 0)
    mask = ticket_mask(case.arch, spec)
    recipe = case.recipe.model_copy(update={"steps": steps})
    warm = recipe.model_copy(update={"steps": max(1, min(200, steps // 10))})

    def fresh() -> nn.Module:
        model = build_model(case.arch, spec.input_shape, spec.num_classes)
        model.load_state_dict(init)
        return model.to(device)

    def timed(run: Callable[[nn.Module, Recipe], float], r: Recipe) -> tuple[float, float]:
        model = fresh()
        sync(device)
        t, c = time.perf_counter(), time.process_time()
        run(model, r)
        sync(device)
        return time.perf_counter() - t, time.process_time() - c

    def ours(m: nn.Module, r: Recipe) -> float:
        return train(m, case.data, r, mask=mask, device=device, eval_every=0).test_accuracy

    def plain(m: nn.Module, r: Recipe) -> float:
        return plain_loop(m, case.data, r, device)

    timed(ours, warm), timed(plain, warm)
    t_ours, t_plain = [], []
    for _ in range(rounds):
        t_ours.append(timed(ours, recipe))
        t_plain.append(timed(plain, recipe))
    to, tp = min(w for w, _ in t_ours), min(w for w, _ in t_plain)
    co, cp = min(c for _, c in t_ours), min(c for _, c in t_plain)
    return {"ours": steps / to, "plain": steps / tp, "ratio": tp / to, "cpu_ratio": cp / co}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--steps", type=int, default=2000, help="steps for lenet_300_100")
    parser.add_argument("--conv-steps", type=int, default=5, help="steps for conv4 and resnet20")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    archs = [a.strip() for a in args.models.split(",") if a.strip()]
    cases = [make_case(a, args.device) for a in archs]  # fail on a bad name before timing

    print(f"device: {device}; torch {torch.__version__}; {torch.get_num_threads()} threads; "
          f"best of {args.rounds}; lottery.train with a 20% mask, plain loop dense")
    start = time.perf_counter()
    print(f"{'model':<15} {'steps':>6} {'plain/s':>9} {'train/s':>9} {'ratio':>6} {'cpu ratio':>9}  data, recipe")
    for case in cases:
        steps = args.steps if case.arch.startswith("lenet") else args.conv_steps
        r = time_case(case, steps, args.rounds, device)
        rec = case.recipe
        cpu_ratio = f"{r['cpu_ratio']:>9.3f}" if device.type == "cpu" else f"{'-':>9}"
        print(f"{case.arch:<15} {steps:>6} {r['plain']:>9.1f} {r['ours']:>9.1f} {r['ratio']:>6.3f} {cpu_ratio}  "
              f"{case.source}; {rec.optimizer} lr {rec.lr} batch {rec.batch_size}", flush=True)
    print(f"ratio = plain time / train time (goal >= 0.95); wall clock of this run: "
          f"{time.perf_counter() - start:.0f} s, process CPU {time.process_time():.0f} s")


if __name__ == "__main__":
    main()
