"""The verdict of a verification, from the replicates' accuracies (docs/lottery.md).

All comparisons use each replicate's early-stop test accuracy (``train``'s
``early_stop.test_accuracy``), except ``reproduced``, which compares the claim with the
figure it claims (final accuracy unless the manifest says ``early_stop``).

- ``tolerance = max(0.01, 2 * sqrt(p (1 - p) / n_test + s**2))``: two standard errors
  of one retraining's test accuracy, counting the test set's binomial error (``p`` the
  claimed accuracy, ``n_test`` test examples) and the spread between replicates
  (``s`` the sample standard deviation of the ticket's replicates, 0 when R = 1),
  never below one point.
- ``reproduced``: ``|mean(ticket) - claimed| <= tolerance``.
- ``matches_dense``: ``mean(ticket) >= mean(dense) - tolerance``.
- ``beats_reinit``, ``beats_random_mask``: with R >= 2 per arm, a one-sided Welch
  t-test of "the ticket's mean is above the control's" at 95% (``p < 0.05``); with
  R = 1, the strict comparison ``ticket > control`` (``single_replicate``).
- ``verdict``: ``not_reproduced`` unless reproduced; else ``winning`` when it matches
  dense and beats both controls; else ``not_winning``. ``reasons`` says why in words.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["winning", "not_winning", "not_reproduced"]
VERDICTS: tuple[Verdict, ...] = ("winning", "not_winning", "not_reproduced")
#: One-sided significance level of the control comparisons.
ALPHA = 0.05
CONTROLS = ("reinit", "random_mask")


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (0 for one value) and count."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            raise ValueError("no values to summarise")
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return cls(mean=statistics.fmean(values), std=std, n=len(values))

    def as_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "std": self.std, "n": self.n}

    def text(self) -> str:
        """``"77.8 ± 0.4"`` in percent (``"77.8"`` for one value)."""
        return f"{100 * self.mean:.1f}" if self.n < 2 else f"{100 * self.mean:.1f} ± {100 * self.std:.1f}"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reasons: list[str]
    reproduced: bool
    matches_dense: bool
    beats_reinit: bool
    beats_random_mask: bool
    single_replicate: bool
    tolerance: float
    #: One-sided Welch p-values per control; None where R = 1.
    p_values: dict[str, float | None]


def tolerance(claimed: float, n_test: int, spread: float = 0.0) -> float:
    """``max(0.01, 2 * sqrt(p (1 - p) / n + spread**2))``; ``p`` clamped to [0, 1]."""
    p = min(1.0, max(0.0, claimed))
    return max(0.01, 2.0 * math.sqrt(p * (1.0 - p) / max(1, n_test) + spread**2))


def welch_greater(a: Sequence[float], b: Sequence[float]) -> float:
    """One-sided p-value of Welch's t-test for ``mean(a) > mean(b)`` (each n >= 2).

    Two samples without spread are decided by their means (p 0 or 1): scipy's test
    is undefined there, and accuracies on a small test set are often tied."""
    from scipy.stats import ttest_ind

    if statistics.variance(a) == 0 and statistics.variance(b) == 0:
        return 0.0 if statistics.fmean(a) > statistics.fmean(b) else 1.0
    with warnings.catch_warnings():
        # Nearly tied samples (a spread of float rounding only) make scipy warn of
        # "catastrophic cancellation"; its p-value is still the right answer there.
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(a, b, equal_var=False, alternative="greater").pvalue)
    return p if math.isfinite(p) else (0.0 if statistics.fmean(a) > statistics.fmean(b) else 1.0)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def decide(
    early_stop: dict[str, Sequence[float]],
    *,
    claimed: float,
    claimed_value: Sequence[float],
    n_test: int,
) -> Decision:
    """The verdict from each arm's early-stop accuracies (``ticket``, ``reinit``,
    ``random_mask``, ``dense``) and the ticket's values of the claimed figure."""
    ticket = Summary.of(early_stop["ticket"])
    dense = Summary.of(early_stop["dense"])
    claim = Summary.of(claimed_value)
    tol = tolerance(claimed, n_test, claim.std)
    reasons: list[str] = []
    reproduced = abs(claim.mean - claimed) <= tol
    if reproduced:
        reasons.append(f"the claim reproduces: {claim.text()} against {_pct(claimed)} claimed (tolerance {_pct(tol)})")
    else:
        reasons.append(f"the claim does not reproduce: retrained to {claim.text()}, claimed {_pct(claimed)} "
                       f"(tolerance {_pct(tol)})")  # fmt: skip
    matches_dense = ticket.mean >= dense.mean - tol
    if matches_dense:
        reasons.append(f"matches dense: {ticket.text()} against dense {dense.text()}")
    else:
        reasons.append(f"falls short of dense: {ticket.text()} against dense {dense.text()} (tolerance {_pct(tol)})")
    single = min(len(v) for v in early_stop.values()) < 2
    beats: dict[str, bool] = {}
    p_values: dict[str, float | None] = {}
    for control in CONTROLS:
        other = Summary.of(early_stop[control])
        name = control.replace("_", " ")
        if single:
            p_values[control] = None
            beats[control] = ticket.mean > other.mean
            verb = "beats" if beats[control] else "does not beat"
            reasons.append(f"{verb} {name} in a single run: {ticket.text()} against {other.text()} (no test with R = 1)")
            continue
        p = welch_greater(early_stop["ticket"], early_stop[control])
        p_values[control], beats[control] = p, p < ALPHA
        if beats[control]:
            reasons.append(f"beats {name}: {ticket.text()} against {other.text()}, p = {p:.2g}")
        else:
            reasons.append(f"{name} does as well: {other.text()} against the ticket's {ticket.text()}, p = {p:.2g}")
    verdict: Verdict
    if not reproduced:
        verdict = "not_reproduced"
    elif matches_dense and all(beats.values()):
        verdict = "winning"
    else:
        verdict = "not_winning"
    return Decision(
        verdict=verdict, reasons=reasons, reproduced=reproduced, matches_dense=matches_dense,
        beats_reinit=beats["reinit"], beats_random_mask=beats["random_mask"], single_replicate=single,
        tolerance=tol, p_values=p_values,
    )  # fmt: skip
