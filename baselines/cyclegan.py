"""CycleGAN (Zhu et al. 2017) as the StarGAN paper ran it: one bidirectional model per domain pair.

Per pair: G_AB, G_BA (ResNet generators, 6 blocks at 128 px), D_A, D_B (StarGAN's PatchGAN without
the class head), LSGAN losses, cycle loss weight 10, identity loss 0.5 x 10, an image pool of 50
fakes per direction, Adam 2e-4 (0.5, 0.999); the Trainer's schedule (constant, then linear to 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from starbench.baselines.networks import ImagePool, PatchDiscriminator, ResnetGenerator, adam, lsgan_loss
from starbench.baselines.packed import optimize_all, pack, unpack
from starbench.baselines.pairwise import PairInstance, Pairwise
from starbench.registry import register_model


@dataclass
class CycleGANOptions:
    """CycleGAN as the StarGAN paper ran it (``cyclegan.<option>=VALUE``): ResNet G, StarGAN's PatchGAN D without
    the class head."""

    g_conv_dim: int = 64  # G's first width
    g_blocks: int = 6  # residual blocks (6 at 128 px)
    d_conv_dim: int = 64  # D's first width
    d_repeat: int = 6  # strided conv layers in D
    lambda_cycle: float = 10.0  # cycle-consistency loss weight
    lambda_identity: float = 0.5  # times lambda_cycle; 0 disables the identity loss
    pool_size: int = 50  # image pool of earlier fakes shown to D
    lr: float = 2e-4  # Adam learning rate of every network
    beta1: float = 0.5  # Adam beta1
    beta2: float = 0.999  # Adam beta2


class CycleGANPair(PairInstance):
    bidirectional = True
    translating = ("G_AB", "G_BA")

    def __init__(self, opts: Any, cfg: Any, a: str, b: str) -> None:
        super().__init__(opts, cfg, a, b)
        o = self.o
        self.nets = {"G_AB": ResnetGenerator(o.g_conv_dim, o.g_blocks), "G_BA": ResnetGenerator(o.g_conv_dim,
                                                                                                o.g_blocks),
                     "D_A": PatchDiscriminator(o.d_conv_dim, o.d_repeat), "D_B": PatchDiscriminator(o.d_conv_dim,
                                                                                                    o.d_repeat)}
        self.pool_a, self.pool_b = ImagePool(o.pool_size), ImagePool(o.pool_size)

    def make_optimizers(self, device: torch.device) -> dict[str, torch.optim.Optimizer]:
        o = self.o
        g = list(self.nets["G_AB"].parameters()) + list(self.nets["G_BA"].parameters())
        d = list(self.nets["D_A"].parameters()) + list(self.nets["D_B"].parameters())
        return {"G": adam(g, o.lr, o.beta1, o.beta2, device), "D": adam(d, o.lr, o.beta1, o.beta2, device)}

    def train_step(self, xa: torch.Tensor, xb: torch.Tensor, step: int, model: Any) -> dict[str, torch.Tensor]:
        n, o = self.nets, self.o
        G_AB, G_BA, D_A, D_B = n["G_AB"], n["G_BA"], n["D_A"], n["D_B"]
        opt = self.optimizers
        # Generators: fool both critics, cycle back, and (optionally) leave target-domain images alone.
        with model.autocast():
            fake_b, fake_a = G_AB(xa), G_BA(xb)
            rec_a, rec_b = G_BA(fake_b), G_AB(fake_a)
            adv = lsgan_loss(D_B(fake_b), True) + lsgan_loss(D_A(fake_a), True)
            cyc = (rec_a.float() - xa).abs().mean() + (rec_b.float() - xb).abs().mean()
            loss = adv + o.lambda_cycle * cyc
            idt = torch.zeros((), device=xa.device)
            if o.lambda_identity > 0:
                idt = (G_AB(xb).float() - xb).abs().mean() + (G_BA(xa).float() - xa).abs().mean()
                loss = loss + o.lambda_cycle * o.lambda_identity * idt
        for d in (D_A, D_B):
            d.requires_grad_(False)
        opt["G"].zero_grad(set_to_none=True)
        loss.backward()
        for d in (D_A, D_B):
            d.requires_grad_(True)
        model.grad_sync(G_AB), model.grad_sync(G_BA)
        opt["G"].step()
        # Critics: real vs pooled fakes, halved as in the original code.
        with model.autocast():
            pa, pb = self.pool_a.query(fake_a), self.pool_b.query(fake_b)
            d_a = 0.5 * (lsgan_loss(D_A(xa), True) + lsgan_loss(D_A(pa), False))
            d_b = 0.5 * (lsgan_loss(D_B(xb), True) + lsgan_loss(D_B(pb), False))
        opt["D"].zero_grad(set_to_none=True)
        (d_a + d_b).backward()
        model.grad_sync(D_A), model.grad_sync(D_B)
        opt["D"].step()
        return {"G/adv": adv.detach(), "G/cycle": cyc.detach(), "G/idt": idt.detach(), "D/A": d_a.detach(),
                "D/B": d_b.detach()}

    @classmethod
    def packed_step(cls, instances: list["CycleGANPair"], xa: list[torch.Tensor], xb: list[torch.Tensor], step: int,
                    model: Any, grouped: bool = True) -> Optional[list[dict[str, torch.Tensor]]]:
        """``train_step`` of every instance at once: each of the four roles runs as one grouped network (CycleGAN's
        instances share nothing, so without ``grouped`` there is nothing to pack)."""
        if not grouped:
            return None
        m, o = len(instances), instances[0].o
        role = {r: [i.nets[r] for i in instances] for r in ("G_AB", "G_BA", "D_A", "D_B")}
        G = lambda r, x: ResnetGenerator.packed_forward(role[r], x)  # noqa: E731
        D = lambda r, x: PatchDiscriminator.packed_forward(role[r], x)  # noqa: E731
        pa, pb = pack(xa), pack(xb)
        with model.autocast():
            fake_b, fake_a = G("G_AB", pa), G("G_BA", pb)
            rec_a, rec_b = G("G_BA", fake_b), G("G_AB", fake_a)
            pred_b, pred_a = D("D_B", fake_b), D("D_A", fake_a)
            adv = [lsgan_loss(pred_b[:, k], True) + lsgan_loss(pred_a[:, k], True) for k in range(m)]
            ra, rb, xa_, xb_ = unpack(rec_a, m), unpack(rec_b, m), unpack(pa, m), unpack(pb, m)
            cyc = [(ra[k].float() - xa_[k]).abs().mean() + (rb[k].float() - xb_[k]).abs().mean() for k in range(m)]
            loss = sum(a + o.lambda_cycle * c for a, c in zip(adv, cyc))
            idt = [torch.zeros((), device=pa.device)] * m
            if o.lambda_identity > 0:
                ib, ia = unpack(G("G_AB", pb), m), unpack(G("G_BA", pa), m)
                idt = [(ib[k].float() - xb_[k]).abs().mean() + (ia[k].float() - xa_[k]).abs().mean() for k in range(m)]
                loss = loss + o.lambda_cycle * o.lambda_identity * sum(idt)
        optimize_all(instances, "G", ["G_AB", "G_BA"], loss, model, frozen=role["D_A"] + role["D_B"])
        fa, fb = unpack(fake_a, m), unpack(fake_b, m)
        pooled = [(inst.pool_a.query(fa[k]), inst.pool_b.query(fb[k])) for k, inst in enumerate(instances)]
        with model.autocast():
            real_a, real_b = D("D_A", pa), D("D_B", pb)
            old_a, old_b = D("D_A", pack([p[0] for p in pooled])), D("D_B", pack([p[1] for p in pooled]))
            d_a = [0.5 * (lsgan_loss(real_a[:, k], True) + lsgan_loss(old_a[:, k], False)) for k in range(m)]
            d_b = [0.5 * (lsgan_loss(real_b[:, k], True) + lsgan_loss(old_b[:, k], False)) for k in range(m)]
        optimize_all(instances, "D", ["D_A", "D_B"], sum(d_a) + sum(d_b), model)
        return [{"G/adv": adv[k].detach(), "G/cycle": cyc[k].detach(), "G/idt": idt[k].detach(), "D/A": d_a[k].detach(),
                 "D/B": d_b[k].detach()} for k in range(m)]

    def forward_ab(self, x: torch.Tensor) -> torch.Tensor:
        return self.nets["G_AB"](x)

    def forward_ba(self, x: torch.Tensor) -> torch.Tensor:
        return self.nets["G_BA"](x)

    def translators(self) -> list[nn.Module]:
        return [self.nets["G_AB"], self.nets["G_BA"]]

    def extra_state(self) -> dict[str, Any]:
        return {"pool_a": self.pool_a.state(), "pool_b": self.pool_b.state()}

    def load_extra_state(self, state: dict[str, Any], device: torch.device) -> None:
        self.pool_a.load(state.get("pool_a", []), device)
        self.pool_b.load(state.get("pool_b", []), device)

    def instance_networks(self) -> dict[str, list[str]]:
        return {"A->B": ["G_AB", "D_B"], "B->A": ["G_BA", "D_A"]}


@register_model("cyclegan", "CycleGAN: one bidirectional two-domain model per domain pair (x14 for RaFD)")
class CycleGAN(Pairwise):
    name = "cyclegan"
    options = CycleGANOptions
    presets = {
        "smoke": {"g_conv_dim": 8, "g_blocks": 1, "d_conv_dim": 8, "d_repeat": 4, "pool_size": 8},
        "demo": {"g_conv_dim": 16, "g_blocks": 2, "d_conv_dim": 32, "d_repeat": 4, "lr": 5e-4},
    }
    # demo (a constant learning rate): at 120 steps its error was still falling; it flattens from about step 180
    # (benchmarks/results/convergence/cyclegan-ema*)
    # demo/celeba: at 240 steps its target error was still falling (trend -3.0; benchmarks/results/convergence/
    # celeba-cyclegan-x3), and over seeds 0-2 still at 720 (5.3%, trend -1.0) and 1,080 (4.2%, trend -0.8); at
    # 1,440 the seed mean (3.6%) passes the plateau test (celeba-cyclegan-long1440-seed*)
    steps = {"demo": 240, "demo/celeba": 1440}
    instance_class = CycleGANPair
