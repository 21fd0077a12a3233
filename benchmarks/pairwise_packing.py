"""Two-domain baselines: one training step of M instances: one after another, as grouped networks, and (DIAT)
with only the shared identity network F run once for all ("shared-F", the default).

DIAT trains 7 instances per step on RaFD and CycleGAN 7 bidirectional pairs (14 directions). Both
paths run in this process on the same weights and batches (the Trainer's demo configuration unless
overridden: 32 px, batch 16, demo widths); the table gives ms per step and packed/separate.

Usage:
  python benchmarks/pairwise_packing.py                    # DIAT and CycleGAN, M = 1, 7, 14, demo widths, CPU
  python benchmarks/pairwise_packing.py --models diat --instances 7 --iters 20 --set diat.g_conv_dim=64 ...
"""
from __future__ import annotations

import argparse
import copy
import json
import random
import time
from types import SimpleNamespace

import torch

from starbench.baselines.cyclegan import CycleGANPair
from starbench.baselines.diat import DIATPair
from starbench.config import resolve
from starbench.metrics.classifier import resnet18

CLASSES = {"diat": DIATPair, "cyclegan": CycleGANPair}


def make(model: str, m: int, cfg, device: torch.device, amp: bool):
    torch.manual_seed(0)
    insts = [CLASSES[model](cfg, "a", f"b{k}") for k in range(m)]
    identity = resnet18(60).to(device).eval().requires_grad_(False) if model == "diat" else None
    for inst in insts:
        for net in inst.nets.values():
            net.to(device)
        inst.optimizers = inst.make_optimizers(device)
        inst.identity = identity
    dtype = torch.bfloat16 if amp else None
    host = SimpleNamespace(grad_sync=lambda net: None,
                           autocast=lambda: torch.autocast(device.type, dtype=dtype, enabled=amp))
    return insts, host


def step_fn(insts, host, packed: str, xa, xb):
    """packed: "" (each instance alone), "grouped" (grouped networks), "shared" (only DIAT's F batched)."""
    cls = type(insts[0])

    def step(i: int) -> None:
        random.seed(i)
        if packed and cls.packed_step(insts, xa, xb, i, host, grouped=packed == "grouped") is not None:
            pass
        else:
            for inst, a, b in zip(insts, xa, xb):
                inst.train_step(a, b, i, host)
    return step


def timed(step, warmup: int, iters: int) -> float:
    for i in range(warmup):
        step(i)
    start = time.perf_counter()
    for i in range(warmup, warmup + iters):
        step(i)
    return (time.perf_counter() - start) / iters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="diat,cyclegan")
    ap.add_argument("--instances", default="1,7,14")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast")
    ap.add_argument("--set", nargs="*", default=[], help="config overrides (KEY=VALUE)")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    cfg = resolve(["scale=demo", *args.set])
    device = torch.device(args.device)
    size, batch = cfg.data.image_size, cfg.data.batch_size
    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device}, {size} px, batch {batch}, "
          f"amp={args.amp}")
    print(f"{'model':9} {'M':>3} {'separate ms':>12} {'grouped ms':>11} {'grouped/separate':>17} "
          f"{'grouped vs 1 alone':>19} {'shared-F ms':>12} {'shared-F vs 1 alone':>20}")
    alone: dict[str, float] = {}
    for model in args.models.split(","):
        for m in [int(k) for k in args.instances.split(",")]:
            insts, host = make(model, m, cfg, device, args.amp)
            twin, third = copy.deepcopy(insts), copy.deepcopy(insts)
            g = torch.Generator().manual_seed(1)
            xa = [torch.rand(batch, 3, size, size, generator=g).mul(2).sub(1).to(device) for _ in range(m)]
            xb = [torch.rand(batch, 3, size, size, generator=g).mul(2).sub(1).to(device) for _ in range(m)]
            sep = timed(step_fn(insts, host, "", xa, xb), args.warmup, args.iters)
            pk = timed(step_fn(twin, host, "grouped", xa, xb), args.warmup, args.iters)
            sh = timed(step_fn(third, host, "shared", xa, xb), args.warmup, args.iters) if model == "diat" else sep
            if m == 1:
                alone[model] = sep
            one = alone.get(model, float("nan"))
            rows.append({"model": model, "instances": m, "separate_ms": 1000 * sep, "grouped_ms": 1000 * pk,
                         "grouped_over_separate": pk / sep, "grouped_over_one_alone": pk / one,
                         "shared_ms": 1000 * sh, "shared_over_one_alone": sh / one,
                         "separate_over_one_alone": sep / one})
            print(f"{model:9} {m:>3} {1000 * sep:>12.1f} {1000 * pk:>11.1f} {pk / sep:>17.2f} {pk / one:>19.2f} "
                  f"{1000 * sh:>12.1f} {sh / one:>20.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device),
                       "image_size": size, "batch": batch, "amp": args.amp, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
