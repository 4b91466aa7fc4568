"""The LTH paper's LeNet experiment (Frankle & Carbin 2019, Figure 3), on Fashion-MNIST.

IMP on ``lenet_300_100``: each level trains from the init, prunes 20% of each hidden
layer's remaining weights and 10% of the output layer's by magnitude, and resets the
survivors to the init (Glorot gaussian, the paper's). Adam 1.2e-3, batch 60, 50,000
iterations per level in the paper. At every pruned level the two controls are trained
under the same recipe and data order: ``reinit`` (same mask, fresh init) and
``random mask`` (same per-layer counts, same init); level 0 is the dense network.

Prints a Markdown table (weights remaining %, ticket, reinit, random mask, dense; test
accuracy in %) and writes the chart (accuracy against weights remaining, log x
reversed) to ``--out``.

    python bench/lth_fashion_mnist.py [--steps 50000] [--levels 15] [--trials 1]
        [--out bench/out/lth_fashion_mnist.png] [--threads 1]

The default is the paper's full protocol (hours on a CPU); ``--steps 2000 --levels 8``
takes minutes.
"""

from __future__ import annotations

import argparse
import sys
import os
import time
from pathlib import Path

import torch

# Run as a script, sys.path[0] is bench/; make the repo (and lth_common) importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lth_common import average, chart, imp_with_controls, table  # noqa: E402

from nirvana.lottery.data.tasks import get_task, load_task  # noqa: E402
from nirvana.lottery.training.recipes import Recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000, help="iterations per level (paper: 50,000)")
    parser.add_argument("--levels", type=int, default=15, help="pruning rounds after the dense level")
    parser.add_argument("--trials", type=int, default=1, help="independent inits (paper: 5)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/lth_fashion_mnist.png"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadiest on a shared CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    spec, data = get_task("fashion-mnist"), load_task("fashion-mnist", os.environ.get("NIRVANA_DATA_DIR"))
    recipe = Recipe(optimizer="adam", lr=1.2e-3, batch_size=60, steps=args.steps)
    start = time.perf_counter()
    rows = []
    for trial in range(args.trials):
        rows += imp_with_controls("lenet_300_100", data, spec, recipe, levels=args.levels, rate=0.2,
                                  output_rate=0.1, scheme="glorot_normal", trial=trial)  # fmt: skip
    seconds = time.perf_counter() - start
    mean_rows = average(rows)
    print(f"LTH LeNet-300-100 on Fashion-MNIST: {args.steps} steps/level, {args.levels} levels, "
          f"{args.trials} trial(s), {seconds:.0f} s\n")  # fmt: skip
    print(table(mean_rows))
    path = chart(mean_rows, args.out, f"LeNet-300-100, Fashion-MNIST, {args.steps} it/level")
    print(f"\nchart: {path}")


if __name__ == "__main__":
    main()
