"""Learning curves: the plateau test, and curve.csv and curve.png from a run record (a metric against the training
step, one line per method, a band of ± sd over seeds).

The plateau test, in one place. Take the points of a method's (seed-mean) error curve in the last ``TAIL`` of
its training (steps >= (1 - TAIL) T, the table step T included) and the half-width h of the final error's pooled
95% Clopper-Pearson interval: the test-set sampling error of the table's number. The method counts as converged
when, over that window,

- the straight line fitted through the points changes by less than h (no trend the test set could resolve: a
  curve still falling by more would give another table a little later), and
- the points scatter around that line with a standard deviation below h / 1.96, the standard error behind h
  (no swings between neighbouring checkpoints larger than the test set's own noise: a single table step would
  otherwise be luck).

Comparing every point with the final one instead would let one noisy final point decide; the fit uses them all.
At least ``MIN_TAIL_POINTS`` points must lie in the window (``curve_points=8`` gives three), else the test says it
cannot tell.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
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
    steps = np.array([s for s, _ in window], dtype=float)
    errors = np.array([e for _, e in window], dtype=float)
    slope, intercept = np.polyfit(steps, errors, 1)
    trend = slope * (steps[-1] - steps[0])
    scatter = float(np.std(errors - (slope * steps + intercept), ddof=2)) if len(window) > 2 else 0.0
    where = f"steps {window[0][0]}-{last_step}"
    if abs(trend) >= halfwidth:
        return Plateau(False, f"trend {trend:+.1f} over {where}, interval ±{halfwidth:.1f}")
    if scatter >= halfwidth / 1.96:
        return Plateau(False, f"swings sd {scatter:.1f} over {where}, above the test set's {halfwidth / 1.96:.1f}")
    return Plateau(True, f"trend {trend:+.1f}, swings sd {scatter:.1f} over {where}; interval ±{halfwidth:.1f}")

def learned_verdict(verdict: str, error: float, not_learned: Optional[float]) -> str:
    """The plateau verdict's cell text, after "did not learn" where the final error (%) is at or above the task's
    no-learning level ``not_learned`` (None: the task has none): a curve flat at chance passes the plateau test, and
    'yes' alone would read as a result."""
    if not_learned is None or error < not_learned or verdict.startswith("did not learn"):
        return verdict
    return f"did not learn ({error:.1f}% error); plateau test: {verdict}"


CURVE_METRICS = ("error %", "classifier Frechet", "classifier KID x1000", "FID", "L1 to ground truth")


def render_curve(record: dict[str, Any], folder: Path) -> None:
    """per_seed.csv, and curve.csv + curve.png (metric vs share of each method's own training, a line per method,
    a band of ± sd over seeds, the plateau test's window shaded), when the record has them. The x axis is the share,
    not the step, because budgets differ by 40x between methods (CycleGAN 240 steps, StarGAN 12,000 at demo)."""
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
        ax.axvspan(100 * (1 - TAIL), 100, color="0.9", lw=0)
        for method, sub in df.groupby("method", sort=False):
            stats_ = sub.groupby("step")[metric].agg(["mean", "std", "count"]).reset_index()
            share = 100 * stats_["step"] / stats_["step"].max()
            line, = ax.plot(share, stats_["mean"], marker="o", ms=3,
                            label=f"{method} ({int(stats_['step'].max()):,} steps)")
            if (stats_["count"] > 1).any():
                sd = stats_["std"].fillna(0)
                ax.fill_between(share, stats_["mean"] - sd, stats_["mean"] + sd, color=line.get_color(),
                                alpha=0.2, lw=0)
        ax.set_xlabel(f"% of the method's training steps (grey: the plateau test's last {100 * TAIL:g}%)",
                      fontsize=8)
        ax.set_xlim(0, 101)
        ax.set_title(f"{metric} (lower is better)", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    n_seeds = df.groupby("method")["seed"].nunique().max()
    title = (f"{record.get('protocol', '')}: learning curves (the table is taken at each line's last point"
             + (f"; bands: ± sd over {n_seeds} seeds)" if n_seeds > 1 else ")"))
    fig.suptitle(textwrap.fill(title, width=60 * len(metrics)), fontsize=9)  # one panel is too narrow for one line
    fig.tight_layout()
    fig.savefig(folder / "curve.png", dpi=120)
    pyplot.close(fig)
