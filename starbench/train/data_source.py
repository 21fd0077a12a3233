"""What the Trainer iterates over: one dataset, or CelebA + RaFD alternating with the mask vector."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from starbench.data import LoadedData, load_data
from starbench.data.batches import Batch, BatchSampler, iterate_split
from starbench.data.cache import fingerprint
from starbench.data.domains import DomainSpec
from starbench.errors import StarbenchError

JOINT_PARTS = ("celeba", "rafd")  # order of the unified label (the paper's mask vector)


@dataclass
class Stream:
    """One dataset's training batches: its images, its labels in the training DomainSpec and its sampler."""

    name: str | None  # dataset tag for joint batches (None for a single dataset)
    data: LoadedData
    labels: np.ndarray  # labels in the training DomainSpec (joint: embedded with the mask)
    sampler: BatchSampler


class TrainingData:
    """Batches for step ``s``: a list with one batch per dataset (two for joint training)."""

    def __init__(self, cfg: Any, rank: int = 0, world_size: int = 1, show_progress: bool = True) -> None:
        self.sources: list[Stream] = []
        self._pairs: list[tuple[str, BatchSampler, BatchSampler]] = []
        self._rank, self._world = rank, world_size
        if cfg.data.name == "joint":
            parts = {}
            loaded = {}
            for name in JOINT_PARTS:
                sub = OmegaConf.merge(cfg, {"data": {"name": name, "root": cfg.data[f"{name}_root"]}})
                try:
                    loaded[name] = load_data(sub, show_progress)
                except StarbenchError as exc:
                    raise StarbenchError(f"joint training needs both CelebA and RaFD; {name}: {exc}") from exc
                parts[name] = loaded[name].domains
            self.domains = DomainSpec.joint(parts)
            for name in JOINT_PARTS:
                labels = self.domains.embed(name, loaded[name].labels)
                self.sources.append(self._source(cfg, name, loaded[name], labels, rank, world_size))
        else:
            data = load_data(cfg, show_progress)
            self.domains = data.domains
            self.sources.append(self._source(cfg, None, data, data.labels, rank, world_size))

    @staticmethod
    def _source(cfg: Any, name: str | None, data: LoadedData, labels: np.ndarray, rank: int, world: int) -> Stream:
        sampler = BatchSampler(data.images, labels, data.split("train"), cfg.data.batch_size, seed=cfg.seed,
                               flip=True, rank=rank, world_size=world, dataset=name)
        return Stream(name, data, labels, sampler)

    def use_pairs(self, pairs: list[tuple[str, str, str]], cfg: Any) -> None:
        """Two-domain models: one batch per (tag, domain a, domain b) per step, a-images then b-images."""
        if len(self.sources) != 1 or self.sources[0].name is not None:
            raise StarbenchError("two-domain models train on one dataset, not on data=joint")
        src = self.sources[0]
        train = src.data.split("train")
        self._pairs = []
        for i, (tag, a, b) in enumerate(pairs):
            sides = []
            for j, expr in enumerate((a, b)):
                rows = train[self.domains.select(src.labels[train], expr)]
                if len(rows) < cfg.data.batch_size:
                    raise StarbenchError(f"pair {tag}: domain '{expr}' has {len(rows)} training images, fewer than "
                                         f"one batch of {cfg.data.batch_size}")
                sides.append(BatchSampler(src.data.images, src.labels, rows, cfg.data.batch_size,
                                          seed=cfg.seed * 1009 + 17 * i + j, flip=True, rank=self._rank,
                                          world_size=self._world))
            self._pairs.append((tag, sides[0], sides[1]))

    @property
    def per_epoch(self) -> int:
        if self._pairs:
            return min(min(a.per_epoch, b.per_epoch) for _, a, b in self._pairs)
        return min(s.sampler.per_epoch for s in self.sources)

    def batches(self, step: int) -> list[Batch]:
        if self._pairs:
            out = []
            for tag, sa, sb in self._pairs:
                ba, bb = sa.batch(step), sb.batch(step)
                out.append(Batch(torch.cat([ba.x, bb.x]), torch.cat([ba.label, bb.label]),
                                 torch.cat([ba.index, bb.index]), pair=tag))
            return out
        return [s.sampler.batch(step) for s in self.sources]

    def fixed_batches(self, n: int, source: str | None = None) -> list[Batch]:
        """The first ``n`` test images of each dataset (of domain ``source`` when given)."""
        out = []
        for s in self.sources:
            idx = s.data.split("test")
            if len(idx) == 0:
                idx = s.data.split("train")
            if source is not None:
                idx = idx[self.domains.select(s.labels[idx], source)]
            out.append(next(iterate_split(s.data.images, s.labels, idx[:n], n, s.name)))
        return out

    def fingerprint(self) -> str:
        return "+".join(fingerprint(s.data.index, int(s.data.images.shape[-1])) for s in self.sources)


def to_device(batch: Batch, device: torch.device, channels_last: bool) -> Batch:
    b = batch.to(device)
    if channels_last:
        b.x = b.x.contiguous(memory_format=torch.channels_last)
    return b
