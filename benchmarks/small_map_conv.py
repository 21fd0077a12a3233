"""The ResNet-18's convolutions on 1x1 maps, two ways: what the one-tap convolution saves, and whether it moves a bit.

At the demo's 32 px the judge's last stage (``layer4``) works on 1x1 maps: a padded 3x3 convolution there multiplies
eight of its nine kernel taps by the padding's zeros. ``full`` is torch's ``nn.Conv2d`` doing all nine;
``one tap`` is starbench's ``OneTapConv2d`` (``starbench/metrics/classifier.py``), a 1x1 convolution with the one
tap that sees the map. Products that are exactly zero change no sum, so the two should agree bit for bit; this
checks it, on every numerical path one machine offers (bf16 autocast or fp32; 1 or 2 threads):

- per layer: each convolution that sees a 1x1 map, forward and backward at the judge's batch, outputs and both
  gradients compared, times interleaved;
- the judge's training: one member on the demo's RaFD images for a few steps (starbench's ``train_classifier``,
  channels_last, its blocked AdamW), the weights after them compared, ms per step interleaved in blocks;
- the evaluation: the trained network's logits on 512 test images as the protocols judge (fp32, rebuilt from its
  weights in the default layout, where ``OneTapConv2d`` runs the full convolution: its fp32 1x1 kernel there
  rounds differently), compared and timed: the verdicts must not move.

A bit that moved would change every cached judge and committed number; none may. ``--whole-judge CACHE`` then
trains the demo RaFD judge (every member, this process's path) into an empty classifier cache beside ``CACHE``'s
data and compares each member with the one ``CACHE`` holds under the same key.

Usage: python benchmarks/small_map_conv.py [--paths bf16-1t,fp32-1t,bf16-2t] [--steps 8] [--blocks 3]
       [--whole-judge CACHE]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from starbench.config import resolve
from starbench.data import load_data
from starbench.data.batches import to_float
from starbench.devices import cpu_label
from starbench.evaluate.classifiers import task_classifier
from starbench.files import load_torch
from starbench.metrics.classifier import (
    ClassifierRecipe,
    OneTapConv2d,
    one_tap_convs,
    predict_logits,
    resnet18,
    train_classifier,
)

PATHS = {"bf16-1t": (True, 1), "fp32-1t": (False, 1), "bf16-2t": (True, 2)}
VARIANTS = ("full", "one tap")


@contextmanager
def variant(name: str) -> Iterator[None]:
    """Every ``OneTapConv2d`` runs as the plain full convolution while inside, if ``name`` is ``full``."""
    original = OneTapConv2d.tap_seeing_1x1
    if name == "full":
        OneTapConv2d.tap_seeing_1x1 = lambda self, size: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        OneTapConv2d.tap_seeing_1x1 = original  # type: ignore[method-assign]


def layer_check(conv: OneTapConv2d, batch: int, amp: bool, repeats: int) -> dict[str, tuple[float, bool]]:
    """ms for one forward and backward of ``conv`` on a 1x1 map per variant, and whether output and gradients equal
    full's."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(batch, conv.in_channels, 1, 1, generator=g).contiguous(memory_format=torch.channels_last)
    conv = conv.to(memory_format=torch.channels_last)

    def once() -> tuple[torch.Tensor, ...]:
        x = x0.clone().requires_grad_()
        conv.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            y = conv(x)
        y.float().square().sum().backward()
        return y.detach(), x.grad, conv.weight.grad

    results, ms = {}, {}
    for v in VARIANTS:
        with variant(v):
            results[v] = once()
    for v in VARIANTS * 2:  # interleaved, the second round timed
        with variant(v):
            start = time.perf_counter()
            for _ in range(repeats):
                once()
            ms[v] = 1000 * (time.perf_counter() - start) / repeats
    return {v: (ms[v], all(torch.equal(a, b) for a, b in zip(results["full"], results[v]))) for v in VARIANTS}


def judge_steps(data, rows, recipe: ClassifierRecipe, amp: bool, name: str) -> tuple[float, torch.nn.Module]:
    """Seconds per judge training step over ``rows`` (one epoch of ``recipe``'s batch), and the net."""
    with variant(name):
        start = time.perf_counter()
        net = train_classifier(data.images, data.labels, rows, "onehot", recipe, torch.device("cpu"),
                               show_progress=False, amp=amp, channels_last=True)
    return (time.perf_counter() - start) / (len(rows) // recipe.batch_size), net


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Whether two state dicts hold the same names and every tensor bit for bit."""
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def whole_judge(cache: Path) -> None:
    """Train the demo RaFD judge into an empty classifier cache (the data linked from ``cache``) and compare every
    member with ``cache``'s."""
    with tempfile.TemporaryDirectory() as tmp:
        for part in ("decoded", "synth"):
            (Path(tmp) / part).symlink_to((cache / part).resolve())
        cfg = resolve(["protocol=rafd_expression", "train.progress=false", f"cache_dir={tmp}"])
        data = load_data(cfg, show_progress=False)
        _, info, _ = task_classifier(cfg, data, torch.device("cpu"), "expression", "onehot",
                                     "expression classifier (ResNet-18)")
        for member in info["members"]:
            new = load_torch(Path(tmp) / "classifiers" / f"{member['key']}.pt", "classifier")["state"]
            old = load_torch(cache / "classifiers" / f"{member['key']}.pt", "classifier")["state"]
            print(f"  judge member {member['key']} (seed {member['seed']}): trained in {member['train_seconds']} s; "
                  f"bit for bit the cached member: {same_tensors(new, old)}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", default=",".join(PATHS))
    ap.add_argument("--steps", type=int, default=8, help="judge training steps per block")
    ap.add_argument("--blocks", type=int, default=3, help="interleaved blocks of judge steps per variant")
    ap.add_argument("--whole-judge", type=Path, help="a cache whose demo RaFD judge to train again and compare")
    args = ap.parse_args()
    cfg = resolve(["scale=demo", "train.progress=false"])
    data = load_data(cfg, show_progress=False)
    size = int(data.images.shape[-1])
    rows = data.split("train")[: args.steps * cfg.classifier.batch_size]
    test = to_float(torch.from_numpy(data.images[data.split("test")[:512]]))
    recipe = ClassifierRecipe(epochs=1, batch_size=cfg.classifier.batch_size, lr=cfg.classifier.lr)
    print(f"{cpu_label()}; torch {torch.__version__}; the demo's {size} px images, the judge's batch "
          f"{cfg.classifier.batch_size}; 'full': nn.Conv2d, 'one tap': OneTapConv2d")
    for path in args.paths.split(","):
        amp, threads = PATHS[path]
        torch.set_num_threads(threads)
        print(f"\n{path}")
        net = resnet18(8)
        for name in one_tap_convs(size):
            conv = net.get_submodule(name)
            r = layer_check(conv, cfg.classifier.batch_size, amp, repeats=10)
            print(f"  {name:16} input {[conv.in_channels, 1, 1]}: full {r['full'][0]:6.2f} ms, one tap "
                  f"{r['one tap'][0]:6.2f} ms forward+backward; output and gradients bit for bit: "
                  f"{r['one tap'][1]}", flush=True)
        per = {v: [] for v in VARIANTS}
        nets = {}
        for _ in range(args.blocks):
            for v in VARIANTS:
                s, nets[v] = judge_steps(data, rows, recipe, amp, v)
                per[v].append(s)
        full, tap = (1000 * sum(per[v]) / args.blocks for v in VARIANTS)
        print(f"  judge training step: full {full:6.1f} ms, one tap {tap:6.1f} ms ({100 * (1 - tap / full):.1f}% "
              f"saved); weights after {len(rows) // cfg.classifier.batch_size} steps bit for bit: "
              f"{same_tensors(nets['full'].state_dict(), nets['one tap'].state_dict())}", flush=True)
        judge = resnet18(int(data.labels.shape[1]))  # as the protocols judge: rebuilt from the weights, fp32
        judge.load_state_dict(nets["full"].state_dict())
        logits, seconds = {}, {}
        for v in VARIANTS * 2:
            with variant(v):
                start = time.perf_counter()
                logits[v] = predict_logits(judge, test)
                seconds[v] = time.perf_counter() - start
        print(f"  judging {len(test)} images: full {seconds['full']:.2f} s, one tap {seconds['one tap']:.2f} s; "
              f"logits bit for bit: {torch.equal(logits['full'], logits['one tap'])}", flush=True)
    if args.whole_judge:
        print(f"\nthe whole demo RaFD judge, this process's path (jobs unset: {cfg.classifier.members} members)")
        whole_judge(args.whole_judge)


if __name__ == "__main__":
    main()
