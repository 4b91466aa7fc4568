"""Verdicts with replicates on Fashion-MNIST: do they say what the papers expect?

LeNet-300-100 under the task's short recipe (Adam 1.2e-3, batch 60, 5,000 steps). IMP
(layerwise magnitude, every layer at the same rate ``1 - 0.05 ** (1/4)``) finds a
ticket at ~22% (level 2) and ~5% (level 4) of the weights; a random mask with the 5%
ticket's per-layer counts on the same init is "presented as a ticket" (its claim: its
own accuracy after one training). Each is verified by ``verify_ticket`` with R
replicates (default 3), exactly as the worker does, and the table prints each arm's
early-stop test accuracy (mean ± std over R), the verdict, and the papers' expectation
(Frankle & Carbin 2019: tickets down to a few percent match dense and beat both
controls; a random mask is no ticket).

    python bench/verdicts.py [--steps 5000] [--replicates 3] [--threads 2]

Takes about 40 trainings of ``--steps`` steps; ``--steps 1000`` runs in minutes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nirvana.lottery.data.tasks import get_task, load_task  # noqa: E402
from nirvana.lottery.models.architectures import build_model  # noqa: E402
from nirvana.lottery.pruning.config import SearchConfig  # noqa: E402
from nirvana.lottery.pruning.imp import search_ticket  # noqa: E402
from nirvana.lottery.pruning.masks import random_mask_like  # noqa: E402
from nirvana.lottery.training.loop import train  # noqa: E402
from nirvana.lottery.verification.protocol import verify_ticket  # noqa: E402

ARCH = "lenet_300_100"
SCHEME = "kaiming_normal"
ARMS = ("ticket", "reinit", "random_mask", "dense")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="training steps (the task's recipe: 5,000)")
    parser.add_argument("--replicates", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec, data = get_task("fashion-mnist"), load_task("fashion-mnist")
    recipe = spec.default_recipe.model_copy(update={"steps": args.steps})
    start = time.perf_counter()
    rate = 1 - 0.05 ** 0.25  # four levels to 5% of the weights, every layer alike
    search = SearchConfig(architecture=ARCH, recipe=recipe, levels=4, rate=rate, output_rate=rate, scheme=SCHEME, seed=0)
    levels = search_ticket(search, data)
    print(f"IMP: {[f'{lv.density:.1%}: {lv.test_accuracy:.2%}' for lv in levels]} "
          f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)  # fmt: skip
    five = levels[4]
    fake_mask = random_mask_like(five.mask, 12345)
    model = build_model(ARCH, spec.input_shape, spec.num_classes)
    model.load_state_dict(dict(five.init))
    fake_claim = train(model, data, recipe, mask=fake_mask, eval_every=0).test_accuracy
    cases = [
        (f"IMP ticket, level 2 ({levels[2].density:.1%})", levels[2].init, levels[2].mask, levels[2].test_accuracy, "winning"),
        (f"IMP ticket, level 4 ({five.density:.1%})", five.init, five.mask, five.test_accuracy, "winning"),
        (f"random mask as a ticket ({five.density:.1%})", five.init, fake_mask, fake_claim, "not_winning"),
    ]
    print(f"Fashion-MNIST, {ARCH}, Adam 1.2e-3, batch 60, {args.steps} steps, R = {args.replicates}; "
          "early-stop test accuracy, mean ± std (%)\n")  # fmt: skip
    print("| case | claimed | ticket | reinit | random mask | dense | instability | verdict | papers expect |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, init, mask, claimed, expected in cases:
        t0 = time.perf_counter()
        result = verify_ticket(
            architecture=ARCH, task_data=data, task_spec=spec, init=init, mask=mask, recipe=recipe,
            claimed_accuracy=claimed, scheme=SCHEME, replicates=args.replicates,
        )  # fmt: skip
        d = result.to_dict()
        cells = []
        for arm in ARMS:
            s = d["arms"][arm]["early_stop_test_accuracy"]
            cells.append(f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}")
        barrier = "-" if d["instability"] is None else f"{100 * d['instability']:.2f}"
        print(f"| {label} | {100 * claimed:.2f} | {' | '.join(cells)} | {barrier} | **{d['verdict']}** | {expected} |")
        print(f"  ({time.perf_counter() - t0:.0f} s) reasons: {'; '.join(d['reasons'])}", file=sys.stderr)
    print(f"\ntotal {time.perf_counter() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
