"""How much does ``lottery.training.train`` cost over a plain PyTorch loop?

Trains LeNet-300-100 on Fashion-MNIST (random tensors of the same shape when the data
is absent) with Adam, batch 60, for ``--steps`` steps, twice per round: once through
``lottery.training.train`` with a ~20%-density ticket mask, once through the plain loop
below (same init, same index-drawn batches from the same seeded generator, no mask).
Eval is disabled in both (``eval_every=0`` keeps only the final eval, which the plain
loop also does). Rounds alternate the two and the best time of each is kept, so a
noisy shared machine hurts both alike. Prints steps/s of each and the ratio
(goal: >= 0.95).

    python bench/train_loop.py [--steps 2000] [--device cpu] [--rounds 3] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

# Run as a script (`python bench/train_loop.py`), sys.path[0] is bench/; make the repo
# importable even when the project is not pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lottery.architectures import build_model, describe  # noqa: E402
from lottery.init import generate_init  # noqa: E402
from lottery.masks import random_mask_like  # noqa: E402
from lottery.tasks import TaskData, get_task, is_available, load_task  # noqa: E402
from lottery.training import Recipe, evaluate, train  # noqa: E402

ARCH = "lenet_300_100"


def fashion_or_random(device: str) -> tuple[TaskData, str]:
    spec = get_task("fashion-mnist")
    if is_available("fashion-mnist"):
        return load_task("fashion-mnist", device=device), "fashion-mnist"
    g = torch.Generator().manual_seed(0)
    data = TaskData(
        spec=spec,
        x_train=torch.rand(spec.train_size, *spec.input_shape, generator=g).to(device),
        y_train=torch.randint(0, 10, (spec.train_size,), generator=g).to(device),
        x_test=torch.rand(spec.test_size, *spec.input_shape, generator=g).to(device),
        y_test=torch.randint(0, 10, (spec.test_size,), generator=g).to(device),
        fingerprint="random",
    )
    return data, "RANDOM tensors (fashion-mnist not found; set NIRVANA_DATA_DIR)"


def plain_loop(model: nn.Module, data: TaskData, recipe: Recipe, device: torch.device) -> float:
    """The baseline: what anyone would write by hand. Returns final test accuracy."""
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: torch's default)"
    )
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    data, source = fashion_or_random(args.device)
    spec = data.spec
    info = describe(ARCH, spec.input_shape, spec.num_classes)
    init = generate_init(ARCH, spec, "kaiming_normal", 0)
    # A mask at 20% density in every layer (a random one: the cost does not depend on
    # which weights survive).
    dense = {p.name: torch.zeros(p.shape, dtype=torch.bool) for p in info.parameters if p.prunable}
    for m in dense.values():
        m.view(-1)[: max(1, m.numel() // 5)] = True
    mask = random_mask_like(dense, seed=0)
    recipe = Recipe(optimizer="adam", lr=1.2e-3, batch_size=60, steps=args.steps)
    warm = recipe.model_copy(update={"steps": min(200, args.steps)})

    def fresh() -> nn.Module:
        model = build_model(ARCH, spec.input_shape, spec.num_classes)
        model.load_state_dict(init)
        return model.to(device)

    def run_ours(r: Recipe) -> tuple[float, float]:
        model = fresh()
        sync(device)
        t = time.perf_counter()
        acc = train(model, data, r, mask=mask, device=device, eval_every=0).test_accuracy
        sync(device)
        return time.perf_counter() - t, acc

    def run_plain(r: Recipe) -> tuple[float, float]:
        model = fresh()
        sync(device)
        t = time.perf_counter()
        acc = plain_loop(model, data, r, device)
        sync(device)
        return time.perf_counter() - t, acc

    run_ours(warm), run_plain(warm)
    ours, plain = [], []
    for _ in range(args.rounds):
        ours.append(run_ours(recipe))
        plain.append(run_plain(recipe))
    t_ours, acc_ours = min(ours)
    t_plain, acc_plain = min(plain)

    print(f"data: {source}; device: {device}; {ARCH}, Adam, batch 60, {args.steps} steps, "
          f"best of {args.rounds}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"plain loop        : {args.steps / t_plain:8.1f} steps/s  (dense, test acc {acc_plain:.4f})")
    print(f"lottery.train     : {args.steps / t_ours:8.1f} steps/s  (20% mask, test acc {acc_ours:.4f})")
    print(f"ratio (train/plain): {t_plain / t_ours:.3f}  (goal >= 0.95)")


if __name__ == "__main__":
    main()
