"""What the judge takes each wrong RaFD translation for: per run, per target expression, the expressions it saw.

Table 3 gives one error per method; ``per_target.csv`` one per target. Neither says what a wrong translation looks
like to the judge: a face the judge cannot place, or one it places on a neighbouring expression. This script
translates the protocol's inputs (every neutral test face to the 7 other expressions) with each given run's
checkpoint as the protocol does (its weight average, the protocol's precision, layout and batches) and counts
the judge's verdicts on the wrong ones. The judge is the protocol's own for the given settings (found in the cache
when the protocol trained it with the same arithmetic: pass the run's ``--set`` and ``--threads``).

Usage:
  python benchmarks/judge_confusions.py --runs "runs/models/stargan-rafd-*" --set jobs=2 --threads 1 \\
      --where "train.model_steps.stargan=12000 stargan.g_lr=0.0005 train.amp=None"
  python benchmarks/judge_confusions.py --runs "OTHER/runs/models/stargan-rafd-*" --set "train.amp=false jobs=2"
"""
from __future__ import annotations

import argparse
import glob
from collections import Counter
from pathlib import Path

import torch
from omegaconf import OmegaConf

from starbench.config import resolve
from starbench.data import load_data
from starbench.devices import cpu_label
from starbench.evaluate.classifiers import classify
from starbench.evaluate.sources import FileSource
from starbench.protocols.rafd_expression import expression_classifier, expression_task
from starbench.train.speed import fast_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", required=True, help="a glob of run folders (each with checkpoint.pt and config.yaml)")
    ap.add_argument("--set", default="", help="settings of the protocol that scored them, space-separated KEY=VALUE")
    ap.add_argument("--where", default="", help="only runs whose config has these values, space-separated KEY=VALUE")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (part of the judge's key)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = resolve(["protocol=rafd_expression", "scale=demo", *args.set.split()])
    data = load_data(cfg, show_progress=False)
    judge, info, _ = expression_classifier(cfg, data, torch.device("cpu"))
    task = expression_task(data)
    names, device = task.domains.names, torch.device("cpu")
    print(f"{cpu_label()}; torch {torch.__version__}, {args.threads} thread(s); judge {info['judge_key']} "
          f"({'cached' if info.get('cached') else 'trained now'}); {task.n} inputs x {len(task.columns)} targets")
    pairs: dict[str, Counter] = {}  # per model: (target, verdict) -> wrong translations, over its runs
    runs: Counter = Counter()
    for run in sorted(Path(p) for p in glob.glob(args.runs)):
        run_cfg = OmegaConf.load(run / "config.yaml")
        if any(str(OmegaConf.select(run_cfg, k)) != v for k, v in (kv.split("=", 1) for kv in args.where.split())):
            continue
        source = FileSource(run.name, str(run_cfg.model), run / "checkpoint.pt", cfg, device)
        source.fast = fast_path(device, cfg.train.amp, cfg.train.channels_last)  # as the protocol translates
        source.prepare(task)
        wrong_total, parts = 0, []
        for t, column in enumerate(task.columns):
            verdicts = classify(judge, source.column(task, t))
            wrong = verdicts != task.targets[task.rows_of(t), t].argmax(1)
            wrong_total += int(wrong.sum())
            pairs.setdefault(str(run_cfg.model), Counter()).update((column, names[k]) for k in verdicts[wrong].tolist())
            if wrong.any():
                seen = ", ".join(f"{names[k]} {n}" for k, n in Counter(verdicts[wrong].tolist()).most_common())
                parts.append(f"{column} {int(wrong.sum())} -> {seen}")
        error = 100 * wrong_total / (task.n * len(task.columns))
        runs[str(run_cfg.model)] += 1
        print(f"{run.name} (model {run_cfg.model}, seed {run_cfg.seed}): error {error:.2f}%; {'; '.join(parts)}")
    for model, counts in sorted(pairs.items()):
        total = sum(counts.values())
        top = ", ".join(f"{t} as {v} {n} ({100 * n / total:.0f}%)" for (t, v), n in counts.most_common(5))
        print(f"{model}, {runs[model]} runs: {total} wrong translations; most often {top}")


if __name__ == "__main__":
    main()
