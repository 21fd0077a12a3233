"""Training and evaluation batches gathered from the decoded uint8 cache.

Batches are a pure function of (seed, step): the epoch's permutation comes from ``(seed, epoch)``
and the flips from ``(seed, epoch, position)``, so resuming at step N reproduces exactly the
batches an uninterrupted run would have seen, with no iterator state to checkpoint. Under
``torchrun`` each rank takes its own stride of every global batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import torch

from starbench.errors import StarbenchError


@dataclass
class Batch:
    """Images in [-1, 1] (N, 3, S, S), their label vectors (N, D) and dataset row indices."""

    x: torch.Tensor
    label: torch.Tensor
    index: torch.Tensor
    dataset: Optional[str] = None  # joint training: which dataset the batch came from
    pair: Optional[str] = None  # two-domain models: which instance the batch is for (halves: source, target)

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.x.to(device, non_blocking=True), self.label.to(device, non_blocking=True),
                     self.index, self.dataset, self.pair)


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1] (the networks' range)."""
    return images_u8.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounding to nearest (the inverse of ``to_float``)."""
    return images.detach().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)


class BatchSampler:
    """Random, flip-augmented batches of one split, indexed by training step."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, indices: np.ndarray, batch_size: int,
                 seed: int = 0, flip: bool = True, rank: int = 0, world_size: int = 1,
                 dataset: Optional[str] = None) -> None:
        if batch_size % world_size:
            raise StarbenchError(f"batch size {batch_size} is not divisible by {world_size} processes")
        if len(indices) < batch_size:
            raise StarbenchError(f"split has {len(indices)} images, fewer than one batch of {batch_size}")
        self.images, self.labels = images, labels
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size, self.seed, self.flip = batch_size, seed, flip
        self.rank, self.world_size, self.dataset = rank, world_size, dataset
        self.per_epoch = len(self.indices) // batch_size
        self._epoch_perm: tuple[int, np.ndarray] = (-1, self.indices)  # the last epoch's permutation, reused

    def _permutation(self, epoch: int) -> np.ndarray:
        """The epoch's order, drawn once per epoch rather than once per step (the same numbers)."""
        cached_epoch, perm = self._epoch_perm  # one read: safe if a prefetching thread asks too
        if cached_epoch != epoch:
            perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.indices))
            self._epoch_perm = (epoch, perm)
        return perm

    def _rows(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        epoch, pos = divmod(step, self.per_epoch)
        perm = self._permutation(epoch)
        chosen = perm[pos * self.batch_size:(pos + 1) * self.batch_size][self.rank::self.world_size]
        flips = np.random.default_rng([self.seed, epoch, pos]).random(self.batch_size)[self.rank::self.world_size] < 0.5
        return self.indices[chosen], flips

    def batch(self, step: int) -> Batch:
        rows, flips = self._rows(step)
        order = np.argsort(rows)  # read the memmap in file order, then restore the batch order
        x = np.empty((len(rows),) + self.images.shape[1:], dtype=np.uint8)
        x[order] = self.images[rows[order]]
        xt = torch.from_numpy(x)
        if self.flip and flips.any():
            sel = torch.from_numpy(np.flatnonzero(flips))
            xt[sel] = xt[sel].flip(-1)
        return Batch(to_float(xt), torch.from_numpy(self.labels[rows]), torch.from_numpy(rows), self.dataset)


def iterate_split(images: np.ndarray, labels: np.ndarray, indices: np.ndarray, batch_size: int,
                  dataset: Optional[str] = None) -> Iterator[Batch]:
    """Every image of a split once, in order, without flips (evaluation)."""
    indices = np.asarray(indices, dtype=np.int64)
    for start in range(0, len(indices), batch_size):
        rows = indices[start:start + batch_size]
        yield Batch(to_float(torch.from_numpy(np.ascontiguousarray(images[rows]))),
                    torch.from_numpy(labels[rows]), torch.from_numpy(rows), dataset)
