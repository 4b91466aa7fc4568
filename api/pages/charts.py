"""Inline SVG charts: accuracy against weights remaining, and learning curves.

Pure functions from numbers to an SVG string; the templates embed them as they are.
Weights remaining use a log axis running from dense (left) to sparse (right), as the
LTH paper draws it. Markers are coded by verdict (class ``point <verdict>``); the
learning curves' legend is HTML beside the chart, so it never covers a line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 320
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 44
COLORS = {"ticket": "#2563eb", "reinit": "#dc2626", "random_mask": "#d97706", "dense": "#6b7280"}


#: What a task page says of a ticket: its verdict, or the state of a ticket without one.
STATUSES = ("winning", "not_winning", "not_reproduced", "pending", "failed")


@dataclass(frozen=True)
class Point:
    density: float
    accuracy: float
    label: str
    href: str
    status: str  # one of STATUSES


def frontier(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (density, accuracy) points no other point beats on both counts (sparser and
    at least as accurate), densest first: the line of the sparsest winning tickets."""
    kept: list[tuple[float, float]] = []
    best = -1.0
    for density, accuracy in sorted(points, key=lambda p: (p[0], -p[1])):
        if accuracy > best:
            kept.append((density, accuracy))
            best = accuracy
    return sorted(kept, reverse=True)


def _plot_box() -> tuple[float, float, float, float]:
    return LEFT, TOP, WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


def _accuracy_range(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values, default=0.0), max(values, default=1.0)
    low = max(0.0, math.floor((low - 0.02) * 20) / 20)
    high = min(1.0, math.ceil((high + 0.02) * 20) / 20)
    return (low, high) if high > low else (0.0, 1.0)


def _svg(body: list[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" class="chart"><title>{escape(title)}</title>' + "".join(body) + "</svg>"
    )


def _y_axis(low: float, high: float) -> list[str]:
    x0, y0, w, h = _plot_box()
    parts = []
    steps = 5
    for i in range(steps + 1):
        value = low + (high - low) * i / steps
        y = y0 + h - h * i / steps
        parts.append(f'<line x1="{x0}" x2="{x0 + w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{value:.0%}</text>')
    parts.append(
        f'<text x="14" y="{y0 + h / 2}" transform="rotate(-90 14 {y0 + h / 2})" text-anchor="middle">test accuracy</text>'
    )
    return parts


def sparsity_accuracy_chart(
    points: Sequence[Point],
    bands: Mapping[str, tuple[float, float]] | None = None,
    frontiers: Mapping[str, Sequence[tuple[float, float]]] | None = None,
) -> str:
    """Accuracy (y) against % of weights remaining (x, log, dense on the left), with
    each architecture's dense accuracy as a band (``bands``: low, high) and its
    frontier of winning tickets as a line (``frontiers``: density, accuracy)."""
    bands, frontiers = bands or {}, frontiers or {}
    x0, y0, w, h = _plot_box()
    low, high = _accuracy_range([p.accuracy for p in points] + [v for band in bands.values() for v in band])
    min_density = min((p.density for p in points), default=0.01)
    decades = max(1, math.ceil(-math.log10(max(min_density, 1e-6))))

    def x_of(density: float) -> float:
        return x0 + w * (-math.log10(max(density, 1e-6))) / decades

    def y_of(accuracy: float) -> float:
        return y0 + h - h * (accuracy - low) / (high - low)

    body = _y_axis(low, high)
    for k in range(decades + 1):
        x = x0 + w * k / decades
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y0}" y2="{y0 + h}" class="grid"/>')
        body.append(f'<text x="{x:.1f}" y="{y0 + h + 16}" text-anchor="middle">{100 / 10**k:g}%</text>')
    body.append(f'<text x="{x0 + w / 2}" y="{HEIGHT - 6}" text-anchor="middle">weights remaining (log scale)</text>')
    for arch, (lo, hi) in bands.items():
        top, bottom = y_of(hi), y_of(lo)
        body.append(
            f'<rect x="{x0}" y="{top:.1f}" width="{w}" height="{max(2.0, bottom - top):.1f}" class="dense-band">'
            f"<title>{escape(arch)} dense: {lo:.1%} to {hi:.1%}</title></rect>"
        )
        body.append(f'<text x="{x0 + 4}" y="{top - 3:.1f}" class="band-label">{escape(arch)} dense</text>')
    for arch, line in frontiers.items():
        if len(line) > 1:
            coords = " ".join(f"{x_of(d):.1f},{y_of(a):.1f}" for d, a in line)
            body.append(f'<polyline points="{coords}" class="frontier"><title>{escape(arch)}: frontier</title></polyline>')
    for p in points:
        body.append(
            f'<a href="{escape(p.href)}"><circle cx="{x_of(p.density):.1f}" cy="{y_of(p.accuracy):.1f}" r="5" '
            f'class="point {escape(p.status)}"><title>{escape(p.label)}</title></circle></a>'
        )
    return _svg(body, "test accuracy against weights remaining")


def learning_curves_chart(curves: Mapping[str, Sequence[Sequence[float]]]) -> str:
    """Test accuracy (y) against training step (x), one line per run (colours in
    ``COLORS``; the page prints the legend beside the chart)."""
    x0, y0, w, h = _plot_box()
    accuracies = [acc for curve in curves.values() for _, acc in curve]
    low, high = _accuracy_range(accuracies)
    last_step = max((step for curve in curves.values() for step, _ in curve), default=1) or 1
    body = _y_axis(low, high)
    for i in range(5):
        step = last_step * i / 4
        x = x0 + w * i / 4
        body.append(f'<text x="{x:.1f}" y="{y0 + h + 16}" text-anchor="middle">{step:,.0f}</text>')
    body.append(f'<text x="{x0 + w / 2}" y="{HEIGHT - 6}" text-anchor="middle">training step</text>')
    for name, curve in curves.items():
        color = COLORS.get(name, "#111827")
        coords = " ".join(
            f"{x0 + w * step / last_step:.1f},{y0 + h - h * (acc - low) / (high - low):.1f}" for step, acc in curve
        )
        body.append(
            f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2" class="curve" '
            f'data-run="{escape(name)}"/>'
        )
    return _svg(body, "learning curves")


def mean_curve(curves: Sequence[Sequence[Sequence[float]]]) -> list[tuple[float, float]]:
    """The replicates' curves averaged step by step (they share their steps)."""
    if not curves:
        return []
    steps = [float(point[0]) for point in curves[0]]
    return [
        (step, sum(float(c[i][1]) for c in curves) / len(curves))
        for i, step in enumerate(steps)
        if all(len(c) > i for c in curves)
    ]
