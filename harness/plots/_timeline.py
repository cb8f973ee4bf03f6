"""The timeline figure shared by reports and notebooks.

Built on matplotlib's object API (``Figure``), not ``pyplot``, so that making a report never touches
global figure state or needs a display; notebooks display the returned figure as usual.
"""

from __future__ import annotations

from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from harness.scenario import History

__all__ = ["ATTEMPT_COLOURS", "BREAKER_COLOURS", "timeline"]

ATTEMPT_COLOURS = {
    "ok": "#2e7d32",
    "ambiguous": "#ef6c00",
    "error": "#c62828",
    "rejected": "#9e9e9e",
}
BREAKER_COLOURS = {
    "closed": "#c8e6c9",
    "half_open": "#fff59d",
    "open": "#ef9a9a",
    "forced_open": "#e57373",
    "disabled": "#e0e0e0",
    "metrics_only": "#bbdefb",
}
_AMBIGUOUS = {"timeout", "reset", "protocol", "server_error", "replayed_error"}


def _attempt_category(outcome: str, error: object) -> str:
    if outcome == "error":
        return "ambiguous" if error in _AMBIGUOUS else "error"
    return outcome if outcome in ATTEMPT_COLOURS else "error"


def _shade_faults(ax: Axes, history: History) -> None:
    for start, end in zip(history.faults["start"], history.faults["end"], strict=True):
        ax.axvspan(float(start), float(end), color="#ffcc80", alpha=0.35, zorder=0, lw=0)


def timeline(history: History, *, title: str | None = None, width: float = 11.0) -> Figure:
    """Attempts over time, one row per operation, coloured by outcome; effects the upstream applied
    as black ticks (a red cross where an operation was applied more than once); fault windows
    shaded; the breaker's state as a strip underneath."""
    fig = Figure(figsize=(width, 6.0), layout="constrained")
    ax, strip = fig.subplots(2, 1, sharex=True, height_ratios=[6, 1])
    ops = history.operations.sort_values("planned_at").reset_index(drop=True)
    row_of = {op: i for i, op in enumerate(ops["operation_id"])}

    _shade_faults(ax, history)
    attempts = history.attempts
    if len(attempts):
        categories = [
            _attempt_category(o, e) for o, e in zip(attempts["outcome"], attempts["error"], strict=True)
        ]
        rows = attempts["operation_id"].map(row_of)
        ax.scatter(
            attempts["t"], rows, c=[ATTEMPT_COLOURS[c] for c in categories], s=18, zorder=3, linewidths=0
        )
    effects = history.effects[history.effects["operation_id"].isin(row_of)]
    if len(effects):
        counts = effects.groupby("operation_id")["operation_id"].transform("size")
        single, repeated = effects[counts == 1], effects[counts > 1]
        ax.scatter(single["t"], single["operation_id"].map(row_of), marker="|", c="black", s=60, zorder=4)
        ax.scatter(
            repeated["t"], repeated["operation_id"].map(row_of), marker="x", c="#b71c1c", s=70, zorder=5
        )
    ax.set_ylabel("operation (in submission order)")
    ax.set_ylim(-1, max(len(ops), 1))
    ax.set_title(title or str(history.meta.get("title") or history.meta.get("scenario", "run")))
    legend: list[Artist] = [
        Line2D([], [], ls="", marker="o", color=ATTEMPT_COLOURS[k], label=f"attempt: {k}")
        for k in ATTEMPT_COLOURS
    ]
    legend += [
        Line2D([], [], ls="", marker="|", color="black", markersize=10, label="effect applied"),
        Line2D([], [], ls="", marker="x", color="#b71c1c", label="effect applied again"),
        Patch(color="#ffcc80", alpha=0.35, label="fault active"),
    ]
    ax.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)

    _breaker_strip(strip, history)
    strip.set_xlabel("seconds since the run started")
    return fig


def _breaker_strip(ax: Axes, history: History) -> None:
    events = history.breaker_events.sort_values("t")
    end = float(history.meta.get("duration") or 0.0)
    if len(history.attempts):
        end = max(end, float(history.attempts["t"].max()))
    names = sorted(set(events["breaker"])) or ["breaker"]
    for row, name in enumerate(names):
        mine = events[events["breaker"] == name]
        state, since = "closed", 0.0
        for t, to_state in zip(mine["t"], mine["to_state"], strict=True):
            ax.barh(row, t - since, left=since, color=BREAKER_COLOURS.get(state, "#e0e0e0"), height=0.8)
            state, since = str(to_state), float(t)
        colour = BREAKER_COLOURS.get(state, "#e0e0e0")
        ax.barh(row, max(end - since, 0.0), left=since, color=colour, height=0.8)
    ax.set_yticks(range(len(names)), [f"breaker {n}" for n in names], fontsize=8)
    ax.legend(
        handles=[Patch(color=BREAKER_COLOURS[s], label=s) for s in ("closed", "half_open", "open")],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        frameon=False,
    )
