"""Is ``jobs=2`` (two 1-thread processes side by side) the fastest way to use two cores on this machine?

``jobs`` left unset trains two runs at a time on a 2-core CPU at demo scale, one thread each
(``starbench.evaluate.parallel``), because one demo-width model cannot keep two cores busy. Whether that holds
depends on the machine: two vCPUs that share a physical core, or a memory bus, slow each other down. For each
method this times demo training steps three ways, in the same script:

- ``1 process x 2 threads``: one run alone with both cores (``jobs=1``);
- ``1 process x 1 thread``: one run alone on one core (the other idle);
- ``2 processes x 1 thread``: two runs at once, one core each (``jobs=2``), each timed.

Throughput is steps per second summed over the processes; ``jobs=2`` wins where its throughput beats one process
with two threads. Each process sets up the Trainer (data, model) before a barrier, so only the steps overlap (the
classifier builds its ResNet-18 inside the timed call, the same in every row).

Usage:
  python benchmarks/side_by_side.py                              # stargan, cyclegan, classifier
  python benchmarks/side_by_side.py --methods stargan --steps 60 --json out.json
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from typing import Any, Callable

import torch

from starbench.config import resolve
from starbench.data import load_data
from starbench.devices import cpu_label
from starbench.metrics.classifier import ClassifierRecipe, train_classifier
from starbench.train.data_source import to_device
from starbench.train.trainer import Trainer

STEPS = {"stargan": 60, "icgan": 60, "diat": 8, "cyclegan": 5, "classifier": 12}


def steps_of(method: str, warmup: int = 2) -> Callable[[int], float]:
    """A callable timing ``n`` training steps of ``method`` at the demo preset, set up before it is returned."""
    if method == "classifier":
        cfg = resolve(["scale=demo", "train.progress=false"])
        data = load_data(cfg, show_progress=False)
        train = data.split("train")

        def run(n: int) -> float:
            rows = train[: n * cfg.classifier.batch_size]
            recipe = ClassifierRecipe(epochs=1, batch_size=cfg.classifier.batch_size, lr=cfg.classifier.lr)
            start = time.perf_counter()
            train_classifier(data.images, data.labels, rows, "onehot", recipe, torch.device("cpu"),
                             show_progress=False, amp=True, channels_last=True)
            return time.perf_counter() - start
        return run
    cfg = resolve(["scale=demo", "train.progress=false", f"model={method}"])
    trainer = Trainer(cfg, "unused")
    trainer._setup()
    model = trainer.model
    step = [0]

    def one() -> None:
        batches = [to_device(b, trainer.device, trainer.channels_last) for b in trainer.data.batches(step[0])]
        model.train_batches(batches, step[0])
        step[0] += 1

    for _ in range(warmup):
        one()

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            one()
        return time.perf_counter() - start
    return run


def worker(method: str, threads: int, steps: int, barrier: Any, out: Any) -> None:
    torch.set_num_threads(threads)
    run = steps_of(method)
    barrier.wait()
    out.put(run(steps) / steps)


def timed(method: str, processes: int, threads: int, steps: int) -> list[float]:
    """Seconds per step of each of ``processes`` processes running ``method`` at once with ``threads`` each."""
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(method, threads, steps, barrier, out)) for _ in range(processes)]
    for p in procs:
        p.start()
    per_step = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return per_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="stargan,cyclegan,classifier")
    ap.add_argument("--steps", type=int, default=0, help="steps timed per process (0: a default per method)")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    print(f"{cpu_label()}, torch {torch.__version__}; ms per step of each process, throughput in steps/s")
    rows = []
    for method in args.methods.split(","):
        steps = args.steps or STEPS[method]
        for processes, threads in ((1, 2), (1, 1), (2, 1)):
            per_step = timed(method, processes, threads, steps)
            row = {"method": method, "processes": processes, "threads": threads,
                   "ms_per_step": [round(1000 * s, 1) for s in per_step],
                   "steps_per_s": round(sum(1 / s for s in per_step), 2)}
            rows.append(row)
            print(f"{method:10} {processes} process(es) x {threads} thread(s): "
                  f"{', '.join(f'{m:.1f}' for m in row['ms_per_step'])} ms/step, {row['steps_per_s']:.2f} steps/s",
                  flush=True)
        two, alone = rows[-1]["steps_per_s"], rows[-3]["steps_per_s"]
        print(f"{method:10} jobs=2 against jobs=1 (2 threads): x{two / alone:.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu_label(), "torch": torch.__version__, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
