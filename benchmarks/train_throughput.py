"""StarGAN training iterations/s: starbench's Trainer step versus the public code's loop, one process.

Two references: "public" restates the public StarGAN solver's iteration faithfully, its per-iteration
``.item()`` logging of every loss included; "ref" is the same without the logging. Both are plain
eager fp32 restatements of the solver (same
networks, losses, hyperparameters and batch): D on real, G(x) for the fake with its graph kept,
D on the fake, gradient penalty on x_hat (grad_outputs=ones), one D step; every 5th iteration a G
step. Its batches come from one float tensor already in device memory (the "in-memory data" anchor
of the measured anchors in benchmarks/results/).

starbench's iteration is the Trainer's loop body: a batch gathered from the decoded uint8 cache,
moved to the device, and ``StarGAN.train_step`` (bf16 autocast, channels_last and fused Adam on
CUDA; gradient penalty in fp32 unless a variant says otherwise).

One iteration = one D step (G every n_critic-th). Variants run one after another in this process;
peak memory is reset before each.

Usage:
  python benchmarks/train_throughput.py                       # CPU, small config (64 px, reduced widths)
  python benchmarks/train_throughput.py --variants public,ref,starbench,starbench-fp32   # CPU, the issue's ratios
  python benchmarks/train_throughput.py --paper --device cuda # 128 px, paper networks, batch 16, CelebA config
  options: --variants ref,starbench[,gp-bf16,compile-g] --iters N --warmup N --data rafd|celeba
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F

from starbench.config import resolve
from starbench.models.stargan import Discriminator, Generator
from starbench.train.data_source import to_device
from starbench.train.trainer import Trainer


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(step: Callable[[int], None], warmup: int, iters: int, device: torch.device) -> dict[str, float]:
    """it/s over ``iters`` after ``warmup``; peak memory of the warm-up (cudnn autotuning, compilation)
    and of the steady state separately."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(warmup):
        step(i)
    sync(device)
    warm_peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for i in range(warmup, warmup + iters):
        step(i)
    sync(device)
    secs = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {"it_per_s": iters / secs, "peak_gib": peak, "warmup_peak_gib": warm_peak}


def reference_step_fn(cfg: Any, data: Any, device: torch.device, log_items: bool = False) -> Callable[[int], None]:
    """The public solver's iteration, restated in plain eager fp32 PyTorch; ``log_items``: also its per-iteration
    logging (every loss ``.item()``-ed into a dict each iteration, a device sync per loss on a GPU)."""
    o, dom = cfg.stargan, data.domains
    torch.manual_seed(cfg.seed)
    G = Generator(o.g_conv_dim, dom.label_dim, o.g_repeat).to(device)
    D = Discriminator(cfg.data.image_size, o.d_conv_dim, dom.class_dim, o.d_repeat).to(device)
    g_opt = torch.optim.Adam(G.parameters(), o.g_lr, (o.beta1, o.beta2))
    d_opt = torch.optim.Adam(D.parameters(), o.d_lr, (o.beta1, o.beta2))
    src = data.sources[0]
    train = torch.from_numpy(src.data.split("train"))
    images = torch.from_numpy(src.data.images[train.numpy()]).to(device).float().div(127.5).sub(1)
    labels = torch.from_numpy(src.labels[train.numpy()]).to(device)
    bs = cfg.data.batch_size
    onehot = dom.kind == "onehot"

    def cls_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if onehot:
            return F.cross_entropy(logits, target.argmax(1))
        return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / logits.size(0)

    def step(i: int) -> None:
        idx = torch.randint(0, images.size(0), (bs,), device=device)
        x_real, c_org = images[idx], labels[idx]
        c_trg = c_org[torch.randperm(bs, device=device)]
        out_src, out_cls = D(x_real)
        d_loss_real = -out_src.mean()
        d_loss_cls = cls_loss(out_cls, c_org)
        x_fake = G(x_real, c_trg)
        out_src, _ = D(x_fake.detach())
        d_loss_fake = out_src.mean()
        alpha = torch.rand(bs, 1, 1, 1, device=device)
        x_hat = (alpha * x_real + (1 - alpha) * x_fake.detach()).requires_grad_(True)
        out_src, _ = D(x_hat)
        grad = torch.autograd.grad(out_src, x_hat, torch.ones_like(out_src), retain_graph=True, create_graph=True)[0]
        d_loss_gp = ((grad.view(bs, -1).norm(2, dim=1) - 1) ** 2).mean()
        d_loss = d_loss_real + d_loss_fake + o.lambda_cls * d_loss_cls + o.lambda_gp * d_loss_gp
        g_opt.zero_grad()
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        if log_items:
            log = {"D/loss_real": d_loss_real.item(), "D/loss_fake": d_loss_fake.item(),
                   "D/loss_cls": d_loss_cls.item(), "D/loss_gp": d_loss_gp.item()}
        if (i + 1) % o.n_critic == 0:
            x_fake = G(x_real, c_trg)
            out_src, out_cls = D(x_fake)
            g_loss = -out_src.mean() + o.lambda_cls * cls_loss(out_cls, c_trg)
            x_rec = G(x_fake, c_org)
            g_loss = g_loss + o.lambda_rec * (x_real - x_rec).abs().mean()
            g_opt.zero_grad()
            d_opt.zero_grad()
            g_loss.backward()
            g_opt.step()
            if log_items:
                log["G/loss"] = g_loss.item()

    return step


def starbench_step_fn(trainer: Trainer) -> Callable[[int], None]:
    def step(i: int) -> None:
        for batch in trainer.data.batches(i):
            trainer.model.train_step(to_device(batch, trainer.device, trainer.channels_last), i)

    return step


VARIANTS = {"starbench": [], "starbench-fp32": ["train.amp=false", "train.channels_last=false"],
            "eager-g": ["stargan.compile_g=false"], "gp-bf16": ["stargan.gp_fp32=false"],
            "compile-d": ["stargan.compile_d=true"], "compile-d+gp-bf16": ["stargan.compile_d=true",
                                                                           "stargan.gp_fp32=false"]}


def main() -> None:
    ap = argparse.ArgumentParser(description="StarGAN training throughput: starbench vs the public loop")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--paper", action="store_true", help="paper networks at 128 px (default: a small CPU config)")
    ap.add_argument("--data", default="celeba", help="celeba (5 attributes, the GPU anchors) or rafd")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--iters", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--variants", default="ref,starbench")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    base = ["scale=paper", f"data={args.data}", f"data.batch_size={args.batch}", f"device={args.device}",
            "train.progress=false"]
    if not args.paper:
        base += ["data.image_size=64", "stargan.g_conv_dim=32", "stargan.g_repeat=3", "stargan.d_conv_dim=32",
                 "stargan.d_repeat=5", "data.synth_celeba_images=400", "data.synth_subjects=12"]
    base += args.overrides
    results: dict[str, dict[str, float]] = {}
    plain_flags = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
                   torch.backends.cudnn.allow_tf32)  # PyTorch's defaults, before the Trainer sets its own
    trainer = Trainer(resolve(base + ["train.steps=1000000"]), "/tmp/starbench-bench-unused")
    trainer._setup()
    device = trainer.device
    iters = args.iters or (200 if device.type == "cuda" else 20)
    warmup = args.warmup or (30 if device.type == "cuda" else 5)
    print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, "
          f"torch {torch.__version__}, {cfg_text(trainer.cfg)}, {iters} iterations after {warmup} warm-up")
    for name in args.variants.split(","):
        if name in ("ref", "public"):  # the public code runs with PyTorch's default backend flags
            (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.allow_tf32) = plain_flags
            fn = reference_step_fn(trainer.cfg, trainer.data, device, log_items=name == "public")
        else:
            if name not in VARIANTS:
                raise SystemExit(f"unknown variant {name}; known: ref, public, {', '.join(VARIANTS)}")
            tr = Trainer(resolve(base + ["train.steps=1000000"] + VARIANTS[name]), "/tmp/starbench-bench-unused")
            tr._setup()  # sets starbench's backend flags (cudnn autotuning, TF32)
            fn = starbench_step_fn(tr)
        results[name] = measure(fn, warmup, iters, device)
        r = results[name]
        print(f"{name:>20}: {r['it_per_s']:7.2f} it/s   peak memory {r['peak_gib']:.2f} GiB "
              f"(warm-up {r['warmup_peak_gib']:.2f} GiB)", flush=True)
    for ref in ("public", "ref"):
        if ref in results:
            for name, r in results.items():
                if name != ref:
                    print(f"{name:>20}: {r['it_per_s'] / results[ref]['it_per_s']:.2f}x {ref}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device), "config": base, "iters": iters, "results": results}, f, indent=2)


def cfg_text(cfg: Any) -> str:
    o = cfg.stargan
    return (f"{cfg.data.name} {cfg.data.image_size}px batch {cfg.data.batch_size}, "
            f"G {o.g_conv_dim}/{o.g_repeat} blocks, D {o.d_conv_dim}/{o.d_repeat} layers")


if __name__ == "__main__":
    main()
