"""Would averaging a run's late checkpoints steady its RaFD error? A post-hoc check on runs already trained.

StarGAN's seeds spread (three runs in fifteen at 6-9% against 1.6-5.0% for the others) although every run
translates with its weight average over the last 10% of its steps (``train.ema_window=0.1``). A longer average is
one standard way to damp a generator that drifts late. This script builds it after the fact from the checkpoints a
run keeps at its curve points (``kept/step_*.pt``, each holding the weight average of that moment): the mean of
the averaged networks over the kept checkpoints in the last ``share`` of training, for each share asked. Each run
is then translated and judged exactly as the protocol does (``judge_confusions.column_verdicts``: the protocol's
precision, layout and batches, the judge from the cache) and its error printed beside the table's (the run's own
checkpoint). Every method is treated alike. Nothing here changes a committed number: a question for a later preset.

Usage:
  python benchmarks/checkpoint_average.py --runs "runs/models/*-rafd-*" --set jobs=2 --threads 1 --shares 0.25,0.5 \\
      --where "train.model_steps.stargan=12000 train.amp=None"
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from judge_confusions import add_run_options, column_verdicts, protocol_judge, selected_runs

from starbench.files import load_torch, save_torch


def averaged_checkpoint(run: Path, share: float, out: Path) -> tuple[Path, int]:
    """The run's checkpoint with its weight average replaced by the mean of the kept averages in the last ``share``
    of training (floating tensors averaged, others from the last), written to ``out``; and how many were averaged."""
    ckpt = load_torch(run / "checkpoint.pt", "checkpoint")
    total = int(ckpt["total_steps"])
    kept = sorted(run.glob("kept/step_*.pt"))
    chosen = [p for p in kept if int(p.stem.split("_")[1]) > (1 - share) * total]
    snapshots = [load_torch(p, "kept checkpoint")["average"]["networks"] for p in chosen]
    if not chosen or int(chosen[-1].stem.split("_")[1]) != total:  # the final average, unless kept already
        snapshots.append(ckpt["average"]["networks"])
    mean: dict[str, dict[str, torch.Tensor]] = {}
    for name, last in ckpt["average"]["networks"].items():
        mean[name] = {k: (torch.stack([s[name][k] for s in snapshots]).mean(0) if v.is_floating_point() else v)
                      for k, v in last.items()}
    ckpt["average"]["networks"] = mean
    save_torch(out, ckpt)
    return out, len(snapshots)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_options(ap)
    ap.add_argument("--shares", default="0.25,0.5", help="the late shares of training to average over")
    args = ap.parse_args()
    shares = [float(s) for s in args.shares.split(",")]
    cfg, task, judge, about = protocol_judge(args)
    print(f"{about}; error % of each run: its own checkpoint (the table's), then its kept averages over the last "
          f"{', '.join(f'{s:.0%}' for s in shares)} of training averaged")
    wanted = [task.targets[task.rows_of(t), t].argmax(1) for t in range(len(task.columns))]

    def error_of(weights: Path, model: str) -> float:
        verdicts = column_verdicts(weights, model, cfg, task, judge)
        return 100 * float(np.concatenate([v != w for v, w in zip(verdicts, wanted)]).mean())

    results: dict[str, list[list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run, run_cfg in selected_runs(args):
            model = str(run_cfg.model)
            row, counts = [error_of(run / "checkpoint.pt", model)], []
            for share in shares:
                path, n = averaged_checkpoint(run, share, Path(tmp) / f"{run.name}-{share}.pt")
                row.append(error_of(path, model))
                counts.append(n)
            results.setdefault(model, []).append(row)
            print(f"{run.name} (seed {run_cfg.seed}): " + " / ".join(f"{e:.2f}" for e in row)
                  + f"  (kept averages averaged: {', '.join(map(str, counts))})", flush=True)
    for model, rows in sorted(results.items()):
        a = np.array(rows)
        cells = [f"{m:.2f} ± {s:.2f} (max {x:.2f})" for m, s, x in zip(a.mean(0), a.std(0, ddof=1), a.max(0))]
        print(f"{model}, {len(rows)} runs, mean ± sd (max): " + " / ".join(cells))


if __name__ == "__main__":
    main()
