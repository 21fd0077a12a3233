"""Fused Adam on the CPU: what it would save in each training step of the demo main job, and what it would move.

torch's fused Adam/AdamW kernel (``fused=True``, on the CPU since torch 2.4) does the whole update in one pass
over each parameter; starbench uses it on CUDA only (``fused=device.type == "cuda"``) and torch's default
(``foreach``) on the CPU. This script measures, for each method of ``starbench run protocol=rafd_expression`` and
for the judge (a ResNet-18 under AdamW), the training step with the optimizers as they are against the same step
with every optimizer switched to the fused kernel, in the same process, one thread, the two interleaved in blocks;
and whether the weights after a few identical steps are bit for bit the same (they are not: the fused kernel
rounds differently), which is why switching would change every committed number and every cached run.

Usage: python benchmarks/fused_adam.py [--methods classifier,stargan,icgan,cyclegan,diat] [--blocks 3]
"""
from __future__ import annotations

import argparse
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

from starbench.config import resolve
from starbench.data import load_data
from starbench.devices import cpu_label
from starbench.metrics.classifier import ClassifierRecipe, resnet_fast_path, train_classifier
from starbench.train.data_source import to_device
from starbench.train.speed import fast_path
from starbench.train.trainer import Trainer

STEPS = {"classifier": 8, "stargan": 40, "icgan": 40, "diat": 6, "cyclegan": 4}


def use_fused(optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """Switch every optimizer to torch's fused kernel before its first step (Adam/AdamW read the flag per group)."""
    for opt in optimizers.values():
        opt.defaults.update(fused=True, foreach=False)
        for group in opt.param_groups:
            group.update(fused=True, foreach=False)


def method_steps(method: str, fused: bool) -> tuple[Callable[[int], None], Callable[[], dict[str, torch.Tensor]]]:
    """A function running the method's demo training step ``k`` (batches drawn and moved as the Trainer does),
    and one returning all its networks' weights."""
    cfg = resolve(["scale=demo", "train.progress=false", f"model={method}"])
    trainer = Trainer(cfg, "unused")
    trainer._setup()
    model = trainer.model
    if fused:
        use_fused(model.optimizers())

    def step(k: int) -> None:
        model.train_batches([to_device(b, trainer.device, trainer.channels_last) for b in trainer.data.batches(k)],
                            k)

    def weights() -> dict[str, torch.Tensor]:
        return {f"{name}.{k}": v.detach().clone() for name, net in model.networks().items()
                for k, v in net.state_dict().items()}
    return step, weights


@contextmanager
def fused_adamw(enabled: bool) -> Iterator[None]:
    """``torch.optim.AdamW`` (which the classifier's training builds) made with ``fused=True`` while inside."""
    original = torch.optim.AdamW
    if enabled:
        torch.optim.AdamW = lambda *a, **kw: original(*a, **kw, fused=True)  # type: ignore
    try:
        yield
    finally:
        torch.optim.AdamW = original


def classifier_steps(fused: bool, steps: int) -> tuple[float, torch.nn.Module]:
    """Seconds per judge training step over ``steps`` steps (one member, the demo recipe's batch), and the net."""
    cfg = resolve(["scale=demo", "train.progress=false"])
    data = load_data(cfg, show_progress=False)
    rows = data.split("train")[: steps * cfg.classifier.batch_size]
    recipe = ClassifierRecipe(epochs=1, batch_size=cfg.classifier.batch_size, lr=cfg.classifier.lr)
    device = torch.device("cpu")
    fast = resnet_fast_path(fast_path(device, cfg.train.amp, cfg.train.channels_last), int(data.images.shape[-1]))
    with fused_adamw(fused):
        start = time.perf_counter()
        net = train_classifier(data.images, data.labels, rows, "onehot", recipe, device, show_progress=False,
                               amp=fast.autocast_dtype is not None, channels_last=fast.channels_last)
    return (time.perf_counter() - start) / steps, net


def weights_differ(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> tuple[bool, float]:
    """Whether two sets of weights are bit for bit the same, and their largest difference."""
    pairs = list(zip(a.values(), b.values()))
    same = all(torch.equal(x, y) for x, y in pairs)
    return same, max(float((x.float() - y.float()).abs().max()) for x, y in pairs)


def time_method(method: str, blocks: int) -> dict[str, Any]:
    runners = {fused: method_steps(method, fused) for fused in (False, True)}
    n = STEPS[method]
    for fused, (step, _) in runners.items():  # warm-up, and the same steps for the bit comparison
        torch.manual_seed(0)  # what a model draws from torch's global generator (StarGAN's penalty mix) alike
        for k in range(2):
            step(k)
    same, diff = weights_differ(*(weights() for _, weights in runners.values()))
    seconds = {False: 0.0, True: 0.0}
    k = 2
    for _ in range(blocks):
        for fused, (step, _) in runners.items():
            start = time.perf_counter()
            for j in range(n):
                step(k + j)
            seconds[fused] += time.perf_counter() - start
        k += n
    return {"foreach_ms": 1000 * seconds[False] / (blocks * n), "fused_ms": 1000 * seconds[True] / (blocks * n),
            "compared_after": 2, "bit_equal": same, "max_diff": diff}


def time_classifier(blocks: int) -> dict[str, Any]:
    per = {False: [], True: []}
    nets = {}
    for _ in range(blocks):
        for fused in (False, True):
            s, nets[fused] = classifier_steps(fused, STEPS["classifier"])
            per[fused].append(s)
    same, diff = weights_differ(nets[False].state_dict(), nets[True].state_dict())
    return {"foreach_ms": 1000 * sum(per[False]) / blocks, "fused_ms": 1000 * sum(per[True]) / blocks,
            "compared_after": STEPS["classifier"], "bit_equal": same, "max_diff": diff}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="classifier,stargan,icgan,cyclegan,diat")
    ap.add_argument("--blocks", type=int, default=3, help="interleaved blocks of steps per variant")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"{cpu_label()}; torch {torch.__version__}, 1 thread; ms per training step, optimizers as they are "
          f"(foreach) against fused")
    for method in args.methods.split(","):
        r = time_classifier(args.blocks) if method == "classifier" else time_method(method, args.blocks)
        saved = 1 - r["fused_ms"] / r["foreach_ms"]
        print(f"{method:10} foreach {r['foreach_ms']:8.1f} ms  fused {r['fused_ms']:8.1f} ms  "
              f"x{r['foreach_ms'] / r['fused_ms']:.3f} ({100 * saved:+.1f}% of the step saved); weights after "
              f"{r['compared_after']} steps bit for bit the same: {r['bit_equal']} (largest difference "
              f"{r['max_diff']:.3g})", flush=True)


if __name__ == "__main__":
    main()
