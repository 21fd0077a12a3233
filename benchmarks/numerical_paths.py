"""Agreement across numerical paths: the stand-in for "another machine".

Two machines differ in the arithmetic they run (bf16 or fp32 kernels, how many threads split a reduction), so the
same config and seed give other bits, and after thousands of GAN steps, other models. A result holds on another
machine when it holds on every path one machine can offer. This script runs the committed configuration of
``rafd_expression`` with several training seeds on each path:

- ``fp32-2t``: fp32, 2 threads;
- ``fp32-1t``: fp32, 1 thread (another reduction order in every convolution);
- ``bf16-2t``: bf16 autocast, 2 threads (on a CPU without native bf16 it is emulated, slowly, but it is the
  arithmetic of the machines that have it).

Each path trains everything anew (its own run folder, its own classifier) in its own process, so paths may run
side by side. Then, per method, the mean error over seeds on each path must lie inside every other path's
t-interval over seeds, and every ranking the reference path declares (two methods' t-intervals disjoint) must
hold on every path.

Usage:
  python benchmarks/numerical_paths.py run --path fp32-1t --seeds 0,1,2      # one path (a process of its own)
  python benchmarks/numerical_paths.py report --reference fp32-2t            # the table and the checks
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

OUT = Path(__file__).parent / "results" / "numerical_paths"
PATHS = {"fp32-2t": (False, 2), "fp32-1t": (False, 1), "bf16-2t": (True, 2)}


def run(args: argparse.Namespace) -> None:
    bf16, threads = PATHS[args.path]
    torch.set_num_threads(threads)
    from starbench.config import resolve
    from starbench.registry import PROTOCOLS
    from starbench.train import speed

    if bf16:  # the bf16 path on any CPU: autocast is asked for and not refused where the CPU would emulate it
        speed.cpu_has_bf16 = lambda: True
    work = Path(args.work) / args.path
    overrides = ["protocol=rafd_expression", f"seeds=[{args.seeds}]", "train.progress=false", "fid.download=false",
                 f"train.amp={'true' if bf16 else 'false'}", f"run_dir={work / 'runs'}",
                 f"results_dir={work / 'results'}", *args.set]
    start = time.perf_counter()
    result = PROTOCOLS.get("rafd_expression")(resolve(overrides))
    OUT.mkdir(parents=True, exist_ok=True)
    per_seed = pd.read_csv(result.folder / "per_seed.csv", keep_default_na=False, dtype=str)
    per_seed.to_csv(OUT / f"{args.path}.csv", index=False)
    prov = json.loads((result.folder / "provenance.json").read_text())
    (OUT / f"{args.path}.json").write_text(json.dumps({
        "path": args.path, "bf16": bf16, "threads": threads, "seeds": args.seeds, "overrides": args.set,
        "cpu": platform.processor() or cpu_name(), "torch": torch.__version__,
        "seconds": round(time.perf_counter() - start), "real_error": prov["classifier"]["real_test_error"]},
        indent=2) + "\n")


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def errors(path: str) -> dict[str, list[float]]:
    df = pd.read_csv(OUT / f"{path}.csv", keep_default_na=False, dtype=str)
    column = "classification error % [95% CI]"
    out: dict[str, list[float]] = {}
    for method, cell in zip(df["method"], df[column]):
        try:
            out.setdefault(method, []).append(float(cell.split()[0]))
        except ValueError:  # a diverged seed
            pass
    return out


def interval(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return float("nan"), float("nan")
    sem = float(np.std(values, ddof=1)) / math.sqrt(len(values))
    if sem == 0:
        return float(np.mean(values)), float(np.mean(values))
    return tuple(stats.t.interval(0.95, len(values) - 1, loc=float(np.mean(values)), scale=sem))  # type: ignore


def report(args: argparse.Namespace) -> None:
    paths = [p for p in PATHS if (OUT / f"{p}.csv").is_file()]
    data = {p: errors(p) for p in paths}
    methods = list(dict.fromkeys(m for p in paths for m in data[p]))
    rows, problems = [], []
    for m in methods:
        row = {"method": m}
        for p in paths:
            v = data[p].get(m, [])
            lo, hi = interval(v)
            row[p] = f"{np.mean(v):.2f} ± {np.std(v, ddof=1):.2f} [{lo:.1f}, {hi:.1f}]" if len(v) > 1 else "n/a"
        agree = all(interval(data[q][m])[0] <= np.mean(data[p][m]) <= interval(data[q][m])[1]
                    for p in paths for q in paths if p != q and m in data[p] and m in data[q])
        row["means inside every other path's t-interval"] = "yes" if agree else "NO"
        if not agree:
            problems.append(f"{m}: the per-path means do not all lie inside the other paths' t-intervals")
        rows.append(row)
    ref = args.reference if args.reference in paths else paths[0]
    rankings = []
    for a in methods:
        for b in methods:
            ia, ib = interval(data[ref].get(a, [])), interval(data[ref].get(b, []))
            if a != b and ia[1] < ib[0]:  # the reference path declares a below b
                held = [p for p in paths if np.mean(data[p][a]) < np.mean(data[p][b])]
                rankings.append({"declared on " + ref: f"{a} < {b}", "holds on": ", ".join(held),
                                 "all paths": "yes" if len(held) == len(paths) else "NO"})
                if len(held) < len(paths):
                    problems.append(f"{a} < {b} (declared on {ref}) fails on {set(paths) - set(held)}")
    meta = [json.loads((OUT / f"{p}.json").read_text()) for p in paths]
    text = ("**Classification error % per method and numerical path (mean ± sd over seeds [95% t-interval])**\n\n"
            + pd.DataFrame(rows).to_markdown(index=False) + "\n\n**Rankings with disjoint t-intervals on "
            + ref + "**\n\n" + (pd.DataFrame(rankings).to_markdown(index=False) if rankings else "(none)") + "\n\n"
            + "\n".join(f"- {m['path']}: {m['threads']} thread(s), {'bf16' if m['bf16'] else 'fp32'}, seeds "
                        f"{m['seeds']}, {m['seconds']} s, classifier real error {100 * m['real_error']:.2f}%, "
                        f"{m['cpu']}, torch {m['torch']}" for m in meta)
            + "\n\n" + ("All checks hold." if not problems else "Checks that fail:\n" +
                        "\n".join(f"- {p}" for p in problems)) + "\n")
    (OUT / "summary.md").write_text(text)
    print(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--path", choices=list(PATHS), required=True)
    r.add_argument("--seeds", default="0,1,2")
    r.add_argument("--work", default="runs/paths", help="where each path's runs and results go (not committed)")
    r.add_argument("--set", nargs="*", default=[], help="KEY=VALUE settings beside the committed configuration")
    rep = sub.add_parser("report")
    rep.add_argument("--reference", default="fp32-2t")
    args = ap.parse_args()
    {"run": run, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
