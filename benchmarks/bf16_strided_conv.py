"""Which convolutions torch's bf16 CPU kernels train wrongly: the same backward pass, repeated, on the same inputs.

A padded stride-2 convolution on a 1x1 map (the ResNet-18 judge's ``layer4.0.conv1`` at 16 px) gives, under bf16
autocast on a CPU with native bf16, a different weight gradient from one call to the next and now and then a
non-finite one; fp32 gives one answer. Found through a CI run whose 16 px test judge stopped on a NaN loss.
``starbench.metrics.classifier.resnet_fast_path`` trains such a network in fp32. This script scans kernel, stride,
padding and input sizes and prints every shape where repeated calls disagree, in bf16 and in fp32.

Usage:
  python benchmarks/bf16_strided_conv.py [--threads 1] [--repeats 20] > benchmarks/results/bf16_strided_conv_cpu.txt
"""
from __future__ import annotations

import argparse
import itertools

import torch

from starbench.devices import cpu_label
from starbench.train.speed import cpu_has_bf16


def distinct_gradients(k: int, stride: int, pad: int, size: int, bf16: bool, repeats: int,
                       channels: tuple[int, int]) -> tuple[int, int, int]:
    """(distinct weight gradients, distinct input gradients, calls with a non-finite one) over ``repeats`` calls."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(channels[0], channels[1], k, stride=stride, padding=pad, bias=False)
    x0 = torch.randn(16, channels[0], size, size)
    out = (size + 2 * pad - k) // stride + 1
    g0 = torch.randn(16, channels[1], out, out)
    weights, inputs, bad = set(), set(), 0
    for _ in range(repeats):
        conv.zero_grad(set_to_none=True)
        x = x0.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = conv(x)
        y.backward(g0.to(y.dtype))
        bad += int(not (torch.isfinite(conv.weight.grad).all() and torch.isfinite(x.grad).all()))
        weights.add(conv.weight.grad.float().numpy().tobytes())
        inputs.add(x.grad.float().numpy().tobytes())
    return len(weights), len(inputs), bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# {cpu_label()}, torch {torch.__version__}, {args.threads} thread(s), {args.repeats} calls per shape; "
          f"native bf16: {cpu_has_bf16()}")
    print("# kernel stride padding input -> output, channels: distinct weight grads / input grads / non-finite calls")
    shapes = [(k, s, p, n) for k, s, p, n in itertools.product([1, 2, 3, 4, 7], [1, 2], [0, 1, 3], [1, 2, 3, 4, 8])
              if n + 2 * p >= k and p < k]
    for channels in [(3, 64), (64, 128), (256, 512)]:
        for k, s, p, n in shapes:
            found = {bf16: distinct_gradients(k, s, p, n, bf16, args.repeats, channels) for bf16 in (True, False)}
            if any(w > 1 or i > 1 or bad for w, i, bad in found.values()):
                out = (n + 2 * p - k) // s + 1
                print(f"k={k} s={s} p={p} {n}x{n} -> {out}x{out}, {channels[0]}->{channels[1]}: "
                      + "; ".join(f"{'bf16' if bf16 else 'fp32'} {w} / {i} / {bad}"
                                  for bf16, (w, i, bad) in found.items()))
    print(f"# {len(shapes)} shapes x 3 channel pairs scanned; shapes not listed gave one answer in both precisions")


if __name__ == "__main__":
    main()
