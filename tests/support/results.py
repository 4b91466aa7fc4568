"""Hand-made verification results of schema 2, as ``verify_ticket`` writes them."""

from __future__ import annotations

import statistics
from typing import Any

ARMS = ("ticket", "reinit", "random_mask", "dense")


def _arm(values: list[float], density: float) -> dict[str, Any]:
    stat = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values)}
    replicates = [
        {"seed": i, "test_accuracy": v, "early_stop": {"step": 40, "validation_accuracy": v, "test_accuracy": v},
         "accuracy_at_init": 0.1, "curve": [[0, 0.1], [40, v], [60, v]], "seconds": 1.0}
        for i, v in enumerate(values)
    ]  # fmt: skip
    return {"density": density, "test_accuracy": stat, "early_stop_test_accuracy": stat, "replicates": replicates}


def schema2_result(verdict: str, ticket: float = 0.9, dense: float = 0.92, replicates: int = 2,
                   density: float = 0.5) -> dict[str, Any]:  # fmt: skip
    """A result with ``verdict``; each arm's replicates spread by 0.002 around its mean."""
    means = {"ticket": ticket, "reinit": ticket - 0.1, "random_mask": ticket - 0.12, "dense": dense}
    arms = {
        name: _arm([m + 0.002 * (i - (replicates - 1) / 2) for i in range(replicates)], 1.0 if name == "dense" else density)
        for name, m in means.items()
    }
    return {
        "schema": 2, "verdict": verdict, "reasons": [f"hand-made: {verdict}"],
        "reproduced": verdict != "not_reproduced", "matches_dense": True, "beats_reinit": verdict == "winning",
        "beats_random_mask": verdict == "winning", "single_replicate": replicates < 2, "p_values": {},
        "instability": 0.013 if replicates > 1 else None, "tolerance": 0.02, "replicates": replicates,
        "claimed_accuracy": ticket, "claimed_at": "final", "arms": arms, "dataset_fingerprint": "x",
        "torch_version": "test", "device": "cpu", "task": "digits", "recipe": {},
    }  # fmt: skip
