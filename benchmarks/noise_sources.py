"""Can one training run tell how far another seed would land? Within-run scatter against the seed-to-seed spread.

A single-seed table states the test set's sampling error (Clopper-Pearson) and says, in a note, that another
training seed or another machine moves a trained method further. A cheaper way to state that spread would be to
read it off the run's own learning curve: if a GAN at its plateau wanders around one level, the scatter of its curve
points over the plateau test's window (the last ``TAIL`` of training) would estimate where another seed's table
number falls. This script tests that on the committed seed studies, which hold every seed's curve (``curve.csv``;
each curve's last point is the table's number at the table step, made with the same weights).

Per study and method, over the seeds:

- ``seed sd``: the sample sd over seeds of the final error (the curve's last point): training luck, as the seed
  study measures it;
- ``within-run sd``: the pooled sd of each seed's window points about that seed's own window mean (the curve's
  scatter, test-set noise and checkpoint-to-checkpoint swings included; a trend in the window inflates it);
- ``ratio``: seed sd / within-run sd; one-way ANOVA of the window points grouped by seed (``scipy.stats.f_oneway``:
  do the seeds settle at levels of their own? the curve points of one run are not independent draws, so read p as
  a guide);
- ``own-curve coverage``: for each seed, the 95% prediction interval its own window gives for one more value
  (window mean ± t(k-1) sd sqrt(1 + 1/k), k window points); how many of the other seeds' final errors fall inside,
  over all ordered pairs of seeds. An interval that stated the seed spread would cover about 95%;
- with ``--pair A B``: the same own-curve intervals of every seed of study A against every final error of study B
  (another machine, the same preset), and the seed study's own prediction interval (mean ± t(n-1) sd sqrt(1 + 1/n))
  of A against B's finals, for comparison.

Usage (writes ``benchmarks/results/noise_sources.md`` and ``noise_sources.png``):

  python benchmarks/noise_sources.py
"""
from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from itertools import permutations
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from starbench.evaluate.curves import TAIL
from starbench.report import plt

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
STUDIES = {  # label: folder with curve.csv and provenance.json (a seed study's output)
    "rafd (EPYC, committed)": ROOT / "results/seeds/rafd_expression",
    "rafd 20k (EPYC)": RESULTS / "cross_machine/amd_epyc_bf16_20k_seeds",
    "rafd 20k (Xeon)": RESULTS / "cross_machine/intel_amx_bf16_20k_seeds",
    "rafd 6k (Xeon)": RESULTS / "cross_machine/intel_amx_bf16_seeds",
    "celeba (EPYC, committed)": ROOT / "results/seeds/celeba_attributes",
    "celeba 18k (EPYC)": RESULTS / "cross_machine/amd_epyc_celeba_seeds",
    "celeba 18k (Xeon)": RESULTS / "cross_machine/intel_amx_celeba_18k_seeds",
    "joint (EPYC, committed)": ROOT / "results/seeds/joint_training",
    "joint (Xeon)": RESULTS / "cross_machine/intel_amx_joint_seeds",
}
PAIRS = [  # the same preset on two CPUs: (A, B) and (B, A) are both reported
    ("rafd 20k (EPYC)", "rafd 20k (Xeon)"),
    ("celeba 18k (Xeon)", "celeba 18k (EPYC)"),
    ("joint (Xeon)", "joint (EPYC, committed)"),
]


@dataclass
class Seed:
    """One seed's curve: its window points (error %) and its final error."""

    window: np.ndarray
    final: float

    def interval(self) -> tuple[float, float]:
        """The 95% prediction interval for one more value that this run's window gives."""
        k = len(self.window)
        half = stats.t.ppf(0.975, k - 1) * self.window.std(ddof=1) * np.sqrt(1 + 1 / k)
        return self.window.mean() - half, self.window.mean() + half


def seeds_of(curve: pd.DataFrame) -> dict[str, list[Seed]]:
    """Per method, each seed's window (steps >= (1 - TAIL) x its last step) and final error."""
    out: dict[str, list[Seed]] = {}
    for (method, _), g in curve.sort_values(["method", "seed", "step"]).groupby(["method", "seed"], sort=False):
        last = g["step"].max()
        window = g.loc[g["step"] >= (1 - TAIL) * last, "error %"].to_numpy(float)
        out.setdefault(method, []).append(Seed(window, float(g["error %"].iloc[-1])))
    return out


def cpu_of(folder: Path) -> str:
    path = json.loads((folder / "provenance.json").read_text())["numerical_path"]
    units = path.get("cpu_bf16_units")  # older records do not name them
    return f"{path['cpu']} ({', '.join(units) or 'no bf16 unit'})" if units is not None else path["cpu"]


def covered(intervals: list[tuple[float, float]], values: list[float]) -> tuple[int, int]:
    inside = sum(lo <= v <= hi for lo, hi in intervals for v in values)
    return inside, len(intervals) * len(values)


def study_rows(label: str, seeds: dict[str, list[Seed]]) -> list[dict]:
    rows = []
    for method, runs in seeds.items():
        finals = np.array([s.final for s in runs])
        within = np.sqrt(np.mean([s.window.var(ddof=1) for s in runs]))
        anova = stats.f_oneway(*[s.window for s in runs]).pvalue if len(runs) > 1 else np.nan
        inside = sum(a.interval()[0] <= b.final <= a.interval()[1] for a, b in permutations(runs, 2))
        pairs = len(runs) * (len(runs) - 1)
        rows.append({
            "study": label, "method": method, "seeds": len(runs), "window points": len(runs[0].window),
            "final error % (mean)": f"{finals.mean():.2f}", "seed sd": f"{finals.std(ddof=1):.2f}",
            "within-run sd": f"{within:.2f}", "ratio": f"{finals.std(ddof=1) / within:.1f}",
            "ANOVA p (seeds differ)": f"{anova:.2g}",
            "own-curve coverage": f"{inside}/{pairs} ({100 * inside / pairs:.0f}%)",
        })
    return rows


def pair_rows(a_label: str, a: dict[str, list[Seed]], b_label: str, b: dict[str, list[Seed]]) -> list[dict]:
    rows = []
    for method in a:
        if method not in b:
            continue
        theirs = [s.final for s in b[method]]
        own = covered([s.interval() for s in a[method]], theirs)
        finals = np.array([s.final for s in a[method]])
        n = len(finals)
        half = stats.t.ppf(0.975, n - 1) * finals.std(ddof=1) * np.sqrt(1 + 1 / n)
        study = covered([(finals.mean() - half, finals.mean() + half)], theirs)
        rows.append({
            "intervals from": a_label, "finals of": b_label, "method": method,
            "own-curve intervals cover": f"{own[0]}/{own[1]} ({100 * own[0] / own[1]:.0f}%)",
            "seed-study interval": f"[{max(0.0, finals.mean() - half):.2f}, {finals.mean() + half:.2f}]",
            "it covers": f"{study[0]}/{study[1]}",
        })
    return rows


def same_runs(study: pd.DataFrame, seeds: dict[str, dict[str, list[Seed]]]) -> list[str]:
    """For each row, the earlier study whose runs of that method are these (a committed study that reuses another's
    runs), else '-'; such rows stay in the table but not in the summary."""
    out = []
    for i, row in study.iterrows():
        curves = [(tuple(s.window), s.final) for s in seeds[row["study"]][row["method"]]]
        earlier = [r["study"] for _, r in study.iloc[:i].iterrows() if r["method"] == row["method"]
                   and [(tuple(s.window), s.final) for s in seeds[r["study"]][r["method"]]] == curves]
        out.append(earlier[0] if earlier else "-")
    return out


def fraction(cells: pd.Series) -> tuple[int, int]:
    """Sum 'a/b (..%)' cells to (a, b)."""
    parts = [re.match(r"(\d+)/(\d+)", c).groups() for c in cells]
    return sum(int(a) for a, _ in parts), sum(int(b) for _, b in parts)


def summary(study: pd.DataFrame, pairs: pd.DataFrame) -> str:
    """The findings in numbers: how the seed sd compares with the within-run sd, and what each interval covers."""
    study = study[study["same runs as"] == "-"]
    ratios = study["ratio"].astype(float)
    own, total = fraction(study["own-curve coverage"])
    lines = [f"- seed sd / within-run sd over {len(study)} (study, method) rows: median {ratios.median():.1f}, "
             f"range {ratios.min():.1f}-{ratios.max():.1f}; {int((ratios > 1).sum())} rows above 1.",
             f"- a run's own-curve 95% interval covers another seed's final error in {own} of {total} pairs "
             f"({100 * own / total:.0f}%) within the studies."]
    if len(pairs):
        own, total = fraction(pairs["own-curve intervals cover"])
        study_in, study_total = fraction(pairs["it covers"])
        lines.append(f"- across machines: own-curve intervals cover {own} of {total} ({100 * own / total:.0f}%); "
                     f"the seed studies' prediction intervals {study_in} of {study_total} "
                     f"({100 * study_in / study_total:.0f}%).")
    return "\n".join(lines)


def figure(study: pd.DataFrame, out: Path) -> None:
    """Seed sd against within-run sd, one point per (study, method): above the diagonal, seeds settle at levels of
    their own that one run's curve does not show."""
    study = study[study["same runs as"] == "-"]
    x, y = study["within-run sd"].astype(float), study["seed sd"].astype(float)
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(5.5, 5))
    for protocol, marker in (("rafd", "o"), ("celeba", "s"), ("joint", "^")):
        rows = study["study"].str.startswith(protocol)
        ax.scatter(x[rows], y[rows], marker=marker, label=protocol)
    top = 1.1 * max(x.max(), y.max())
    ax.plot([0, top], [0, top], color="grey", lw=1, ls="--", label="seed sd = within-run sd")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="within-run sd over the plateau window (points)",
           ylabel="sd over seeds of the final error (points)",
           title="One run's curve against the seed-to-seed spread")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    pyplot.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "noise_sources.md")
    args = parser.parse_args()

    found = {label: folder for label, folder in STUDIES.items() if (folder / "curve.csv").exists()}
    seeds = {label: seeds_of(pd.read_csv(folder / "curve.csv")) for label, folder in found.items()}
    study = pd.DataFrame([row for label in found for row in study_rows(label, seeds[label])])
    study["same runs as"] = same_runs(study, seeds)
    pairs = pd.DataFrame([row for x, y in PAIRS if x in found and y in found
                          for a, b in ((x, y), (y, x)) for row in pair_rows(a, seeds[a], b, seeds[b])])
    where = "\n".join(f"- {label}: `{folder.relative_to(ROOT)}`, {cpu_of(folder)}" for label, folder in found.items())
    missing = [label for label in STUDIES if label not in found]
    text = "\n\n".join([
        "# Within-run scatter against the seed-to-seed spread",
        "Written by `python benchmarks/noise_sources.py` (its docstring defines every column) from the committed "
        f"seed studies' learning curves; window: the last {100 * TAIL:g}% of training, as the plateau test's.",
        "Studies:\n" + where + (f"\n\nNot found (not run yet): {', '.join(missing)}." if missing else ""),
        "## In numbers\n\n" + summary(study, pairs),
        "## Per study\n\n" + study.to_markdown(index=False),
        "## Across machines (the same preset)\n\n" + (pairs.to_markdown(index=False) if len(pairs) else "none"),
    ]) + "\n"
    args.out.write_text(text)
    figure(study, args.out.with_suffix(".png"))
    print(text)


if __name__ == "__main__":
    main()
