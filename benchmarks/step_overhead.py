"""Per-step bookkeeping outside the networks: the weight average's update and the batch sampler's rows.

A profile of a demo StarGAN run (12,000 steps, one thread) put about 3% of its time in two places that do no
arithmetic of the model: ``WeightAverage.update`` walked every module of G twice at each step to list the
parameters and buffers, and ``BatchSampler`` drew the epoch's permutation anew at every step. Both now gather
once (the parameter lists at construction, the permutation once per epoch). This script times each against a
plain restatement of the old code in the same process, one thread, and checks the results are bit for bit the
same (the averaged weights after N updates; every batch's rows and flips).

Usage: python benchmarks/step_overhead.py [--steps 2000] [KEY=VALUE ...]   (config overrides; default: the
demo RaFD config's StarGAN G)
"""
from __future__ import annotations

import argparse
import copy
import time
from typing import Callable

import numpy as np
import torch

from starbench.config import resolve
from starbench.data import load_data
from starbench.data.batches import BatchSampler
from starbench.models.stargan import Generator
from starbench.train.averaging import WeightAverage


def seconds(fn: Callable[[], None], repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return time.perf_counter() - start


@torch.no_grad()
def old_update(avg: torch.nn.Module, source: torch.nn.Module, decay: float) -> None:
    """The update as it was: both networks' parameters and buffers listed anew at every call."""
    torch._foreach_lerp_([p.data for p in avg.parameters()], [p.data for p in source.parameters()], 1.0 - decay)
    for b_avg, b_src in zip(avg.buffers(), source.buffers()):
        b_avg.copy_(b_src)


def old_rows(s: BatchSampler, step: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows as they were: the epoch's permutation drawn at every step."""
    epoch, pos = divmod(step, s.per_epoch)
    perm = np.random.default_rng([s.seed, epoch]).permutation(len(s.indices))
    chosen = perm[pos * s.batch_size:(pos + 1) * s.batch_size][s.rank::s.world_size]
    flips = np.random.default_rng([s.seed, epoch, pos]).random(s.batch_size)[s.rank::s.world_size] < 0.5
    return s.indices[chosen], flips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = resolve(["protocol=rafd_expression", "scale=demo", *args.overrides])
    data = load_data(cfg)
    o = cfg.stargan
    torch.manual_seed(0)
    G = Generator(o.g_conv_dim, data.domains.label_dim, o.g_repeat)
    noise = [torch.randn_like(p) * 1e-3 for p in G.parameters()]

    def drift() -> None:  # move the source a little, as a training step would
        with torch.no_grad():
            for p, n in zip(G.parameters(), noise):
                p.add_(n)

    # The weight average: new against old, the same decays on the same drifting source.
    torch.manual_seed(0)
    G_old = copy.deepcopy(G)
    avg_new = WeightAverage({"G": G}, 0.999)
    avg_old = copy.deepcopy(G).requires_grad_(False)
    updates = {"n": 0}

    def step_old() -> None:
        updates["n"] += 1
        old_update(avg_old, G_old, min(0.999, (1 + updates["n"]) / (10 + updates["n"])))

    for p, q in zip(G.parameters(), G_old.parameters()):
        assert torch.equal(p, q)
    t_new = seconds(avg_new.update, args.steps)  # the source is still here: what is timed is the bookkeeping
    t_old = seconds(step_old, args.steps)
    same = all(torch.equal(a, b) for a, b in zip(avg_new.nets["G"].parameters(), avg_old.parameters()))

    # Equality with a drifting source, over a few hundred updates of both.
    avg_a = WeightAverage({"G": G}, 0.99)
    avg_b = copy.deepcopy(G).requires_grad_(False)
    for k in range(1, 301):
        drift()
        avg_a.update()
        old_update(avg_b, G, min(0.99, (1 + k) / (10 + k)))
    same_drift = all(torch.equal(a, b) for a, b in zip(avg_a.nets["G"].parameters(), avg_b.parameters()))

    # The sampler: rows and flips of every step, new against old.
    train = data.split("train")
    sampler = BatchSampler(data.images, data.labels, train, cfg.data.batch_size, seed=cfg.seed)
    t_rows_new = seconds(lambda: [sampler._rows(s) for s in range(args.steps)], 1)
    t_rows_old = seconds(lambda: [old_rows(sampler, s) for s in range(args.steps)], 1)
    rows_same = all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
                    for a, b in ((sampler._rows(s), old_rows(sampler, s)) for s in range(args.steps)))

    print(f"torch {torch.__version__}, 1 thread, {args.steps} calls each; StarGAN G of the demo preset "
          f"({sum(p.numel() for p in G.parameters())} weights, {len(list(G.parameters()))} tensors); "
          f"sampler: {len(train)} training images, batch {cfg.data.batch_size}, {sampler.per_epoch} steps an epoch")
    print(f"weight average update: {1e6 * t_new / args.steps:.0f} us (lists gathered once) against "
          f"{1e6 * t_old / args.steps:.0f} us (modules walked each call): {t_old / t_new:.2f}x; "
          f"bit for bit the same: {same and same_drift}")
    print(f"sampler rows: {1e6 * t_rows_new / args.steps:.0f} us (permutation once an epoch) against "
          f"{1e6 * t_rows_old / args.steps:.0f} us (every step): {t_rows_old / t_rows_new:.2f}x; "
          f"bit for bit the same: {rows_same}")


if __name__ == "__main__":
    main()
