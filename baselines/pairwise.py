"""One model per domain pair, seen by the protocols as one model (the paper's "x7 / x14" baselines, Table 3).

Two-domain methods (DIAT, CycleGAN) hold one instance per pair; ``translate`` routes each image to
the instance for its (source, target) and chains instances for multi-attribute CelebA edits, as the
paper did. The paper's "x7 / x14" falls out of counting the instances.

Default pairs (``pair=a,b`` picks one):
- RaFD (one-hot with a ``neutral`` domain): neutral -> each of the other 7 expressions;
- CelebA: black<->blond, black<->brown, blond<->brown hair, female<->male (``-Male``/``Male``),
  young<->aged (``Young``/``-Young``);
- other one-hot folders: every pair of domains.
Bidirectional methods (CycleGAN) make one instance per pair; one-directional ones (DIAT) make one
per direction (RaFD: neutral -> e only).

All instances train in lockstep inside the one Trainer loop: each step gives every instance one
batch of its own two domains.
"""
from __future__ import annotations

import abc
from typing import Any, Optional

import torch
from torch import nn

from starbench.data.batches import Batch
from starbench.data.domains import DomainSpec
from starbench.errors import StarbenchError
from starbench.models.base import TranslationModel

CELEBA_PAIRS = [("Black_Hair", "Blond_Hair"), ("Black_Hair", "Brown_Hair"), ("Blond_Hair", "Brown_Hair"),
                ("-Male", "Male"), ("Young", "-Young")]


class PairInstance(abc.ABC):
    """One two-domain model translating domain ``a`` to ``b`` (and back when bidirectional)."""

    bidirectional = False
    translating: tuple[str, ...] = ("G",)  # the networks ``forward_ab`` / ``forward_ba`` use

    def __init__(self, opts: Any, cfg: Any, a: str, b: str) -> None:
        self.o, self.cfg, self.a, self.b = opts, cfg, a, b
        self.nets: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    @abc.abstractmethod
    def make_optimizers(self, device: torch.device) -> dict[str, torch.optim.Optimizer]: ...

    @abc.abstractmethod
    def train_step(self, xa: torch.Tensor, xb: torch.Tensor, step: int, model: "Pairwise") -> dict[str, Any]: ...

    @classmethod
    def packed_step(cls, instances: list["PairInstance"], xa: list[torch.Tensor], xb: list[torch.Tensor], step: int,
                    model: "Pairwise", grouped: bool = True) -> Optional[list[dict[str, Any]]]:
        """All ``instances`` trained in one step; the losses of each, as ``train_step`` returns them. ``grouped``:
        each network role as one grouped network (``baselines.packed``); else only what the instances share runs
        once for all (DIAT's identity network F). None: nothing to gain (each instance then trains alone)."""
        return None

    @abc.abstractmethod
    def forward_ab(self, x: torch.Tensor) -> torch.Tensor: ...

    def forward_ba(self, x: torch.Tensor) -> torch.Tensor:
        raise StarbenchError(f"{type(self).__name__} translates {self.a} -> {self.b} only")

    @abc.abstractmethod
    def instance_networks(self) -> dict[str, list[str]]:
        """Networks making up each translation direction (the paper's unit of counting)."""

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any], device: torch.device) -> None:
        pass


def _check_domain(domains: DomainSpec, expr: str) -> None:
    name = expr[1:] if expr.startswith("-") else expr
    if name not in domains.names or (expr.startswith("-") and domains.kind == "onehot"):
        hint = "; prefix an attribute with - for 'not'" if domains.kind == "multilabel" else ""
        valid = ", ".join(domains.names) + hint
        raise StarbenchError(f"pair names unknown domain '{expr}'; available: {valid}")


def resolve_pairs(domains: DomainSpec, pair: Optional[str], bidirectional: bool) -> list[tuple[str, str]]:
    """The (a, b) instances of a pairwise model on ``domains`` (see the module docstring)."""
    if domains.is_joint:
        raise StarbenchError("two-domain baselines do not train on data=joint")
    if pair:
        parts = [p.strip() for p in str(pair).split(",")]
        if len(parts) != 2 or not all(parts):
            raise StarbenchError(f"config key 'pair': '{pair}' should be two domains, e.g. pair=neutral,happy")
        for p in parts:
            _check_domain(domains, p)
        return [(parts[0], parts[1])]
    if domains.kind == "multilabel":
        base = [(a, b) for a, b in CELEBA_PAIRS if a.lstrip("-") in domains.names and b.lstrip("-") in domains.names]
        if not base:
            raise StarbenchError(f"no default pairs for attributes {', '.join(domains.names)}; give pair=A,B")
        return base if bidirectional else base + [(b, a) for a, b in base]
    names = list(domains.names)
    if "neutral" in names:
        return [("neutral", d) for d in names if d != "neutral"]
    base = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    return base if bidirectional else base + [(b, a) for a, b in base]


def with_condition(domains: DomainSpec, labels: torch.Tensor, expr: str) -> torch.Tensor:
    """Labels changed so that domain ``expr`` holds (hair colours stay one-of-three)."""
    out = labels.clone()
    if domains.kind == "onehot":
        out.zero_()
        out[:, domains.index(expr)] = 1
        return out
    name = expr.lstrip("-")
    i = domains.index(name)
    if not expr.startswith("-") and name.endswith("_Hair"):
        out[:, [j for j, n in enumerate(domains.names) if n.endswith("_Hair")]] = 0
    out[:, i] = 0.0 if expr.startswith("-") else 1.0
    return out


class Pairwise(TranslationModel):
    """A set of ``instance_class`` models, one per pair, behind the single-model interface."""

    instance_class: type[PairInstance]

    def __init__(self, domains: DomainSpec, cfg: Any) -> None:
        super().__init__(domains, cfg)
        pairs = resolve_pairs(domains, cfg.pair, self.instance_class.bidirectional)
        arrow = "<->" if self.instance_class.bidirectional else "->"
        self.instances: dict[str, PairInstance] = {f"{a}{arrow}{b}": self.instance_class(self.opts, cfg, a, b)
                                                   for a, b in pairs}

    # ------------------------------------------------------------------ the contract
    def networks(self) -> dict[str, nn.Module]:
        return {f"{tag}/{name}": net for tag, inst in self.instances.items() for name, net in inst.nets.items()}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        out = {}
        for tag, inst in self.instances.items():
            if not inst.optimizers:
                inst.optimizers = inst.make_optimizers(self.device)
            out.update({f"{tag}/{k}": v for k, v in inst.optimizers.items()})
        return out

    def pair_requests(self) -> list[tuple[str, str, str]]:
        return [(tag, inst.a, inst.b) for tag, inst in self.instances.items()]

    def averaged_networks(self) -> list[str]:
        return [f"{tag}/{name}" for tag, inst in self.instances.items() for name in inst.translating]

    def train_batches(self, batches: list[Batch], step: int) -> dict[str, Any]:
        """One step of every instance: packed into grouped networks (``train.pack``), else one after another."""
        for b in batches:
            if b.pair not in self.instances:
                raise StarbenchError(f"batch for pair '{b.pair}': no such instance ({', '.join(self.instances)})")
        pack = self.packed
        if pack is not False and len(batches) > 1 and len({tuple(b.x.shape) for b in batches}) == 1:
            halves = [b.x.chunk(2) for b in batches]
            losses = self.instance_class.packed_step([self.instances[b.pair] for b in batches],
                                                     [h[0] for h in halves], [h[1] for h in halves], step, self,
                                                     grouped=bool(pack))
            if losses is not None:
                return {f"{b.pair}/{k}": v for b, own in zip(batches, losses) for k, v in own.items()}
        return super().train_batches(batches, step)

    @property
    def packed(self) -> Optional[bool]:
        """``train.pack``: true (grouped networks), false (each instance alone, as before packing existed), absent
        (the measured default: only what the instances share runs once, i.e. DIAT's F)."""
        return self.cfg.train.pack

    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        if batch.pair not in self.instances:
            raise StarbenchError(f"batch for pair '{batch.pair}': no such instance ({', '.join(self.instances)})")
        xa, xb = batch.x.chunk(2)
        losses = self.instances[batch.pair].train_step(xa, xb, step, self)
        return {f"{batch.pair}/{k}": v for k, v in losses.items()}

    # ------------------------------------------------------------------ routing
    def available(self) -> list[str]:
        out = []
        for inst in self.instances.values():
            out.append(f"{inst.a} -> {inst.b}")
            if inst.bidirectional:
                out.append(f"{inst.b} -> {inst.a}")
        return out

    def _holds(self, labels: torch.Tensor, expr: str) -> torch.Tensor:
        return torch.from_numpy(self.domains.select(labels.cpu().numpy(), expr))

    def route(self, source: torch.Tensor, target: torch.Tensor) -> list[tuple[PairInstance, str]]:
        """Instances (and direction) taking one source label to one target label, chained if needed."""
        src, tgt = source[None].float(), target[None].float()
        steps: list[tuple[PairInstance, str]] = []
        current = src
        for inst in self.instances.values():
            for direction, frm, to in (("ab", inst.a, inst.b), ("ba", inst.b, inst.a)):
                if direction == "ba" and not inst.bidirectional:
                    continue
                holds = (bool(self._holds(current, frm)[0]), bool(self._holds(tgt, to)[0]),
                         bool(self._holds(current, to)[0]))
                if holds[0] and holds[1] and not holds[2]:
                    steps.append((inst, direction))
                    current = with_condition(self.domains, current, to)
                    break
        if not torch.equal((current > 0.5).float(), (tgt > 0.5).float()):
            def describe(v: torch.Tensor) -> str:
                on = [n for n, x in zip(self.domains.names, v[0].tolist()) if x > 0.5]
                return "+".join(on) if on else "(none)"
            raise StarbenchError(f"{type(self).__name__} has no instance chain from {describe(src)} to "
                                 f"{describe(tgt)}; "
                                 f"available translations: {', '.join(self.available())}")
        return steps

    @torch.no_grad()
    def translate(self, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = x.clone().float()
        keys = [tuple(s.tolist()) + tuple(t.tolist()) for s, t in zip((source > 0.5).float(), (target > 0.5).float())]
        for key in dict.fromkeys(keys):
            rows = torch.tensor([i for i, k in enumerate(keys) if k == key], device=x.device)
            i0 = int(rows[0])
            y = x[rows]
            for inst, direction in self.route(source[i0], target[i0]):
                with self.autocast():
                    y = (inst.forward_ab(y) if direction == "ab" else inst.forward_ba(y)).float()
            out[rows] = y
        return out

    # ------------------------------------------------------------------ samples, state, counts
    def sample_source(self) -> Optional[str]:
        return next(iter(self.instances.values())).a

    def sample_targets(self, labels: torch.Tensor, dataset: Optional[str] = None) -> list[tuple[str, torch.Tensor]]:
        src = self.sample_source()
        return [(inst.b, with_condition(self.domains, labels, inst.b)) for inst in self.instances.values()
                if inst.a == src]

    def extra_state(self) -> dict[str, Any]:
        return {tag: inst.extra_state() for tag, inst in self.instances.items()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        for tag, inst in self.instances.items():
            inst.load_extra_state(state.get(tag, {}), self.device)

    def instance_parameter_counts(self) -> dict[str, int]:
        """Parameters per translation direction (the paper's "52.6M x 14" unit)."""
        out = {}
        for tag, inst in self.instances.items():
            for direction, names in inst.instance_networks().items():
                out[f"{tag} {direction}"] = sum(p.numel() for n in names for p in inst.nets[n].parameters())
        return out


def count_instances(model: TranslationModel) -> dict[str, int]:
    """Parameters per instance for any model: one instance for single models, one per direction for pairwise."""
    if isinstance(model, Pairwise):
        return model.instance_parameter_counts()
    return {"model": int(sum(model.parameter_counts().values()))}

