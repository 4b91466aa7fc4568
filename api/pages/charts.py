"""Inline SVG charts: accuracy against weights remaining, and learning curves.

Pure functions from numbers to an SVG string; the templates embed them as they are.
Weights remaining use a log axis running from dense (left) to sparse (right), as the
LTH paper draws it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 320
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 44
COLORS = {"ticket": "#2563eb", "reinit": "#dc2626", "random_mask": "#d97706", "dense": "#6b7280"}


@dataclass(frozen=True)
class Point:
    density: float
    accuracy: float
    label: str
    href: str
    verified: bool


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


def sparsity_accuracy_chart(points: Sequence[Point]) -> str:
    """Accuracy (y) against % of weights remaining (x, log, dense on the left)."""
    x0, y0, w, h = _plot_box()
    low, high = _accuracy_range([p.accuracy for p in points])
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
    for p in points:
        kind = "verified" if p.verified else "claimed"
        body.append(
            f'<a href="{escape(p.href)}"><circle cx="{x_of(p.density):.1f}" cy="{y_of(p.accuracy):.1f}" r="5" '
            f'class="point {kind}"><title>{escape(p.label)}</title></circle></a>'
        )
    return _svg(body, "test accuracy against weights remaining")


def learning_curves_chart(curves: dict[str, Sequence[Sequence[float]]]) -> str:
    """Test accuracy (y) against training step (x), one line per run."""
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
    for legend_row, (name, curve) in enumerate(curves.items()):
        color = COLORS.get(name, "#111827")
        coords = " ".join(
            f"{x0 + w * step / last_step:.1f},{y0 + h - h * (acc - low) / (high - low):.1f}" for step, acc in curve
        )
        body.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2" class="curve"/>')
        ly = y0 + 12 + 16 * legend_row
        body.append(f'<line x1="{x0 + w - 110}" x2="{x0 + w - 92}" y1="{ly - 4}" y2="{ly - 4}" stroke="{color}" stroke-width="3"/>')
        body.append(f'<text x="{x0 + w - 86}" y="{ly}">{escape(name.replace("_", " "))}</text>')
    return _svg(body, "learning curves")
