"""Trade-off figures for sweeps: a metric against a setting, one line per value of another."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

__all__ = ["tradeoff"]


def tradeoff(
    frame: pd.DataFrame, *, x: str, metrics: list[str], by: str | None = None, width: float = 11.0
) -> Figure:
    """One panel per metric: its mean over seeds (with min-max band) against ``x``, a line per ``by``."""
    missing = [c for c in [x, *metrics, *([by] if by else [])] if c not in frame.columns]
    if missing:
        raise ValueError(f"tradeoff(): the frame has no column(s) {missing}; it has {list(frame.columns)}")
    fig = Figure(figsize=(width, 3.2 * ((len(metrics) + 1) // 2)), layout="constrained")
    axes = fig.subplots((len(metrics) + 1) // 2, 2, squeeze=False).ravel()
    groups = frame.groupby(by) if by else [(None, frame)]
    for ax, metric in zip(axes, metrics, strict=False):
        for label, group in groups:
            stats = group.groupby(x)[metric].agg(["mean", "min", "max"]).sort_index()
            xs = stats.index.to_numpy(dtype=float)
            ax.plot(xs, stats["mean"], marker="o", label=None if label is None else f"{by}={label!s}")
            ax.fill_between(xs, stats["min"].astype(float), stats["max"].astype(float), alpha=0.15)
        ax.set_xlabel(x)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        if by:
            ax.legend(fontsize=8, frameon=False)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    return fig
