"""Images/s from the decoded cache versus decoding JPEGs every time (the public StarGAN loader).

Both run in this process on one CPU thread (torch.set_num_threads(1)) over the same files:
- reference: PIL open + RandomHorizontalFlip + CenterCrop + Resize + ToTensor + Normalize per image,
  as the public code's torchvision pipeline does with one worker;
- starbench: ``BatchSampler.batch`` gathering uint8 rows from the memmap, float conversion, flips.

Usage: python benchmarks/data_throughput.py [--size 128] [--batch 16] [--seconds 5] [KEY=VALUE ...]
(KEY=VALUE are starbench config overrides, e.g. data.root=/data/RaFD; default: the synthetic RaFD
set at 256 px).
"""
from __future__ import annotations

import argparse
import time

import torch
from PIL import Image
from torchvision import transforms as T

from starbench.config import resolve
from starbench.data import load_data
from starbench.data.batches import BatchSampler


def rate(fn, seconds: float) -> float:
    """Images per second of ``fn`` (which returns how many images it produced)."""
    fn()  # warm-up
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        n += fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = resolve(["scale=paper", f"data.image_size={args.size}", "data.synth_size=256", "data.workers=2",
                   *args.overrides])
    t0 = time.perf_counter()
    data = load_data(cfg)
    build = time.perf_counter() - t0
    train = data.split("train")
    paths = [data.index.records[i].path for i in train]
    tf = T.Compose([T.RandomHorizontalFlip(), T.CenterCrop(min(Image.open(paths[0]).size)), T.Resize(args.size),
                    T.ToTensor(), T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    state = {"i": 0, "step": 0}

    def decode_batch() -> int:
        xs = []
        for _ in range(args.batch):
            with Image.open(paths[state["i"] % len(paths)]) as im:
                xs.append(tf(im.convert("RGB")))
            state["i"] += 1
        torch.stack(xs)
        return args.batch

    sampler = BatchSampler(data.images, data.labels, train, args.batch, seed=0)

    def cached_batch() -> int:
        sampler.batch(state["step"])
        state["step"] += 1
        return args.batch

    ref = rate(decode_batch, args.seconds)
    ours = rate(cached_batch, args.seconds)
    print(f"dataset: {data.index.name} at {data.index.root} ({len(data.index.records)} images, {args.size}px, "
          f"batch {args.batch}, 1 thread)")
    print(f"cache build (first run decodes, later runs reuse): {build:.1f} s")
    print(f"decode every image (public loader, 1 worker): {ref:9.0f} images/s")
    print(f"starbench decoded cache:                      {ours:9.0f} images/s  ({ours / args.batch:.0f} batches/s)")
    print(f"ratio: {ours / ref:.1f}x")


if __name__ == "__main__":
    main()
