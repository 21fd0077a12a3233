"""What a loader found: image records with labels, split and metadata, and files it could not use."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from starbench.data.domains import DomainSpec
from starbench.errors import StarbenchError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class ImageRecord:
    """One image: where it is, its label vector (in the index's DomainSpec), split and metadata.

    ``meta`` keeps what the file name or list says about the photo (RaFD: subject, ethnicity,
    gender, expression, gaze, angle), needed later to find paired ground truth.
    """

    path: str
    label: tuple[float, ...]
    split: str  # train | val | test
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Problem:
    """A file (and line) the loader could not use, and why."""

    path: str
    reason: str
    line: Optional[int] = None

    def __str__(self) -> str:
        where = f"{self.path}, line {self.line}" if self.line is not None else self.path
        return f"{where}: {self.reason}"


@dataclass
class DatasetIndex:
    """Everything a loader found in one dataset folder."""

    name: str
    root: Path
    domains: DomainSpec
    records: list[ImageRecord]
    layout: str
    problems: list[Problem] = field(default_factory=list)
    crop: Optional[tuple[int, int, int, int]] = None  # None: centre square of the shorter side
    notes: list[str] = field(default_factory=list)
    description: str = ""  # what the data is, for tables and provenance: never a path of the machine's own cache

    def check(self) -> "DatasetIndex":
        """Raise on the first problems (strict use: training, protocols)."""
        if self.problems:
            shown = "\n  ".join(str(p) for p in self.problems[:5])
            n = len(self.problems)
            more = f"\n  ... and {n - 5} more (see `starbench data info`)" if n > 5 else ""
            raise StarbenchError(f"{self.name} data in {self.root}: {n} unusable file(s):\n  {shown}{more}")
        if not self.records:
            raise StarbenchError(f"{self.name} data in {self.root}: no usable images found")
        return self

    def indices(self, split: str) -> np.ndarray:
        return np.array([i for i, r in enumerate(self.records) if r.split == split], dtype=np.int64)

    def labels(self) -> np.ndarray:
        return np.asarray([r.label for r in self.records], dtype=np.float32).reshape(len(self.records), -1)

    def splits(self) -> list[str]:
        return sorted({r.split for r in self.records}, key=["train", "val", "test"].index)

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per domain and split (a multi-label image counts once per active attribute)."""
        out: dict[str, dict[str, int]] = {}
        for r in self.records:
            row = out.setdefault(r.split, {n: 0 for n in self.domains.names})
            for name, v in zip(self.domains.names, r.label):
                if v > 0.5:
                    row[name] += 1
        return out

    def subset(self, max_per_split: Optional[int], seed: int) -> "DatasetIndex":
        """At most ``max_per_split`` images per split, chosen by seed (smoke-scale runs)."""
        if not max_per_split:
            return self
        rng = np.random.default_rng(seed)
        keep: list[int] = []
        for split in self.splits():
            idx = self.indices(split)
            if len(idx) > max_per_split:
                idx = np.sort(rng.choice(idx, max_per_split, replace=False))
            keep.extend(idx.tolist())
        records = [self.records[i] for i in sorted(keep)]
        return DatasetIndex(self.name, self.root, self.domains, records, self.layout, list(self.problems), self.crop,
                            self.notes + [f"subset: at most {max_per_split} images per split"], self.description)


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def require_dir(path: Path, what: str) -> Path:
    if not path.exists():
        raise StarbenchError(f"{what} folder {path} does not exist")
    if not path.is_dir():
        raise StarbenchError(f"{what} path {path} is not a folder")
    return path
