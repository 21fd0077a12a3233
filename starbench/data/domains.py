"""Domain labels: the one place where label vectors are built and sliced.

A ``DomainSpec`` says what a label vector means. ``onehot`` labels (RaFD expressions, folder
domains) pick exactly one name; ``multilabel`` labels (CelebA attributes) are independent 0/1
flags. For joint training (the paper's mask vector) the unified label is the concatenation of each dataset's
part followed by a one-hot mask vector naming the dataset the sample came from:
``[celeba(5), rafd(8), mask(2)]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch

from starbench.errors import StarbenchError

KINDS = ("onehot", "multilabel")


@dataclass(frozen=True)
class DomainSpec:
    """Names and kind of a label vector; ``parts`` is set for a joint (mask-vector) spec."""

    names: tuple[str, ...]
    kind: str
    parts: tuple["DomainSpec", ...] = field(default=())
    dataset_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.kind not in KINDS + ("joint",):
            raise StarbenchError(f"domain kind '{self.kind}': expected one of {', '.join(KINDS)}")
        if not self.names:
            raise StarbenchError("a DomainSpec needs at least one domain name")

    # ----------------------------------------------------------------- construction
    @classmethod
    def onehot(cls, names: Sequence[str]) -> "DomainSpec":
        return cls(tuple(names), "onehot")

    @classmethod
    def multilabel(cls, names: Sequence[str]) -> "DomainSpec":
        return cls(tuple(names), "multilabel")

    @classmethod
    def joint(cls, parts: dict[str, "DomainSpec"]) -> "DomainSpec":
        """Unified spec for several datasets: their labels side by side, then the mask vector."""
        names: list[str] = []
        for part in parts.values():
            names.extend(part.names)
        names.extend(f"mask:{d}" for d in parts)
        return cls(tuple(names), "joint", tuple(parts.values()), tuple(parts))

    # ----------------------------------------------------------------- sizes and slices
    @property
    def is_joint(self) -> bool:
        return self.kind == "joint"

    @property
    def label_dim(self) -> int:
        """Length of the label vector fed to the generator (mask included when joint)."""
        return len(self.names)

    @property
    def class_dim(self) -> int:
        """Number of classifier outputs: the label without the mask vector."""
        return sum(len(p.names) for p in self.parts) if self.is_joint else len(self.names)

    def slice_of(self, dataset: str) -> slice:
        """Where ``dataset``'s own labels sit in a joint label (and in the classifier output)."""
        if not self.is_joint:
            raise StarbenchError("slice_of() is only defined for a joint DomainSpec")
        start = 0
        for name, part in zip(self.dataset_names, self.parts):
            if name == dataset:
                return slice(start, start + len(part.names))
            start += len(part.names)
        raise StarbenchError(f"dataset '{dataset}' is not part of this joint spec ({', '.join(self.dataset_names)})")

    def part(self, dataset: str) -> "DomainSpec":
        return self.parts[self.dataset_names.index(dataset)]

    def mask_slice(self) -> slice:
        return slice(self.class_dim, self.label_dim)

    # ----------------------------------------------------------------- labels
    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise StarbenchError(f"unknown domain '{name}'; valid: {', '.join(self.names)}") from None

    def label(self, active: Sequence[str] | str) -> np.ndarray:
        """A float32 label vector with the named domains set (one name for ``onehot``)."""
        active = [active] if isinstance(active, str) else list(active)
        if self.kind == "onehot" and len(active) != 1:
            raise StarbenchError(f"a one-hot label needs exactly one domain, got {active}")
        vec = np.zeros(self.label_dim, dtype=np.float32)
        for name in active:
            vec[self.index(name)] = 1.0
        return vec

    def embed(self, dataset: str, labels: np.ndarray) -> np.ndarray:
        """Place a dataset's own labels (N x its dims) into joint labels with the mask set."""
        labels = np.asarray(labels, dtype=np.float32)
        part = self.slice_of(dataset)
        if labels.ndim != 2 or labels.shape[1] != part.stop - part.start:
            raise StarbenchError(
                f"labels for '{dataset}' have shape {labels.shape}; expected (N, {part.stop - part.start})")
        out = np.zeros((labels.shape[0], self.label_dim), dtype=np.float32)
        out[:, part] = labels
        out[:, self.class_dim + self.dataset_names.index(dataset)] = 1.0
        return out

    def select(self, labels: np.ndarray, expr: str) -> np.ndarray:
        """Boolean mask of the rows in domain ``expr``.

        One-hot: ``expr`` is a domain name. Multi-label: an attribute name means the attribute is
        set, ``-Name`` that it is not (``-Male`` is female, ``-Young`` is aged).
        """
        labels = np.asarray(labels)
        negate = expr.startswith("-")
        name = expr[1:] if negate else expr
        if self.kind == "onehot":
            if negate:
                raise StarbenchError(f"domain '{expr}': negation is only for multi-label attributes")
            return labels.argmax(1) == self.index(name)
        on = labels[:, self.index(name)] > 0.5
        return ~on if negate else on

    def describe(self, labels: Optional[np.ndarray] = None) -> str:
        """Human-readable layout, e.g. for ``starbench data info``."""
        if self.is_joint:
            pieces = [f"[{s.start}:{s.stop}] {d} ({self.part(d).kind}: {', '.join(self.part(d).names)})"
                      for d in self.dataset_names for s in [self.slice_of(d)]]
            m = self.mask_slice()
            pieces.append(f"[{m.start}:{m.stop}] mask vector ({', '.join(self.dataset_names)})")
            return "; ".join(pieces)
        return f"{self.kind}, {self.label_dim} dims: " + ", ".join(f"{i}={n}" for i, n in enumerate(self.names))


def every_target(domains: DomainSpec, labels: torch.Tensor, dataset: str | None = None) -> list[tuple[str,
                                                                                                      torch.Tensor]]:
    """(name, target labels) for every domain a translation can aim at.

    One-hot: each domain in turn. Multi-label: each attribute flipped, with the hair colours
    treated as one-of-three (setting one clears the others, as in the paper's CelebA
    experiments). Joint: the dataset's own part, with the mask vector kept.
    """
    if domains.is_joint:
        part = domains.slice_of(dataset)  # type: ignore[arg-type]
        inner = every_target(domains.part(dataset), labels[:, part])  # type: ignore[arg-type]
        out = []
        for name, t in inner:
            full = labels.clone()
            full[:, part] = t
            out.append((name, full))
        return out
    out = []
    for i, name in enumerate(domains.names):
        t = labels.clone()
        if domains.kind == "onehot":
            t.zero_()
            t[:, i] = 1
        elif name.endswith("_Hair"):
            hair = [j for j, n in enumerate(domains.names) if n.endswith("_Hair")]
            t[:, hair] = 0
            t[:, i] = 1
        else:
            t[:, i] = 1 - t[:, i]
        out.append((name, t))
    return out
