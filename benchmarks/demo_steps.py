"""The demo main job, step by step: each training method and the classifier, old path against new, one process.

For every method of ``starbench run protocol=rafd_expression`` (demo scale) the Trainer is set up
(data, model, optimisers) once per variant and ``train_batches`` is timed over a few steps; the
projected training time is ms/step x the demo's steps for that method. The classifier is timed over
its epochs' steps. Variants are config overrides; "old" is the plain path (fp32, contiguous memory,
two-domain instances each alone), the others change one switch or all of them.

Usage:
  python benchmarks/demo_steps.py                                  # every method, every variant
  python benchmarks/demo_steps.py --methods stargan --variants old,amp --steps 40
  python benchmarks/demo_steps.py --threads 1      # as each of the main command's two processes runs
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from starbench.config import resolve
from starbench.data import load_data
from starbench.metrics.classifier import ClassifierRecipe, train_classifier
from starbench.train.data_source import to_device
from starbench.train.trainer import Trainer

VARIANTS = {
    "old": ["train.amp=false", "train.channels_last=false", "train.pack=false"],
    "amp": ["train.amp=true", "train.channels_last=false", "train.pack=false"],
    "channels_last": ["train.amp=false", "train.channels_last=true", "train.pack=false"],
    "amp+channels_last": ["train.amp=true", "train.channels_last=true", "train.pack=false"],
    "shared-F": ["train.amp=false", "train.channels_last=false"],
    "grouped": ["train.amp=false", "train.channels_last=false", "train.pack=true"],
    "default": [],
}
STEPS = {"stargan": 30, "icgan": 30, "diat": 6, "cyclegan": 4}


def time_method(method: str, overrides: list[str], steps: int, warmup: int) -> dict[str, Any]:
    cfg = resolve(["scale=demo", "train.progress=false", f"model={method}", *overrides])
    trainer = Trainer(cfg, "unused")
    trainer._setup()
    model = trainer.model
    for step in range(warmup):
        model.train_batches([to_device(b, trainer.device, trainer.channels_last) for b in trainer.data.batches(step)],
                            step)
    start = time.perf_counter()
    for step in range(warmup, warmup + steps):
        model.train_batches([to_device(b, trainer.device, trainer.channels_last) for b in trainer.data.batches(step)],
                            step)
    per_step = (time.perf_counter() - start) / steps
    total = cfg.train.model_steps.get(method, cfg.train.steps)
    return {"ms_per_step": 1000 * per_step, "demo_steps": total, "projected_s": per_step * total,
            "amp": model.autocast_dtype is not None, "channels_last": trainer.channels_last, "pack": cfg.train.pack}


def time_classifier(overrides: list[str], steps: int) -> dict[str, Any]:
    cfg = resolve(["scale=demo", "train.progress=false", *overrides])
    data = load_data(cfg, show_progress=False)
    train = data.split("train")
    per_epoch = max(1, len(train) // cfg.classifier.batch_size)
    recipe = ClassifierRecipe(epochs=1, batch_size=cfg.classifier.batch_size, lr=cfg.classifier.lr)
    rows = train[: steps * cfg.classifier.batch_size]
    start = time.perf_counter()
    train_classifier(data.images, data.labels, rows, "onehot", recipe, torch.device("cpu"), show_progress=False,
                     amp=bool(cfg.train.amp), channels_last=bool(cfg.train.channels_last))
    per_step = (time.perf_counter() - start) / max(1, len(rows) // cfg.classifier.batch_size)
    return {"ms_per_step": 1000 * per_step, "demo_steps": per_epoch * cfg.classifier.epochs,
            "projected_s": per_step * per_epoch * cfg.classifier.epochs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="classifier,stargan,diat,cyclegan,icgan")
    ap.add_argument("--variants", default="old,amp,channels_last,amp+channels_last,shared-F,grouped,default")
    ap.add_argument("--steps", type=int, default=0, help="steps timed per method (0: a default per method)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default; the main command's "
                    "two processes use 1 each)")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ms per step, projected demo seconds, "
          f"ratio old/variant")
    rows = []
    for method in args.methods.split(","):
        base = None
        for variant in args.variants.split(","):
            if variant in ("shared-F", "grouped") and method not in ("diat", "cyclegan"):
                continue
            if method == "classifier":
                if variant not in ("old", "amp", "channels_last", "amp+channels_last"):
                    continue
                r = time_classifier(VARIANTS[variant], args.steps or 12)
            else:
                r = time_method(method, VARIANTS[variant], args.steps or STEPS[method], args.warmup)
            base = base or r["ms_per_step"]
            r.update({"method": method, "variant": variant, "speedup_vs_old": base / r["ms_per_step"]})
            rows.append(r)
            print(f"{method:10} {variant:18} {r['ms_per_step']:9.1f} ms {r['projected_s']:8.1f} s "
                  f"x{r['speedup_vs_old']:.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}, f, indent=2,
                      default=str)
    methods = {r["method"] for r in rows}
    old = sum(r["projected_s"] for r in rows if r["variant"] == "old")
    best = sum(min(r["projected_s"] for r in rows if r["method"] == m) for m in methods)
    print(f"projected demo training (old -> best variant per method): {old:.0f} s -> {best:.0f} s")


if __name__ == "__main__":
    main()
