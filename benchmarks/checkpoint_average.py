"""Would averaging a run's late checkpoints steady its RaFD error? A post-hoc check on runs already trained.

StarGAN's seeds spread (three runs in fifteen at 6-9% against 1.6-5.0% for the others) although every run
translates with its weight average over the last 10% of its steps (``train.ema_window=0.1``). A longer average is
one standard way to damp a generator that drifts late. This script builds it after the fact from the checkpoints a
run keeps at its curve points (``kept/step_*.pt``, each holding the weight average of that moment): the mean of
the averaged networks over the kept checkpoints in the last ``share`` of training, for each share asked. Each run
is then translated and judged exactly as the protocol does (``FileSource``, the protocol's precision, layout and
batches, the judge from the cache) and its error printed beside the table's (share 0: the run's own checkpoint).
Every method is treated alike. Nothing here changes a committed number: it is a question for a later preset.

Usage:
  python benchmarks/checkpoint_average.py --runs "runs/models/*-rafd-*" --set jobs=2 --threads 1 --shares 0.25,0.5 \\
      --where "train.model_steps.stargan=12000 train.amp=None"
"""
from __future__ import annotations

import argparse
import glob
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from starbench.config import resolve
from starbench.data import load_data
from starbench.devices import cpu_label
from starbench.evaluate.classifiers import classify
from starbench.evaluate.sources import FileSource
from starbench.files import load_torch, save_torch
from starbench.protocols.rafd_expression import expression_classifier, expression_task
from starbench.train.speed import fast_path


def averaged_checkpoint(run: Path, share: float, out: Path) -> tuple[Path, int]:
    """The run's checkpoint with its weight average replaced by the mean of the kept averages in the last ``share``
    of training (floating tensors averaged, others from the last), written to ``out``; and how many were averaged."""
    ckpt = load_torch(run / "checkpoint.pt", "checkpoint")
    total = int(ckpt["total_steps"])
    kept = sorted(run.glob("kept/step_*.pt"))
    chosen = [p for p in kept if int(p.stem.split("_")[1]) > (1 - share) * total]
    snapshots = [load_torch(p, "kept checkpoint")["average"]["networks"] for p in chosen]
    snapshots.append(ckpt["average"]["networks"])  # the final one (the last kept step may be the final step)
    if chosen and int(chosen[-1].stem.split("_")[1]) == total:
        snapshots.pop()
    mean: dict[str, dict[str, torch.Tensor]] = {}
    for name, last in ckpt["average"]["networks"].items():
        mean[name] = {k: (torch.stack([s[name][k] for s in snapshots]).mean(0) if v.is_floating_point() else v)
                      for k, v in last.items()}
    ckpt["average"]["networks"] = mean
    save_torch(out, ckpt)
    return out, len(snapshots)


def error_of(path: Path, model: str, cfg: Any, task: Any, judge: Any) -> float:
    device = torch.device("cpu")
    source = FileSource(path.stem, model, path, cfg, device)
    source.fast = fast_path(device, cfg.train.amp, cfg.train.channels_last)  # as the protocol translates
    source.prepare(task)
    wrong = [classify(judge, source.column(task, t)) != task.targets[task.rows_of(t), t].argmax(1)
             for t in range(len(task.columns))]
    return 100 * float(np.concatenate(wrong).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", required=True, help="a glob of run folders (each with checkpoint.pt and kept/)")
    ap.add_argument("--set", default="", help="settings of the protocol that scored them, space-separated KEY=VALUE")
    ap.add_argument("--where", default="", help="only runs whose config has these values, space-separated KEY=VALUE")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (part of the judge's key)")
    ap.add_argument("--shares", default="0.25,0.5", help="the late shares of training to average over")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shares = [float(s) for s in args.shares.split(",")]
    cfg = resolve(["protocol=rafd_expression", "scale=demo", *args.set.split()])
    data = load_data(cfg, show_progress=False)
    judge, info, _ = expression_classifier(cfg, data, torch.device("cpu"))
    task = expression_task(data)
    print(f"{cpu_label()}; torch {torch.__version__}, {args.threads} thread(s); judge {info['judge_key']}; error % of "
          f"each run: its own checkpoint (the table's), then its kept averages over the last "
          f"{', '.join(f'{s:.0%}' for s in shares)} of training averaged")
    results: dict[str, list[list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in sorted(Path(p) for p in glob.glob(args.runs)):
            run_cfg = OmegaConf.load(run / "config.yaml")
            if any(str(OmegaConf.select(run_cfg, k)) != v for k, v in (kv.split("=", 1) for kv in args.where.split())):
                continue
            model = str(run_cfg.model)
            row = [error_of(run / "checkpoint.pt", model, cfg, task, judge)]
            counts = []
            for share in shares:
                path, n = averaged_checkpoint(run, share, Path(tmp) / f"{run.name}-{share}.pt")
                row.append(error_of(path, model, cfg, task, judge))
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
