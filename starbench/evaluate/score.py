"""The metrics every source of translations goes through, the same way for every source.

Per task column the source's translations are judged by the protocol's classifier (``Judge``:
per cell outcomes such as "the target expression was recognised"), compared as a set with the
column's real references on each feature extractor (``metrics.distances``: FD, KID and, on the
classifier's features, precision/recall; the classifier always, Inception when its weights are
available, the user's ``metrics.extractor`` when given), and image by image with the ground-truth
photo where the data has one (L1, PSNR, SSIM) and with the input (L1). Columns are translated and
scored one at a time, so memory stays at one column of one method.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from starbench.evaluate.sources import Source
from starbench.evaluate.task import Task
from starbench.metrics import paired
from starbench.metrics.distances import CLASSIFIER, INCEPTION, Distances, Extractor, Settings, mean_kid, set_distances

# (translations uint8 (M, 3, S, S), source labels (M, D), target labels (M, D), column) -> outcome name -> (M,) bool
Judge = Callable[[torch.Tensor, np.ndarray, np.ndarray, int], dict[str, np.ndarray]]
PAIRED = {"l1": paired.l1, "psnr": paired.psnr, "ssim": paired.ssim}


@dataclass
class Metrics:
    """What a protocol run scores with: its judge and who it is, the feature extractors of the distribution metrics (the
    classifier's first), how KID and precision/recall are computed, and the feature cache."""

    judge: Judge
    judge_key: str  # who the judge is (its classifiers' cache keys): cached scores are kept per judge
    extractors: list[Extractor]
    settings: Settings
    fid_root: Path
    fid_batch: int = 64



@dataclass
class Scores:
    """One source's scores on a task: per cell outcomes and distances, per column set distances."""

    name: str
    outcomes: dict[str, np.ndarray]  # name -> (N, T) bool; False outside the task
    distances: dict[str, list[Optional[Distances]]]  # extractor label -> per column (None: not computed)
    truth: dict[str, torch.Tensor]  # l1 / psnr / ssim -> (N, T) float64 against the real photo; NaN: none
    l1_input: torch.Tensor  # (N, T) float64 L1 to the input; NaN outside the task
    grid: np.ndarray  # (G, T, 3, S, S) uint8, the first G inputs' translations (the input where not asked)
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    diverged: Optional[dict[str, Any]] = None  # training stopped at a non-finite loss: no metrics
    seed: Optional[int] = None  # the training seed (None: a source not trained here)
    curve: list[dict[str, Any]] = field(default_factory=list)  # learning curve: per kept step, the main metrics

    @property
    def columns(self) -> int:
        return int(self.l1_input.shape[1])

    def dist(self, label: str, metric: str) -> list[Optional[float]]:
        """Per column, ``metric`` ("fd", "kid", "kid_sd", "precision", "recall") on extractor ``label``'s features;
        None where it is missing (no such extractor, too few images, a method that diverged)."""
        values = self.distances.get(label) or [None] * self.columns
        return [getattr(d, metric) if d is not None else None for d in values]

    def kid(self, label: str) -> tuple[Optional[float], Optional[float]]:
        """KID on ``label``'s features averaged over the columns, and the sd of that average."""
        return mean_kid(self.distances.get(label) or [])

    @property
    def frechet(self) -> list[Optional[float]]:
        """Per column: the Fréchet distance on the classifier's features."""
        return self.dist(CLASSIFIER, "fd")

    @property
    def fid(self) -> list[Optional[float]]:
        """Per column: FID (None without Inception weights)."""
        return self.dist(INCEPTION, "fd")

    @property
    def status(self) -> Optional[str]:
        """'diverged at step N' for a method without metrics, else None."""
        return f"diverged at step {self.diverged['step']}" if self.diverged else None

    @classmethod
    def failed(cls, name: str, task: Task, info: dict[str, Any], diverged: dict[str, Any],
               seed: Optional[int] = None) -> "Scores":
        """A row kept for a method whose training diverged: every metric missing."""
        cols = len(task.columns)
        nan = torch.full((task.n, cols), float("nan"), dtype=torch.float64)
        return cls(name, {}, {}, {k: nan for k in PAIRED}, nan,
                   task.inputs[:0].numpy()[:, None].repeat(cols, axis=1), {**info, "diverged": diverged},
                   [f"{name} diverged at step {diverged['step']} (loss {diverged['loss']} = {diverged['value']}); its "
                    f"row is kept with no metrics."], diverged, seed)

    def truth_mean(self, metric: str, mask: np.ndarray) -> float:
        """Mean of a ground-truth distance over the cells of ``mask`` that have a photo (NaN if none)."""
        values = self.truth[metric][torch.from_numpy(mask)]
        values = values[~torch.isnan(values)]
        return float(values.mean()) if values.numel() else float("nan")


def score(task: Task, source: Source, metrics: Metrics, grid_rows: int,
          on_ready: Optional[Callable[[Source], None]] = None) -> Scores:
    """Prepare ``source`` (train, load or check it), translate and score every column of ``task``."""
    n, cols = task.n, len(task.columns)
    outcomes: dict[str, np.ndarray] = {}
    truth = {k: torch.full((n, cols), float("nan"), dtype=torch.float64) for k in PAIRED}
    l1_input = torch.full((n, cols), float("nan"), dtype=torch.float64)
    distances: dict[str, list[Optional[Distances]]] = {e.label: [] for e in metrics.extractors}
    grid_rows = min(grid_rows, n)
    grid = task.inputs[:grid_rows].numpy()[:, None].repeat(cols, axis=1)
    source.prepare(task)
    try:
        if on_ready is not None:
            on_ready(source)
        for t in range(cols):
            rows = task.rows_of(t)
            fake = source.column(task, t)
            for name, ok in metrics.judge(fake, task.sources[rows], task.targets[rows, t], t).items():
                outcomes.setdefault(name, np.zeros((n, cols), bool))[rows, t] = ok
            real = task.reference(t)
            for e in metrics.extractors:
                distances[e.label].append(set_distances(fake, real, e, metrics.settings, metrics.fid_root,
                                                        metrics.fid_batch))
            have, photos = task.truth(t)
            if photos is not None:
                gen = fake[torch.from_numpy(have)]
                for k, f in PAIRED.items():
                    truth[k][rows[have], t] = f(gen, photos)
            l1_input[rows, t] = paired.l1(fake, task.inputs[rows])
            shown = rows < grid_rows
            grid[rows[shown], t] = fake[torch.from_numpy(shown)].numpy()
    finally:
        source.release()
    return Scores(source.name, outcomes, distances, truth, l1_input, grid, dict(source.info), list(source.notes),
                  seed=source.seed)
