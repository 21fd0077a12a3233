"""Learning curves: the plateau test, and curve.csv and curve.png from a run record (a metric against the training
step, one line per method, a band of ± sd over seeds).

The plateau test, in one place: a method counts as converged at its table step T when every point of its
(seed-mean) error curve in the last ``TAIL`` of its training (steps >= (1 - TAIL) T, T itself included) lies within
the half-width of the final error's pooled 95% Clopper-Pearson interval of the final value. The interval is the
test-set sampling error of the table's number: a curve that still moves by more than that over the last quarter
of training would give another table a little earlier or later, so the number is not yet a property of the
method. At least ``MIN_TAIL_POINTS`` points must lie in that window (``curve_points=8`` gives three), else the
test says it cannot tell.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import pandas as pd

from starbench.report import plt

TAIL = 0.25  # the share of training, at its end, whose curve points must stay within the interval
MIN_TAIL_POINTS = 3


@dataclass(frozen=True)
class Plateau:
    """The plateau test's verdict: converged (True / False / None: cannot tell) and why, in a few words."""

    converged: Optional[bool]
    reason: str

    def text(self) -> str:
        """The table cell: 'yes', 'NO (...)' or 'unknown (...)'."""
        if self.converged is None:
            return f"unknown ({self.reason})"
        return "yes" if self.converged else f"NO ({self.reason})"


def plateau(points: Sequence[tuple[int, float]], halfwidth: float, tail: float = TAIL,
            min_points: int = MIN_TAIL_POINTS) -> Plateau:
    """The plateau test on (step, error %) points ending at the table step, with the final error's 95% interval
    half-width in percentage points (see the module docstring)."""
    if not points:
        return Plateau(None, "no learning curve: set curve_points or curve_every")
    points = sorted(points)
    last_step, last = points[-1]
    window = [(s, e) for s, e in points if s >= (1 - tail) * last_step]
    if len(window) < min_points:
        return Plateau(None, f"{len(window)} curve point(s) in the last {100 * tail:g}% of training, "
                             f"{min_points} needed")
    moved = max(abs(e - last) for _, e in window)
    if moved <= halfwidth:
        return Plateau(True, f"within ±{halfwidth:.1f} over steps {window[0][0]}-{last_step}")
    return Plateau(False, f"moved {moved:.1f} > ±{halfwidth:.1f} over steps {window[0][0]}-{last_step}")

CURVE_METRICS = ("error %", "classifier Frechet", "classifier KID x1000", "FID", "L1 to ground truth")


def render_curve(record: dict[str, Any], folder: Path) -> None:
    """per_seed.csv, and curve.csv + curve.png (metric vs training step, a line per method, a band of ± sd over
    seeds), when the record has them."""
    if record.get("per_seed"):
        pd.DataFrame(record["per_seed"]).to_csv(folder / "per_seed.csv", index=False)
    if not record.get("curve"):
        return
    df = pd.DataFrame(record["curve"])
    df.to_csv(folder / "curve.csv", index=False)
    metrics = [m for m in CURVE_METRICS if m in df and df[m].notna().any()]
    pyplot = plt()
    fig, axes = pyplot.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for method, sub in df.groupby("method", sort=False):
            stats_ = sub.groupby("step")[metric].agg(["mean", "std", "count"]).reset_index()
            line, = ax.plot(stats_["step"], stats_["mean"], marker="o", ms=3, label=method)
            if (stats_["count"] > 1).any():
                sd = stats_["std"].fillna(0)
                ax.fill_between(stats_["step"], stats_["mean"] - sd, stats_["mean"] + sd, color=line.get_color(),
                                alpha=0.2, lw=0)
        ax.set_xlabel("training step")
        ax.set_title(f"{metric} (lower is better)", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    n_seeds = df.groupby("method")["seed"].nunique().max()
    fig.suptitle(f"{record.get('protocol', '')}: learning curves (the table is taken at each line's last point"
                 + (f"; bands: ± sd over {n_seeds} seeds)" if n_seeds > 1 else ")"), fontsize=9)
    fig.tight_layout()
    fig.savefig(folder / "curve.png", dpi=120)
    pyplot.close(fig)
