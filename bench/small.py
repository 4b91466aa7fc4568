"""Are small tickets small? Bits on the wire, and the compact model's speed on the CPU.

Tickets: LeNet-300-100 on Fashion-MNIST at about 20%, 5% and 2% of its weights, made
by one-shot layerwise magnitude pruning (the LTH paper's rates: the output layer at
half the hidden layers' pruning rate) of a network trained ``--pretrain`` steps from
its seed-0 init, the mask then applied to that init. The paper prunes a network
trained 50K iterations; the units a mask leaves alive stop changing much after ~10K
(648-107-31-10 at 2% after 10K, 592-106-27-10 after 35K, 695-140-36-10 after 1.5K),
hence the default. And one ticket as the paper finds them, by iterative magnitude
pruning (``--imp-steps`` of training from the init a round, 20% of each hidden layer's
remaining weights pruned a round, 10% of the output layer's, reset to the init) down
to 2%: its surviving weights spread over far more units; and a resnet20-shaped mask at
10% (magnitude of the seed-0 init, i.e. effectively random, layerwise; CIFAR-10
shapes; no training).

Table 1, bits per prunable weight on the wire (every file, biases included, divided by
the prunable weights): a dense fp32 checkpoint; today's ticket (mask.safetensors, one
byte per weight, + init.safetensors); the compact ticket (packed mask + kept init);
and the mask alone: packed, beside its per-layer entropy bound sum(n * H(p)) (goal:
packed / bound <= 1.3).

Table 2 (LeNet tickets): training steps/s (``nirvana.lottery.training.loop.train``,
Adam 1.2e-3, batch 60, the same seeded batches) of the masked dense network and of
the compact model (``compact(..., for_training=True)``, which trains exactly like the
masked one; its inputs, the 648 or so of 784 features it reads, gathered from the data
once, as ``nirvana train`` does, not from every batch), and inference steps/s (a
1,000-example batch of full inputs, eval mode), per second of
process CPU time, which other jobs on a shared machine disturb far less than wall
time. Rounds alternate the two and the best of each is kept, on ``--threads`` threads
(default 1: a laptop core; with more, CPU time adds the threads up). Goal: compact
training >= 2x masked-dense at 2%.

    python bench/small.py [--pretrain 10000] [--imp-steps 1500] [--steps 1000] [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nirvana.lottery.data.tasks import TaskData, get_task, load_task  # noqa: E402
from nirvana.lottery.models.architectures import build_model, describe  # noqa: E402
from nirvana.lottery.models.compact import compact  # noqa: E402
from nirvana.lottery.models.init import generate_init  # noqa: E402
from nirvana.lottery.pruning.imp import prune_layerwise  # noqa: E402
from nirvana.lottery.pruning.masks import dense_mask  # noqa: E402
from nirvana.lottery.tickets.compact import encode_init, encode_mask, entropy_bits  # noqa: E402
from nirvana.lottery.tickets.files import dump_tensors  # noqa: E402
from nirvana.lottery.tickets.manifest import file_metadata  # noqa: E402
from nirvana.lottery.training.loop import train  # noqa: E402
from nirvana.lottery.training.recipes import Recipe  # noqa: E402

LENET, TASK = "lenet_300_100", "fashion-mnist"
DENSITIES = (0.2, 0.05, 0.02)


def magnitude_mask(arch: str, weights: dict[str, torch.Tensor], density: float, shape: tuple[int, ...], classes: int) -> dict[str, torch.Tensor]:
    """Layerwise one-shot magnitude pruning to ``density``; the output layer keeps
    twice that (its pruning rate is half the others', as in the LTH paper)."""
    mask = dense_mask(describe(arch, shape, classes))
    out_rate = (1 - min(1.0, 2 * density))
    return prune_layerwise(weights, mask, 1 - density, output_rate=out_rate)


def imp_mask(data: TaskData, init: dict[str, torch.Tensor], density: float, steps: int, shape: tuple[int, ...], classes: int) -> dict[str, torch.Tensor]:
    """Iterative magnitude pruning with resetting to ``init`` (the LTH paper's rates)
    until at most ``density`` of the prunable weights remain."""
    mask = dense_mask(describe(LENET, shape, classes))
    while sum(int(m.sum()) for m in mask.values()) > density * sum(m.numel() for m in mask.values()):
        model = build_model(LENET, shape, classes)
        model.load_state_dict(init)
        train(model, data, Recipe(optimizer="adam", lr=1.2e-3, batch_size=60, steps=steps, data_seed=1), mask=mask, eval_every=-1)
        mask = prune_layerwise({k: v.detach() for k, v in model.state_dict().items()}, mask, 0.2, output_rate=0.1)
    return mask


def wire_row(label: str, arch: str, init: dict[str, torch.Tensor], mask: dict[str, torch.Tensor]) -> list[str]:
    meta = file_metadata(arch)
    n = sum(m.numel() for m in mask.values())
    kept = sum(int(m.sum()) for m in mask.values())
    dense = 32 * sum(t.numel() for t in init.values())
    today = 8 * (len(dump_tensors(mask, meta)) + len(dump_tensors(init, meta)))
    packed, kept_init = encode_mask(mask, meta), encode_init(init, mask, meta)
    bound = entropy_bits(mask)
    return [label, f"{kept / n:.1%}", f"{dense / n:.2f}", f"{today / n:.2f}", f"{8 * (len(packed) + len(kept_init)) / n:.3f}",
            f"{8 * len(packed) / n:.4f}", f"{bound / n:.4f}", f"{8 * len(packed) / bound:.3f}"]


def train_seconds(model: torch.nn.Module, mask: dict[str, torch.Tensor], data: TaskData, recipe: Recipe) -> float:
    """Process CPU seconds of one ``train`` run (one final eval included, for both)."""
    start = time.process_time()
    train(model, data, recipe, mask=mask, eval_every=-1)
    return time.process_time() - start


@torch.no_grad()
def infer_rate(model: torch.nn.Module, x: torch.Tensor, reps: int) -> float:
    """Forward passes of ``x`` per process CPU second."""
    model.eval()
    model(x)
    start = time.process_time()
    for _ in range(reps):
        model(x)
    return reps / (time.process_time() - start)


def speed_rows(data: TaskData, init: dict[str, torch.Tensor], masks: dict[str, dict[str, torch.Tensor]], args: argparse.Namespace) -> list[list[str]]:
    spec = get_task(TASK)
    shape, classes = tuple(spec.input_shape), spec.num_classes
    recipe = Recipe(optimizer="adam", lr=1.2e-3, batch_size=60, steps=args.steps, data_seed=0)
    x = data.x_test[:1000]
    rows = []
    for label, mask in masks.items():
        small = compact(LENET, shape, classes, init, mask, for_training=True)
        small_data = data.with_inputs(small.module().select_inputs)  # once, like compacting: not timed
        t_masked, t_compact, i_masked, i_compact = [], [], [], []
        for _ in range(args.rounds):
            big = build_model(LENET, shape, classes)
            big.load_state_dict(init)
            t_masked.append(train_seconds(big, mask, data, recipe))
            little = small.module(inputs_selected=True)
            t_compact.append(train_seconds(little, small.mask, small_data, recipe))
            i_masked.append(infer_rate(big, x, args.infer_reps))
            i_compact.append(infer_rate(small.module(), x, args.infer_reps))
        tm, tc = args.steps / min(t_masked), args.steps / min(t_compact)
        im, ic = max(i_masked), max(i_compact)
        widths = "-".join(str(len(small.config["input_index"])) if i == 0 else str(w)
                          for i, w in enumerate([0, *small.config["linears"]]))
        rows.append([label, widths, f"{small.parameters:,}", f"{tm:.0f}", f"{tc:.0f}", f"{tc / tm:.2f}x",
                     f"{im:.0f}", f"{ic:.0f}", f"{ic / im:.2f}x"])
    return rows


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pretrain", type=int, default=10_000, help="steps of dense training before magnitude pruning")
    parser.add_argument("--imp-steps", type=int, default=1500, help="training steps per round of iterative pruning")
    parser.add_argument("--steps", type=int, default=1000, help="training steps per timed run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--infer-reps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    spec = get_task(TASK)
    shape, classes = tuple(spec.input_shape), spec.num_classes
    data = load_task(TASK)
    init = generate_init(LENET, spec, "kaiming_normal", 0)
    trained = build_model(LENET, shape, classes)
    trained.load_state_dict(init)
    result = train(trained, data, Recipe(optimizer="adam", lr=1.2e-3, batch_size=60, steps=args.pretrain, data_seed=1), eval_every=-1)
    print(f"pretrained {LENET} for {args.pretrain} steps: test accuracy {result.test_accuracy:.2%}", file=sys.stderr)
    weights = {k: v.detach() for k, v in trained.state_dict().items()}
    masks = {f"{d:.0%}": magnitude_mask(LENET, weights, d, shape, classes) for d in DENSITIES}
    masks["2% (IMP)"] = imp_mask(data, init, 0.02, args.imp_steps, shape, classes)

    rows = [wire_row(f"{LENET} {label}", LENET, init, m) for label, m in masks.items()]
    rshape = (3, 32, 32)
    rinit = generate_init("resnet20", get_task("cifar10"), "kaiming_normal", 0)
    rows.append(wire_row("resnet20 10%", "resnet20", rinit, magnitude_mask("resnet20", rinit, 0.1, rshape, 10)))
    print("Bits per prunable weight on the wire\n")
    print(table(["ticket", "weights kept", "dense fp32", "today (mask+init)", "compact (packed+kept)",
                 "mask packed", "mask bound n·H(p)", "packed / bound"], rows))
    print(f"\nTraining and inference on {args.threads} thread(s), {args.steps} steps of batch 60, best of {args.rounds}\n")
    print(table(["density", "compact widths", "compact params", "masked train steps/s", "compact train steps/s", "train speedup",
                 "masked infer/s", "compact infer/s", "infer speedup"], speed_rows(data, init, masks, args)))


if __name__ == "__main__":
    main()
