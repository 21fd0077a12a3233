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
from typing import Any, Iterator

import numpy as np
import torch
from omegaconf import OmegaConf

from starbench.config import resolve
from starbench.data import load_data
from starbench.devices import cpu_label
from starbench.evaluate.classifiers import classify
from starbench.evaluate.sources import FileSource
from starbench.evaluate.task import Task
from starbench.protocols.rafd_expression import expression_classifier, expression_task
from starbench.train.speed import fast_path


def where_pairs(text: str) -> list[tuple[str, str]]:
    """``--where``'s space-separated KEY=VALUE pairs; a malformed one is refused before any judge is loaded."""
    pairs = []
    for item in text.split():
        key, eq, value = item.partition("=")
        if not key or not eq:
            raise argparse.ArgumentTypeError(f"{item!r} is not KEY=VALUE (e.g. \"train.amp=None stargan.g_lr=0.0005\")")
        pairs.append((key, value))
    return pairs


def add_run_options(ap: argparse.ArgumentParser) -> None:
    """The options saying which runs to score and with which judge (shared with ``checkpoint_average.py``)."""
    ap.add_argument("--runs", required=True, help="a glob of run folders (each with checkpoint.pt and config.yaml)")
    ap.add_argument("--set", default="", help="settings of the protocol that scored them, space-separated KEY=VALUE")
    ap.add_argument("--where", type=where_pairs, default=[],
                    help="only runs whose config has these values, space-separated KEY=VALUE")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (part of the judge's key)")


def protocol_judge(args: argparse.Namespace) -> tuple[Any, Task, torch.nn.Module, str]:
    """The protocol's settings, task and judge for ``--set`` and ``--threads``, and a line saying what they are."""
    torch.set_num_threads(args.threads)
    cfg = resolve(["protocol=rafd_expression", "scale=demo", *args.set.split()])
    data = load_data(cfg, show_progress=False)
    judge, info, _ = expression_classifier(cfg, data, torch.device("cpu"))
    task = expression_task(data)
    return cfg, task, judge, (f"{cpu_label()}; torch {torch.__version__}, {args.threads} thread(s); judge "
                              f"{info['judge_key']} ({'cached' if info.get('cached') else 'trained now'}); "
                              f"{task.n} inputs x {len(task.columns)} targets")


def selected_runs(args: argparse.Namespace) -> Iterator[tuple[Path, Any]]:
    """Each run folder matching ``--runs`` whose config has the ``--where`` values, with its config."""
    for run in sorted(Path(p) for p in glob.glob(args.runs)):
        run_cfg = OmegaConf.load(run / "config.yaml")
        if all(str(OmegaConf.select(run_cfg, k)) == v for k, v in args.where):
            yield run, run_cfg


def column_verdicts(weights: Path, model: str, cfg: Any, task: Task, judge: torch.nn.Module) -> list[np.ndarray]:
    """Per target column, the judge's verdict on each translation of the weights file, translated as the protocol
    does (``FileSource``: its weight average, the protocol's precision, layout and batches)."""
    device = torch.device("cpu")
    source = FileSource(weights.stem, model, weights, cfg, device)
    source.fast = fast_path(device, cfg.train.amp, cfg.train.channels_last)
    source.prepare(task)
    return [classify(judge, source.column(task, t)) for t in range(len(task.columns))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_options(ap)
    args = ap.parse_args()
    cfg, task, judge, about = protocol_judge(args)
    names = task.domains.names
    print(about)
    pairs: dict[str, Counter] = {}  # per model: (target, verdict) -> wrong translations, over its runs
    runs: Counter = Counter()
    for run, run_cfg in selected_runs(args):
        model = str(run_cfg.model)
        wrong_total, parts = 0, []
        for t, (column, verdicts) in enumerate(zip(task.columns, column_verdicts(run / "checkpoint.pt", model, cfg,
                                                                                 task, judge))):
            wrong = verdicts != task.targets[task.rows_of(t), t].argmax(1)
            wrong_total += int(wrong.sum())
            pairs.setdefault(model, Counter()).update((column, names[k]) for k in verdicts[wrong].tolist())
            if wrong.any():
                seen = ", ".join(f"{names[k]} {n}" for k, n in Counter(verdicts[wrong].tolist()).most_common())
                parts.append(f"{column} {int(wrong.sum())} -> {seen}")
        error = 100 * wrong_total / (task.n * len(task.columns))
        runs[model] += 1
        print(f"{run.name} (model {model}, seed {run_cfg.seed}): error {error:.2f}%; {'; '.join(parts)}")
    for model, counts in sorted(pairs.items()):
        total = sum(counts.values())
        top = ", ".join(f"{t} as {v} {n} ({100 * n / total:.0f}%)" for (t, v), n in counts.most_common(5))
        print(f"{model}, {runs[model]} runs: {total} wrong translations; most often {top}")


if __name__ == "__main__":
    main()
