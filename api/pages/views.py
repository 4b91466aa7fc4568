"""What the pages show, computed from rows: a ticket's status word, the per-architecture
headlines and chart layers of a task page, and a verification's arms for a ticket page.

Results of either schema are read here (``db.results``): schema 2 has arms with
replicates; schema 1 one run per arm, shown as an arm of one replicate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from api.pages.charts import Point, frontier, learning_curves_chart, mean_curve, sparsity_accuracy_chart
from db.models.tickets import Ticket
from db.results import schema_of, verdict_of

ARMS = ("ticket", "dense", "reinit", "random_mask")
LABELS = {
    "winning": "winning",
    "not_winning": "not winning",
    "not_reproduced": "not reproduced",
    "pending": "pending",
    "failed": "failed",
}
#: A dense band is never drawn thinner than this (accuracy), so one value still shows.
MIN_BAND = 0.005


def status_of(ticket: Ticket, latest_state: str | None) -> str:
    """The verdict; without one, ``failed`` when the latest verification on the ticket's
    task failed or was cancelled, else ``pending``. Never "claimed"."""
    if ticket.verdict is not None:
        return ticket.verdict
    return "failed" if latest_state in ("failed", "cancelled") else "pending"


@dataclass(frozen=True)
class Headline:
    architecture: str
    ticket: Ticket | None  # the smallest winning ticket, None when there is none

    def text(self) -> str:
        t = self.ticket
        if t is None:
            return f"{self.architecture}: no winning ticket yet"
        dense = f" (dense {t.dense_accuracy:.1%})" if t.dense_accuracy is not None else ""
        return (
            f"{self.architecture}: the smallest winning ticket: {t.density:.1%} of the weights "
            f"at {t.accuracy:.1%} accuracy{dense}"
        )


def task_view(tickets: Sequence[Ticket], states: Mapping[str, str]) -> dict[str, Any]:
    """Rows (ticket, status), headlines per architecture and the chart of a task page."""
    rows = [(t, status_of(t, states.get(t.id))) for t in tickets]
    architectures = sorted({t.architecture for t in tickets})
    winning = {a: [t for t, s in rows if s == "winning" and t.architecture == a] for a in architectures}
    headlines = [Headline(a, min(winning[a], key=lambda t: (t.density, -t.accuracy), default=None)) for a in architectures]
    bands: dict[str, tuple[float, float]] = {}
    for a in architectures:
        dense = [t.dense_accuracy for t in tickets if t.architecture == a and t.dense_accuracy is not None]
        if dense:
            mid, half = (min(dense) + max(dense)) / 2, max(MIN_BAND, (max(dense) - min(dense)) / 2)
            bands[a] = (mid - half, mid + half)
    frontiers = {a: frontier([(t.density, t.accuracy) for t in winning[a]]) for a in architectures}
    points = [
        Point(t.density, t.accuracy, f"{t.short_id} ({t.architecture}): {t.density:.1%} weights, {t.accuracy:.1%}, "
              f"{LABELS[s]}", f"/tickets/{t.id}", s)
        for t, s in rows
    ]  # fmt: skip
    chart = sparsity_accuracy_chart(points, bands, frontiers) if points else None
    return {"rows": rows, "headlines": headlines, "chart": chart, "labels": LABELS}


def _arm_of_schema_1(run: Mapping[str, Any]) -> dict[str, Any]:
    acc = float(run["test_accuracy"])
    stat = {"mean": acc, "std": 0.0, "n": 1}
    return {
        "density": run.get("density"),
        "test_accuracy": stat,
        "early_stop_test_accuracy": None,
        "replicates": [{"seed": None, "test_accuracy": acc, "early_stop": None, "accuracy_at_init": None,
                        "curve": run.get("curve") or [], "seconds": run.get("seconds")}],
    }  # fmt: skip


def result_view(result: Mapping[str, Any]) -> dict[str, Any]:
    """A verification result as the ticket page shows it, whichever its schema."""
    schema = schema_of(result)
    if schema >= 2:
        arms = {name: result["arms"][name] for name in ARMS if name in result.get("arms", {})}
    else:
        arms = {name: _arm_of_schema_1(result["runs"][name]) for name in ARMS if name in result.get("runs", {})}
    curves = {
        name: mean_curve([r["curve"] for r in arm["replicates"] if r.get("curve")])
        for name, arm in arms.items()
    }
    curves = {name: curve for name, curve in curves.items() if curve}
    return {
        "schema": schema,
        "verdict": verdict_of(result),
        "reasons": list(result.get("reasons") or []),
        "arms": arms,
        "chart": learning_curves_chart(curves) if curves else None,
        "legend": list(curves),
    }
