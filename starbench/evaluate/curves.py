"""Learning curves: curve.csv and curve.png from a run record (a metric against the training step, one line per
method, a band of ± sd over seeds)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from starbench.report import plt

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
