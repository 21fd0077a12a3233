"""Does the table's number depend on the step it is taken at, once the weight average is what the table reports?

The plateau test (``starbench.evaluate.curves``) judges a method's learning curve, whose points before the table step
are the raw weights of kept checkpoints, while the table itself translates with the weight average of the last 10%
of training (``train.ema_window``; ``generator_weights=average``). A curve that swings from checkpoint to checkpoint
is marked NO (swings); this measures whether the number the table reports swings as much.

``run`` trains one method on ``rafd_expression`` once per budget T in ``--steps`` (one seed, constant learning
rate: the runs share one raw trajectory, so run T's raw weights at step s are run T'`s for every s <= min(T, T')),
and scores each twice: with the weight average (the table as it is made) and with the last weights
(``generator_weights=last``, a re-score). The longest budget also keeps a raw curve point every ``--every`` steps.
Rows go to ``benchmarks/results/table_step_stability/<method>-seed<N>.csv`` (a row per T; several ``run`` calls
with disjoint ``--steps`` add to one file, so two processes can split the budgets).

``report`` writes ``summary.md`` and ``table_step_stability.png``: per method, over the plateau test's window (the
budgets T in the last 25% of the longest), the scatter about a fitted line of the averaged table numbers, of the
last-weights numbers and of the raw curve points, beside the test set's standard error h / 1.96 that the plateau
test holds the raw points to; and the check that each run's last-weights number equals the longest run's raw curve
point at that step (the runs do share a trajectory).

Usage:
  python benchmarks/table_step_stability.py run --method diat --steps 240,280,320,360,400 --every 20
  python benchmarks/table_step_stability.py run --method diat --steps 260,300,340,380
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
        every = args.every if args.every else t  # a curve point at T alone (it is the table's number)
        averaged = score(args.method, t, args.seed, every, "average", Path(args.runs), args.set)
        last = score(args.method, t, args.seed, every, "last", Path(args.runs), args.set)
        raw = [(s, e) for s, e in last["curve"] if s < t]  # points before T are raw checkpoints either way
        row = {"method": args.method, "seed": args.seed, "T": t, "table error % (weight average)": averaged["error"],
               "table error % (last weights)": last["error"], "converged (plateau test)": averaged["converged"],
               "train s": averaged["train_seconds"], "raw curve": json.dumps(raw), "cpu": cpu_label(),
               "torch": torch.__version__, "threads": averaged["threads"], "options": " ".join(args.set)}
        print(json.dumps({k: v for k, v in row.items() if k != "raw curve"}), flush=True)
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


def report(args: argparse.Namespace) -> None:
    out = Path(args.out)
    lines = ["# The table's number against the step it is taken at", "",
             "`python benchmarks/table_step_stability.py report`; rows from `run` (see the script's docstring). "
             "Window: the budgets T in the last 25% of the longest, as the plateau test's. sd: the scatter about "
             "the fitted line (ddof 2); trend: that line's change over the window; h: the 95% Clopper-Pearson "
             "half-width at the longest budget's averaged error over 441 translations; the plateau test holds the "
             "raw curve points to sd < h / 1.96.", "",
             "| method, seed | budgets T in the window | weight-average table: sd (trend) | last-weights table: sd "
             "(trend) | raw curve points in the window: sd (trend), n | h / 1.96 | last weights = raw point at T |",
             "|---|---|---|---|---|---|---|"]
    files = sorted(out.glob("*-seed*.csv"))
    pyplot = plt()
    fig, axes = pyplot.subplots(1, max(len(files), 1), figsize=(5.2 * max(len(files), 1), 3.6), squeeze=False)
    for ax, file in zip(axes[0], files):
        df = pd.read_csv(file).sort_values("T")
        longest = df.iloc[-1]
        tmax = int(longest["T"])
        raw = dict(json.loads(longest["raw curve"]))
        raw[tmax] = float(longest["table error % (last weights)"])
        win = df[df["T"] >= (1 - TAIL) * tmax]
        t = win["T"].to_numpy(float)
        avg_trend, avg_sd = scatter(t, win["table error % (weight average)"].to_numpy(float))
        last_trend, last_sd = scatter(t, win["table error % (last weights)"].to_numpy(float))
        raw_win = sorted((s, e) for s, e in raw.items() if s >= (1 - TAIL) * tmax)
        raw_trend, raw_sd = scatter(np.array([s for s, _ in raw_win], float), np.array([e for _, e in raw_win]))
        h = halfwidth(float(longest["table error % (weight average)"]))
        same = [abs(raw[int(r["T"])] - r["table error % (last weights)"]) < 1e-6 for _, r in df.iterrows()
                if int(r["T"]) in raw]
        lines.append(f"| {df['method'].iloc[0]}, {int(df['seed'].iloc[0])} | {', '.join(str(int(x)) for x in t)} | "
                     f"{avg_sd:.2f} ({avg_trend:+.1f}) | {last_sd:.2f} ({last_trend:+.1f}) | {raw_sd:.2f} "
                     f"({raw_trend:+.1f}), {len(raw_win)} | {h / 1.96:.2f} | {sum(same)} of {len(same)} |")
        steps_all = sorted(raw)
        ax.plot(steps_all, [raw[s] for s in steps_all], color="0.6", lw=1, marker=".", ms=3,
                label="raw checkpoints (the curve the plateau test reads)")
        ax.plot(df["T"], df["table error % (last weights)"], "s", mfc="none", color="tab:orange",
                label="table at T, last weights")
        ax.plot(df["T"], df["table error % (weight average)"], "o-", color="tab:blue",
                label="table at T, weight average (what it reports)")
        ax.axvspan((1 - TAIL) * tmax, tmax, color="0.92", lw=0)
        ax.set_xlim(df["T"].min() - 0.3 * (tmax - df["T"].min()), tmax * 1.01)
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
    r.add_argument("--every", type=int, default=0, help="raw curve points every N steps (give it with the longest "
                   "budget); absent: one curve point, at T")
    r.add_argument("--set", nargs="*", default=[], help="KEY=VALUE overrides of the demo settings")
    r.add_argument("--runs", default=str(RUNS), help="run folder (shared, not committed)")
    r.add_argument("--out", default=str(OUT))
    rep = sub.add_parser("report")
    rep.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    {"run": run, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
