"""The lottery chart: test accuracy against % of weights remaining, as the LTH paper
draws it (log x axis, dense on the left, sparser to the right). PNG via matplotlib's
Agg backend, so it works without a display."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from nirvana.lottery.errors import MissingExtraError

_STYLES = ("o-", "s--", "^:", "v-.", "d--")


def plot_accuracy_vs_remaining(
    path: Path,
    density: Sequence[float],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    dense: float | None = None,
) -> Path:
    """Draw each series (label -> accuracies in [0, 1], aligned with ``density``; None
    where a level has no value) and, if given, the dense accuracy as a grey line.

    Raises:
        MissingExtraError: matplotlib (the ``charts`` extra) is not installed.
    """
    try:
        import matplotlib
    except ImportError:
        raise MissingExtraError("the accuracy chart", "matplotlib", "charts") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = [100 * d for d in density]
    for style, (label, values) in zip(_STYLES, series.items(), strict=False):
        points = [(xi, 100 * v) for xi, v in zip(x, values, strict=True) if v is not None]
        if points:
            ax.plot(*zip(*points, strict=True), style, label=label)
    if dense is not None:
        ax.axhline(100 * dense, color="grey", lw=1, label="dense")
    ax.set_xscale("log")
    ax.set_xlim(max(x) * 1.15, min(x) / 1.15)  # reversed: sparser to the right
    # Plain percentages (100, 50, 10, ...) instead of 10^k on the log axis.
    ticks = [t for t in (100, 50, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1) if min(x) <= t <= max(x)]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("weights remaining (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)
    return path
