"""Adam on the CPU, three ways: what each saves in a training step of the demo main job, and whether it moves a bit.

- ``torch``: ``torch.optim.Adam``/``AdamW`` as torch runs it on the CPU by default (its single-tensor loop:
  eight passes over memory for every weight tensor);
- ``blocked``: starbench's (``starbench/train/adam.py``): the same operations in the same order, block by block of
  each tensor, so a block stays in the cache for all of them;
- ``fused``: torch's fused kernel (``fused=True``, on the CPU since torch 2.4), one pass, its own rounding.

For each method of ``starbench run protocol=rafd_expression`` and for the judge (a ResNet-18 under AdamW, one
member), this times the training step with every optimizer of the run switched to each variant, in the same
process, one thread, the variants interleaved in blocks; and compares the weights after the same steps with
``torch``'s, bit for bit. ``blocked`` must be equal (the judge trains with it on the CPU, and every cached judge and
committed number was made with torch's arithmetic); ``fused`` is not (a rounding step apart), which is why it is
not used on the CPU: switching would change every committed number and every cache. The methods train with torch's
own Adam: the blocked one measured no faster on their small networks.

Usage: python benchmarks/adam_kernels.py [--methods classifier,stargan,icgan,cyclegan,diat] [--blocks 3]
"""
from __future__ import annotations

import argparse
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

import starbench.metrics.classifier as classifier_module
from starbench.config import resolve
from starbench.data import load_data
from starbench.devices import cpu_label
from starbench.metrics.classifier import ClassifierRecipe, resnet_fast_path, train_classifier
from starbench.train.adam import BlockedAdam, BlockedAdamW
from starbench.train.data_source import to_device
from starbench.train.speed import fast_path
from starbench.train.trainer import Trainer

STEPS = {"classifier": 8, "stargan": 40, "icgan": 40, "diat": 6, "cyclegan": 4}
VARIANTS = ("torch", "blocked", "fused")


def switch(opt: torch.optim.Optimizer, variant: str) -> torch.optim.Optimizer:
    """Make an Adam/AdamW (torch's, or the blocked one) run as ``variant`` from its next step: its class and flags;
    the state and state_dict are the same for all three."""
    torch_class = next(c for c in type(opt).__mro__ if c.__module__.startswith("torch.optim"))
    if variant == "blocked":
        opt.__class__ = BlockedAdamW if issubclass(torch_class, torch.optim.AdamW) else BlockedAdam
        return opt
    opt.__class__ = torch_class  # (the blocked classes only override ``step``)
    fused = variant == "fused"
    opt.defaults.update(fused=fused or None, foreach=False)
    for group in opt.param_groups:
        group.update(fused=fused or None, foreach=False)
    return opt


def method_steps(method: str, variant: str) -> tuple[Callable[[int], None], Callable[[], dict[str, torch.Tensor]]]:
    """A function running the method's demo training step ``k`` (batches drawn and moved as the Trainer does),
    and one returning all its networks' weights."""
    cfg = resolve(["scale=demo", "train.progress=false", f"model={method}"])
    trainer = Trainer(cfg, "unused")
    trainer._setup()
    model = trainer.model
    for opt in model.optimizers().values():
        switch(opt, variant)

    def step(k: int) -> None:
        model.train_batches([to_device(b, trainer.device, trainer.channels_last) for b in trainer.data.batches(k)],
                            k)

    def weights() -> dict[str, torch.Tensor]:
        return {f"{name}.{k}": v.detach().clone() for name, net in model.networks().items()
                for k, v in net.state_dict().items()}
    return step, weights


@contextmanager
def judge_adam(variant: str) -> Iterator[None]:
    """The classifier's training made with ``variant`` of AdamW while inside."""
    original = classifier_module.BlockedAdamW
    classifier_module.BlockedAdamW = lambda *a, **kw: switch(original(*a, **kw), variant)  # type: ignore
    try:
        yield
    finally:
        classifier_module.BlockedAdamW = original


def classifier_steps(variant: str, steps: int) -> tuple[float, torch.nn.Module]:
    """Seconds per judge training step over ``steps`` steps (one member, the demo recipe's batch), and the net."""
    cfg = resolve(["scale=demo", "train.progress=false"])
    data = load_data(cfg, show_progress=False)
    rows = data.split("train")[: steps * cfg.classifier.batch_size]
    recipe = ClassifierRecipe(epochs=1, batch_size=cfg.classifier.batch_size, lr=cfg.classifier.lr)
    device = torch.device("cpu")
    fast = resnet_fast_path(fast_path(device, cfg.train.amp, cfg.train.channels_last), int(data.images.shape[-1]))
    with judge_adam(variant):
        start = time.perf_counter()
        net = train_classifier(data.images, data.labels, rows, "onehot", recipe, device, show_progress=False,
                               amp=fast.autocast_dtype is not None, channels_last=fast.channels_last)
    return (time.perf_counter() - start) / steps, net


def weights_differ(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> tuple[bool, float]:
    """Whether two sets of weights are bit for bit the same, and their largest difference."""
    pairs = list(zip(a.values(), b.values()))
    same = all(torch.equal(x, y) for x, y in pairs)
    return same, max(float((x.float() - y.float()).abs().max()) for x, y in pairs)


def time_method(method: str, blocks: int) -> dict[str, dict[str, Any]]:
    runners = {variant: method_steps(method, variant) for variant in VARIANTS}
    n = STEPS[method]
    for step, _ in runners.values():  # warm-up, and the same steps for the bit comparison
        torch.manual_seed(0)  # what a model draws from torch's global generator (StarGAN's penalty mix) alike
        for k in range(2):
            step(k)
    reference = runners["torch"][1]()
    equal = {v: weights_differ(reference, weights()) for v, (_, weights) in runners.items()}
    seconds = dict.fromkeys(VARIANTS, 0.0)
    k = 2
    for _ in range(blocks):
        for variant, (step, _) in runners.items():
            start = time.perf_counter()
            for j in range(n):
                step(k + j)
            seconds[variant] += time.perf_counter() - start
        k += n
    return {v: {"ms": 1000 * seconds[v] / (blocks * n), "compared_after": 2, "equal": equal[v]} for v in VARIANTS}


def time_classifier(blocks: int) -> dict[str, dict[str, Any]]:
    per: dict[str, list[float]] = {v: [] for v in VARIANTS}
    nets = {}
    for _ in range(blocks):
        for variant in VARIANTS:
            s, nets[variant] = classifier_steps(variant, STEPS["classifier"])
            per[variant].append(s)
    return {v: {"ms": 1000 * sum(per[v]) / blocks, "compared_after": STEPS["classifier"],
                "equal": weights_differ(nets["torch"].state_dict(), nets[v].state_dict())} for v in VARIANTS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="classifier,stargan,icgan,cyclegan,diat")
    ap.add_argument("--blocks", type=int, default=3, help="interleaved blocks of steps per variant")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"{cpu_label()}; torch {torch.__version__}, 1 thread; ms per training step with every optimizer as "
          f"torch's single-tensor loop, starbench's blocked one, torch's fused kernel")
    for method in args.methods.split(","):
        r = time_classifier(args.blocks) if method == "classifier" else time_method(method, args.blocks)
        base = r["torch"]["ms"]
        cells = [f"torch {base:7.1f} ms"]
        for v in ("blocked", "fused"):
            same, diff = r[v]["equal"]
            cells.append(f"{v} {r[v]['ms']:7.1f} ms ({100 * (1 - r[v]['ms'] / base):+5.1f}% saved; after "
                         f"{r[v]['compared_after']} steps bit for bit torch's: {same}, largest difference {diff:.3g})")
        print(f"{method:10} " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
