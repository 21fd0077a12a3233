"""How far the judge's own seed moves a table: the same trained runs scored by several classifiers.

The classification error of a translation is decided by the protocol's classifier, itself a network trained from
a seed. This script scores the trained runs of a finished seed study (``run_dir``, reused: nothing is retrained)
with single classifiers of several seeds and with ensembles (``classifier.members``) of disjoint seeds, and reports,
per kind of judge, how far two judges of that kind disagree on the same run (mean and largest absolute difference in
error points over every (method, training seed) row). Only the final models are scored: the learning curves'
kept checkpoints are skipped (``Evaluation.curve`` is replaced here), so each judge's table has no curve and its
``converged`` column says unknown. Each judge's table goes to ``--work``; the per-row errors and the summary to
``benchmarks/results/judge_seeds/``.

Usage:
  python benchmarks/judge_seeds.py run --run-dir runs --seeds 0,1,2            # 6 singles, 2 ensembles of 3
  python benchmarks/judge_seeds.py report
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import pandas as pd
import torch

from starbench.config import resolve
from starbench.devices import cpu_label
from starbench.evaluate.core import Evaluation
from starbench.registry import PROTOCOLS

OUT = Path(__file__).parent / "results" / "judge_seeds"
ERROR = "classification error"


def final_models_only(self, *args, **kwargs) -> list:
    """In place of ``Evaluation.curve``: no learning curve (what the comparison needs is the final models' errors)."""
    return []


def judges(singles: int, members: int) -> dict[str, tuple[int, int]]:
    """name -> (classifier.seed, classifier.members): ``singles`` single judges, and ensembles of ``members`` over
    the same seeds in disjoint groups."""
    out = {f"single s{s}": (s, 1) for s in range(singles)}
    for first in range(0, singles - members + 1, members):
        out[f"ensemble s{first}-{first + members - 1}"] = (first, members)
    return out


def errors(folder: Path) -> pd.Series:
    """(method, seed) -> error % of a seed study's per_seed.csv."""
    df = pd.read_csv(folder / "per_seed.csv", keep_default_na=False, dtype=str)
    column = next(c for c in df.columns if c.startswith(ERROR))
    return pd.Series([float(v.split()[0]) for v in df[column]],
                     index=pd.MultiIndex.from_arrays([df["method"], df["seed"].astype(int)], names=["method", "seed"]))


def run(args: argparse.Namespace) -> None:
    Evaluation.curve = final_models_only
    rows, meta = {}, {}
    for name, (seed, members) in judges(args.singles, args.members).items():
        folder = Path(args.work) / name.replace(" ", "_")
        overrides = ["protocol=rafd_expression", "jobs=1", f"seeds=[{args.seeds}]", "train.progress=false",
                     "fid.download=false", f"run_dir={args.run_dir}", f"results_dir={folder}",
                     f"classifier.seed={seed}", f"classifier.members={members}", *args.set]
        start = time.perf_counter()
        result = PROTOCOLS.get("rafd_expression")(resolve(overrides))
        prov = json.loads((result.folder / "provenance.json").read_text())
        if any(not r.get("reused") for r in prov["runs"].values()):
            raise SystemExit(f"{name}: a run was trained, not reused: --run-dir must hold the finished seed study")
        rows[name] = errors(result.folder)
        seconds = round(time.perf_counter() - start)
        meta[name] = {"classifier.seed": seed, "classifier.members": members, "seconds": seconds,
                      "real_error": prov["classifier"]["real_test_error"]}
    OUT.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(OUT / f"{args.name}.csv")
    (OUT / f"{args.name}.json").write_text(json.dumps({
        "run_dir": args.run_dir, "seeds": args.seeds, "overrides": args.set, "judges": meta,
        "cpu": cpu_label(), "torch": torch.__version__}, indent=2)
        + "\n")
    report(args)


def disagreement(df: pd.DataFrame, names: list[str]) -> dict[str, float]:
    """Over every pair of the judges ``names``: mean and largest |error difference| on the same row."""
    diffs = pd.concat([(df[a] - df[b]).abs() for a, b in itertools.combinations(names, 2)])
    return {"pairs": len(names) * (len(names) - 1) // 2, "mean |diff|": round(float(diffs.mean()), 2),
            "max |diff|": round(float(diffs.max()), 2)}


def report(args: argparse.Namespace) -> None:
    lines = []
    for path in sorted(OUT.glob("*.csv")):
        df = pd.read_csv(path, index_col=[0, 1])
        meta = json.loads(path.with_suffix(".json").read_text())
        kinds = {"single": [c for c in df.columns if c.startswith("single")],
                 "ensemble": [c for c in df.columns if c.startswith("ensemble")]}
        table = pd.DataFrame({kind: disagreement(df, names) for kind, names in kinds.items() if len(names) > 1}).T
        lines += [f"## {path.stem}", "", f"Runs: `{meta['run_dir']}` (training seeds {meta['seeds']}), CPU "
                  f"{meta['cpu']}, torch {meta['torch']}; judges' real-image error: "
                  + ", ".join(f"{k} {100 * v['real_error']:.2f}%" for k, v in meta["judges"].items()) + ".", "",
                  "Error % of every (method, training seed) row under each judge:", "",
                  df.round(2).to_markdown(), "",
                  "How far two judges of one kind disagree on the same row (error points):", "",
                  table.to_markdown(), ""]
    (OUT / "summary.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--run-dir", required=True, help="run folder of a finished seed study (nothing is retrained)")
    r.add_argument("--seeds", default="0,1,2", help="its training seeds")
    r.add_argument("--singles", type=int, default=6, help="single judges, classifier.seed 0 .. N-1")
    r.add_argument("--members", type=int, default=3, help="ensemble size; ensembles use the singles' seeds")
    r.add_argument("--name", default="bf16-1t", help="the file name of this set of runs")
    r.add_argument("--work", default="runs/judge_seeds", help="where each judge's protocol folder goes")
    r.add_argument("--set", nargs="*", default=[], help="KEY=VALUE settings the study was made with (train.amp=...)")
    sub.add_parser("report")
    args = ap.parse_args()
    {"run": run, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
