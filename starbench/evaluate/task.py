"""A translation task: which inputs, which targets for each, the real references and the ground truth.

A protocol is a task scored on sources of translations (``evaluate.core``). The task is a
grid: N input images (dataset rows) x T columns (a target expression, a CelebA edit), with per cell
the target label and whether the cell is asked at all (an edit that ages applies to young faces
only). Per column it names the real images that carry the target (FID and classifier Fréchet
references); per cell the dataset's real photo of the same subject in the target domain where the
data has one (RaFD: same subject, gaze and angle). Images stay in the decoded memmap and are read
when a column is scored, so a paper-scale CelebA task does not hold every image at once.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from starbench.data import LoadedData
from starbench.data.domains import DomainSpec


def uint8_rows(data: LoadedData, rows: np.ndarray) -> torch.Tensor:
    """Decoded images of dataset ``rows`` (in the given order) as a uint8 tensor, read in file order."""
    rows = np.asarray(rows, dtype=np.int64)
    return torch.from_numpy(np.ascontiguousarray(data.images[np.sort(rows)]))[np.argsort(np.argsort(rows))]


def slug(name: str) -> str:
    """A column name as a file-name part: 'hair->blond' -> 'hair-blond', 'H+G' stays."""
    return re.sub(r"-+", "-", re.sub(r"[^A-Za-z0-9_+.-]", "-", name)).strip("-")


@dataclass
class Task:
    """N inputs x T columns, with targets, references and ground truth (see the module docstring)."""

    protocol: str
    data: LoadedData
    domains: DomainSpec  # the label space of ``targets`` (RaFD's 8 expressions, CelebA's attributes)
    input_rows: np.ndarray  # (N,) dataset rows of the inputs
    columns: list[str]  # (T,) what each column asks for
    targets: np.ndarray  # (N, T, D) float32 target labels
    valid: np.ndarray  # (N, T) bool: the cell is part of the task
    reference_rows: list[np.ndarray]  # per column: dataset rows of real images carrying the target
    truth_rows: Optional[np.ndarray] = None  # (N, T) dataset row of the real photo of the target, -1: none
    source_labels: Optional[np.ndarray] = None  # (N, D) the inputs' labels in ``domains`` (absent: the dataset's)

    # ------------------------------------------------------------------ shape
    @property
    def n(self) -> int:
        return len(self.input_rows)

    @property
    def size(self) -> int:
        return int(self.data.images.shape[-1])

    @cached_property
    def inputs(self) -> torch.Tensor:
        """(N, 3, S, S) uint8: the inputs exactly as the protocol feeds them to a model."""
        return uint8_rows(self.data, self.input_rows)

    @property
    def sources(self) -> np.ndarray:
        """(N, D) the inputs' own labels."""
        return self.source_labels if self.source_labels is not None else self.data.labels[self.input_rows]

    def rows_of(self, t: int) -> np.ndarray:
        """Input positions asked in column ``t``."""
        return np.flatnonzero(self.valid[:, t])

    def reference(self, t: int) -> torch.Tensor:
        return uint8_rows(self.data, self.reference_rows[t])

    def truth(self, t: int) -> tuple[np.ndarray, Optional[torch.Tensor]]:
        """(mask over ``rows_of(t)`` that have a real photo, those photos) for column ``t``."""
        rows = self.rows_of(t)
        if self.truth_rows is None:
            return np.zeros(len(rows), bool), None
        photo_rows = self.truth_rows[rows, t]
        have = photo_rows >= 0
        return have, (uint8_rows(self.data, photo_rows[have]) if have.any() else None)

    @property
    def n_paired(self) -> int:
        return 0 if self.truth_rows is None else int(((self.truth_rows >= 0) & self.valid).sum())

    # ------------------------------------------------------------------ names (export, folders of translations)
    def source_file(self, i: int) -> str:
        """The dataset file input ``i`` came from, relative to the dataset root."""
        path = Path(self.data.index.records[int(self.input_rows[i])].path)
        try:
            return path.relative_to(self.data.index.root).as_posix()
        except ValueError:
            return path.as_posix()

    @cached_property
    def _stems(self) -> list[str]:
        stems = [Path(self.source_file(i)).stem for i in range(self.n)]
        if len(set(stems)) != len(stems):  # the same file name in two folders: number them
            stems = [f"{i:05d}_{s}" for i, s in enumerate(stems)]
        return stems

    def input_name(self, i: int) -> str:
        return f"{self._stems[i]}.png"

    def output_name(self, i: int, t: int) -> str:
        """The file name the translation of input ``i`` for column ``t`` must have in a translations folder."""
        return f"{self._stems[i]}__{slug(self.columns[t])}.png"

    def label_names(self, label: np.ndarray) -> str:
        """'happy' (one-hot) or 'Blond_Hair+Male' (multi-label: the attributes that are on)."""
        on = [n for n, v in zip(self.domains.names, label) if v > 0.5]
        return "+".join(on) if on else "(none)"

    def cells(self) -> list[tuple[int, int]]:
        """Every (input, column) of the task, row by row."""
        return [(int(i), int(t)) for i, t in zip(*np.nonzero(self.valid))]

    def fingerprint(self) -> str:
        """Changes whenever an input, a target or the image size changes (exported tasks, caches)."""
        h = hashlib.sha256()
        h.update(f"{self.protocol}|{self.size}|{'|'.join(self.columns)}".encode())
        h.update(np.ascontiguousarray(self.targets).tobytes())
        h.update(np.ascontiguousarray(self.valid).tobytes())
        for i in range(self.n):
            h.update(self.source_file(i).encode() + b"\0")
        return h.hexdigest()[:16]
