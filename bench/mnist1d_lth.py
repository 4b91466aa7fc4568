"""The MNIST-1D paper's lottery-ticket experiment (Greydanus & Kobak), beside its numbers.

The paper (notebook outputs): an MLP 40-500-500-10 with a residual connection, layerwise
magnitude pruning with reset to the init, Adam 2e-2, batch 100, 1,501 steps per round,
2 trials. At 9% of the weights the ticket reached 75.0 / 72.9% test accuracy (76.1 /
74.4% at 8%), against 66.4 / 65.4% dense, 62.3 / 62.1% for a random mask and 64.7 /
66.3% for the ticket's mask on a new init.

Ours: ``lenet_500_500`` (40-500-500-10, the paper's widths; Nirvana has no residual
MLP), PyTorch's default init (``torch_default``, what the notebook's ``nn.Linear``
layers get), 20% of every layer's remaining weights per round, so round 11 lands at
0.8^11 = 8.6%, inside the paper's 8-9% band. Biases are never pruned (the paper prunes
them too). The controls (reinit, random mask) are trained at the last level only unless
``--controls all``.

    python bench/mnist1d_lth.py [--trials 2] [--levels 11] [--rate 0.2] [--controls last|all]
        [--out bench/out/mnist1d_lth.png] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lth_common import Row, average, chart, imp_with_controls, table  # noqa: E402

from nirvana.lottery.data.tasks import get_task, load_task  # noqa: E402
from nirvana.lottery.training.recipes import Recipe

#: The paper's two trials (test accuracy, %), at ~9% of the weights (8% in brackets).
PAPER = {
    "ticket": "75.0 / 72.9 (8%: 76.1 / 74.4)",
    "dense": "66.4 / 65.4",
    "random mask": "62.3 / 62.1",
    "reinit": "64.7 / 66.3",
}


def comparison(rows: list[Row], trials: int) -> str:
    """Ours per trial and their mean at the last level, beside the paper's."""
    last = max(r.level for r in rows)
    at = [r for r in rows if r.level == last]
    lines = [f"| run (at {100 * at[0].density:.1f}% of weights) | ours, per trial | ours, mean | paper |",
             "|---|---|---|---|"]  # fmt: skip
    for label, key in (("ticket", "ticket"), ("dense", "dense"), ("random mask", "random_mask"), ("reinit", "reinit")):
        values = [getattr(r, key) for r in at]
        shown = " / ".join("-" if v is None else f"{100 * v:.1f}" for v in values)
        got = [v for v in values if v is not None]
        mean = f"{100 * sum(got) / len(got):.1f}" if got else "-"
        lines.append(f"| {label} | {shown} | {mean} | {PAPER[label]} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--levels", type=int, default=11)
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--steps", type=int, default=1501, help="steps per round (paper: 1,501)")
    parser.add_argument("--controls", choices=("last", "all"), default="last")
    parser.add_argument("--arch", default="lenet_500_500")
    parser.add_argument("--out", type=Path, default=Path("bench/out/mnist1d_lth.png"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    spec, data = get_task("mnist1d"), load_task("mnist1d")
    recipe = Recipe(optimizer="adam", lr=2e-2, batch_size=100, steps=args.steps)
    controls_at = None if args.controls == "all" else [args.levels]
    start = time.perf_counter()
    rows: list[Row] = []
    for trial in range(args.trials):
        rows += imp_with_controls(args.arch, data, spec, recipe, levels=args.levels, rate=args.rate,
                                  output_rate=args.rate, scheme="torch_default", trial=trial,
                                  controls_at=controls_at)  # fmt: skip
    seconds = time.perf_counter() - start
    print(f"MNIST-1D lottery: {args.arch}, rate {args.rate}/round, {args.levels} rounds, {args.steps} steps, "
          f"{args.trials} trial(s), {seconds:.0f} s\n")  # fmt: skip
    print(comparison(rows, args.trials))
    print("\nEvery level (mean over trials):\n")
    mean_rows = average(rows)
    print(table(mean_rows))
    print(f"\nchart: {chart(mean_rows, args.out, f'{args.arch} on MNIST-1D')}")


if __name__ == "__main__":
    main()
