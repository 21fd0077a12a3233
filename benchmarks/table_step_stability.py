"""How far does the number a table reports move with the step it is taken at, with and without the weight average?

The plateau test (``starbench.evaluate.curves``) judges a method's learning curve: kept checkpoints, scored with
the weights the table translates with (``generator_weights``). By default that is the weight average
(``train.ema_window=0.1``), and a kept checkpoint at step s holds the running average with the run's own decay
(a window of 0.1 x its budget), so a curve point stands for the table a budget of s would give, up to the window
(0.1 x the longest budget instead of 0.1 x s). This measures that, and what the average buys: "NO (swings)" verdicts
say the averaged number still depends on its step; the last weights (the paper's code) swing more.

``run`` trains one method on ``rafd_expression`` once per budget T in ``--steps`` (one seed, constant learning
rate: the runs share one trajectory of last weights, so run T's last weights at step s are run T'`s for every
s <= min(T, T')), and scores each twice: with the weight average (the table as it is made) and with the last weights
(``generator_weights=last``, a re-score; its curve points are scored anew, not read from the average's cache).
``--every N`` gives every run of that call a curve point every N steps: give it in a call of the longest budget
alone (without it a run keeps two, at T / 2 and T). Rows go to
``benchmarks/results/table_step_stability/<method>-seed<N>.csv`` (a row per T; several ``run`` calls with disjoint
``--steps`` add to one file, so two processes can split the budgets).

``report`` writes ``summary.md`` and ``table_step_stability.png``: per method, over the plateau test's window (the
last 25% of the longest budget), the scatter about a fitted line of the averaged table numbers at the budgets T, of
the longest run's averaged curve points (what the test reads), of the last-weights table numbers and of the longest
run's last-weights curve points, beside the test set's standard error h / 1.96 that the test holds the curve to;
and two checks: each run's last-weights number equals the longest run's last-weights curve point at that step (the
runs do share a trajectory), and how far each averaged table number lies from the averaged curve point at its step.

Usage:
  python benchmarks/table_step_stability.py run --method diat --steps 400 --every 20
  python benchmarks/table_step_stability.py run --method diat --steps 240,260,280,300,320,340,360,380
  python benchmarks/table_step_stability.py report
"""
from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from filelock import FileLock

from starbench.config import resolve
from starbench.devices import cpu_label
from starbench.evaluate.curves import TAIL
from starbench.evaluate.parallel import side_by_side
from starbench.metrics.stats import error_rate
from starbench.registry import PROTOCOLS
from starbench.report import plt

OUT = Path(__file__).parent / "results" / "table_step_stability"
RUNS = Path("runs") / "stability"
QUIET = ["train.progress=false", "fid.download=false", "train.tensorboard=false", "curve_distances=false"]
NUMBER = re.compile(r"^\s*([0-9.]+)")


def score(method: str, steps: int, seed: int, every: int, weights: str, runs: Path, extra: list[str]) -> dict:
    """One protocol run (training only the first time): the method's table error and its curve points."""
    name = f"{method}-T{steps}-seed{seed}-{weights}"
    overrides = ["protocol=rafd_expression", f"models=[{method}]", f"train.model_steps.{method}={steps}",
                 f"seed={seed}", f"curve_model_every.{method}={every}", f"generator_weights={weights}", *QUIET,
                 f"run_dir={runs}", f"results_dir={runs / 'results' / name}", *extra]
    cfg, protocol = resolve(overrides), PROTOCOLS.get("rafd_expression")
    start = time.perf_counter()
    with side_by_side(cfg, protocol):
        result = protocol(cfg)
    record = json.loads((result.folder / "record.json").read_text())
    prov = json.loads((result.folder / "provenance.json").read_text())
    row = next(r for r in record["table3"] if r["method"] == method)
    curve = pd.read_csv(result.folder / "curve.csv")
    curve = curve[curve["method"] == method]
    return {"error": float(NUMBER.match(str(row["classification error % [95% CI]"])).group(1)),
            "converged": row.get("converged"), "train_seconds": prov["runs"][method].get("train_seconds"),
            "seconds": round(time.perf_counter() - start, 1),
            "threads": prov["numerical_path"]["threads_per_process"],
            "curve": [(int(s), float(e)) for s, e in zip(curve["step"], curve["error %"])]}


def run(args: argparse.Namespace) -> None:
    steps = sorted(int(s) for s in args.steps.split(","))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    file = out / f"{args.method}-seed{args.seed}.csv"
    for t in steps:
        every = args.every if args.every else t // 2  # two curve points: T / 2 and T (the table's number)
        averaged = score(args.method, t, args.seed, every, "average", Path(args.runs), args.set)
        last = score(args.method, t, args.seed, every, "last", Path(args.runs), args.set)
        row = {"method": args.method, "seed": args.seed, "T": t, "table error % (weight average)": averaged["error"],
               "table error % (last weights)": last["error"], "converged (plateau test)": averaged["converged"],
               "train s": averaged["train_seconds"],
               # the kept checkpoints before T, scored each way (the point at T is the table's number)
               "curve (weight average)": json.dumps([(s, e) for s, e in averaged["curve"] if s < t]),
               "curve (last weights)": json.dumps([(s, e) for s, e in last["curve"] if s < t]),
               "cpu": cpu_label(), "torch": torch.__version__, "threads": averaged["threads"],
               "options": " ".join(args.set)}
        print(json.dumps({k: v for k, v in row.items() if not k.startswith("curve")}), flush=True)
        Path(args.runs).mkdir(parents=True, exist_ok=True)
        with FileLock(str(Path(args.runs) / f"{file.name}.lock")):  # two processes may add to one file
            old = pd.read_csv(file) if file.exists() else pd.DataFrame()
            if len(old):
                old = old[old["T"] != t]
            new = pd.concat([old, pd.DataFrame([row])]).sort_values("T")
            tmp = file.with_suffix(".tmp")
            new.to_csv(tmp, index=False)
            tmp.replace(file)


def scatter(steps: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """The change of the fitted line over the window and the points' sd about it (as the plateau test takes them)."""
    slope, intercept = np.polyfit(steps, values, 1)
    sd = float(np.std(values - (slope * steps + intercept), ddof=2)) if len(values) > 2 else float("nan")
    return float(slope * (steps[-1] - steps[0])), sd


def halfwidth(error: float, n: int = 441) -> float:
    """The half-width of the 95% Clopper-Pearson interval at that error over n translations (RaFD: 63 x 7)."""
    k = round(error * n / 100)
    ci = error_rate(np.array([True] * k + [False] * (n - k)))
    return 100 * (ci.high - ci.low) / 2


def curve_of(row: pd.Series, weights: str) -> dict[int, float]:
    """The longest run's curve scored with ``weights`` ('weight average' or 'last weights'), its table point at T
    included."""
    points = {int(s): float(e) for s, e in json.loads(row[f"curve ({weights})"])}
    points[int(row["T"])] = float(row[f"table error % ({weights})"])
    return points


def window_scatter(points: dict[int, float], start: float) -> tuple[float, float, int]:
    """``scatter`` of the points at steps >= ``start``, and how many there are."""
    steps = sorted(s for s in points if s >= start)
    trend, sd = scatter(np.array(steps, float), np.array([points[s] for s in steps]))
    return trend, sd, len(steps)


def report(args: argparse.Namespace) -> None:
    out = Path(args.out)
    lines = ["# The table's number against the step it is taken at", "",
             "`python benchmarks/table_step_stability.py report`; rows from `run` (see the script's docstring). "
             "Window: the last 25% of the longest budget Tmax, as the plateau test's. sd: the scatter about the "
             "fitted line (ddof 2); trend: that line's change over the window; h: the 95% Clopper-Pearson "
             "half-width at the longest budget's averaged error over 441 translations (the plateau test asks for "
             "sd < h / 1.96 and |trend| < h). Tables: one training run per budget T in the window. Curve: the "
             "longest run's kept checkpoints in the window, scored the same way (the averaged one is what the "
             "plateau test reads).", "",
             "| method, seed | budgets T in the window | averaged: tables at T, sd (trend) | averaged: curve, sd "
             "(trend), n | last weights: tables at T, sd (trend) | last weights: curve, sd (trend), n | h / 1.96 | "
             "last-weights table at T = curve point at T | averaged table at T - curve point at T: mean abs, max |",
             "|---|---|---|---|---|---|---|---|---|"]
    files = sorted(out.glob("*-seed*.csv"))
    pyplot = plt()
    rows = max(1, (len(files) + 1) // 2)
    fig, axes = pyplot.subplots(rows, 2, figsize=(10.4, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(files):]:
        ax.set_visible(False)
    for ax, file in zip(axes.flat, files):
        df = pd.read_csv(file).sort_values("T")
        longest = df.iloc[-1]
        tmax = int(longest["T"])
        start = (1 - TAIL) * tmax
        avg_curve, last_curve = curve_of(longest, "weight average"), curve_of(longest, "last weights")
        win = df[df["T"] >= start]
        t = win["T"].to_numpy(float)
        avg_trend, avg_sd = scatter(t, win["table error % (weight average)"].to_numpy(float))
        last_trend, last_sd = scatter(t, win["table error % (last weights)"].to_numpy(float))
        ac_trend, ac_sd, ac_n = window_scatter(avg_curve, start)
        lc_trend, lc_sd, lc_n = window_scatter(last_curve, start)
        h = halfwidth(float(longest["table error % (weight average)"]))
        both = [r for _, r in df.iterrows() if int(r["T"]) in last_curve and int(r["T"]) in avg_curve]
        # tables give two decimals, curve points the full float
        same = [abs(last_curve[int(r["T"])] - r["table error % (last weights)"]) < 0.006 for r in both]
        gaps = [abs(avg_curve[int(r["T"])] - r["table error % (weight average)"]) for r in both
                if int(r["T"]) != tmax]
        gap = f"{np.mean(gaps):.2f}, {max(gaps):.2f} ({len(gaps)} budgets)" if gaps else "n/a"
        lines.append(f"| {df['method'].iloc[0]}, {int(df['seed'].iloc[0])} | {', '.join(str(int(x)) for x in t)} | "
                     f"{avg_sd:.2f} ({avg_trend:+.1f}) | {ac_sd:.2f} ({ac_trend:+.1f}), {ac_n} | "
                     f"{last_sd:.2f} ({last_trend:+.1f}) | {lc_sd:.2f} ({lc_trend:+.1f}), {lc_n} | {h / 1.96:.2f} | "
                     f"{sum(same)} of {len(same)} | {gap} |")
        for points, colour, label in ((last_curve, "0.6", "curve, last weights"),
                                      (avg_curve, "tab:blue", "curve, weight average (what the plateau test reads)")):
            steps = sorted(points)
            ax.plot(steps, [points[s] for s in steps], color=colour, lw=1, marker=".", ms=3, alpha=0.8, label=label)
        ax.plot(df["T"], df["table error % (last weights)"], "s", mfc="none", color="tab:orange",
                label="table at budget T, last weights")
        ax.plot(df["T"], df["table error % (weight average)"], "o", color="tab:blue", mfc="none", ms=7,
                label="table at budget T, weight average (what it reports)")
        ax.axvspan(start, tmax, color="0.92", lw=0)
        left = df["T"].min() - 0.3 * (tmax - df["T"].min())
        ax.set_xlim(left, tmax * 1.01)
        shown = [e for points in (avg_curve, last_curve) for s, e in points.items() if s >= left]
        ax.set_ylim(0, 1.15 * max(shown + df["table error % (last weights)"].tolist()))
        ax.set_xlabel("training steps (grey: the plateau test's window)", fontsize=8)
        ax.set_ylabel("classification error %", fontsize=8)
        ax.set_title(f"{df['method'].iloc[0]}, seed {int(df['seed'].iloc[0])}; {df['cpu'].iloc[0]}", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "table_step_stability.png", dpi=110)
    pyplot.close(fig)
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--method", required=True)
    r.add_argument("--steps", required=True, help="the budgets T, separated by commas")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--every", type=int, default=0, help="curve points every N steps (give it with the longest "
                   "budget); absent: two, at T / 2 and T")
    r.add_argument("--set", nargs="*", default=[], help="KEY=VALUE overrides of the demo settings")
    r.add_argument("--runs", default=str(RUNS), help="run folder (shared, not committed)")
    r.add_argument("--out", default=str(OUT))
    rep = sub.add_parser("report")
    rep.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    {"run": run, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
