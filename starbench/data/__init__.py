"""Data layer: loaders for real layouts, the synthetic face set, the decoded cache and batches.

``load_index(cfg)`` is the one entry point: it finds the dataset folder (``data.root``, or the
synthetic set generated once into the cache) and runs the registered loader.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from starbench.config import cache_dir
from starbench.data import synth
from starbench.data.cache import UnusableImages, decode_notes, decoded_images
from starbench.data.domains import DomainSpec
from starbench.data.index import DatasetIndex, ImageRecord, Problem
from starbench.errors import StarbenchError
from starbench.locks import exclusive
from starbench.progress import progress_bar
from starbench.registry import DATASETS

SYNTH_VERSION = 2

__all__ = ["DatasetIndex", "DomainSpec", "ImageRecord", "LoadedData", "Problem", "dataset_root", "load_data",
           "load_index", "load_subset", "synthetic_root"]


def synthetic_root(name: str, data_cfg: Any, cache: Path, show_progress: bool = True) -> Path:
    """The synthetic set for ``name`` (rafd or celeba) in the cache, generated on first use."""
    if name == "rafd":
        params = {"subjects": data_cfg.synth_subjects, "size": data_cfg.synth_size}
        total = data_cfg.synth_subjects * 72
    elif name == "celeba":
        params = {"count": data_cfg.synth_celeba_images}
        total = data_cfg.synth_celeba_images
    else:
        raise StarbenchError(f"data={name} has no built-in synthetic set: give data.root=DIR")
    key = hashlib.sha256(json.dumps({"v": SYNTH_VERSION, "name": name, **params},
                                    sort_keys=True).encode()).hexdigest()[:12]
    root = cache / "synth" / f"{name}-{key}"
    if root.exists():
        return root
    with exclusive(root.with_name(f".{root.name}.lock"), f"the synthetic {name} set being written"):
        if root.exists():  # another process wrote it while this one waited
            return root
        tmp = root.with_name(f".{root.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            with progress_bar(f"writing synthetic {name} set (once)", total=total, enabled=show_progress) as advance:
                tick = lambda done, total: advance(1)  # noqa: E731
                if name == "rafd":
                    synth.write_rafd(tmp, subjects=params["subjects"], size=params["size"], progress=tick)
                else:
                    synth.write_celeba(tmp, count=params["count"], progress=tick)
            os.replace(tmp, root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def dataset_root(cfg: Any, show_progress: bool = True) -> tuple[Path, bool]:
    """(folder, is_synthetic) for the configured dataset."""
    if cfg.data.root:
        return Path(cfg.data.root).expanduser(), False
    return synthetic_root(cfg.data.name, cfg.data, cache_dir(cfg), show_progress), True


def describe(cfg: Any) -> str:
    """The data as tables and provenance name it: the built-in synthetic set by what it is, a user's folder by
    the root as the user gave it (never a path of the machine's own cache)."""
    d = cfg.data
    if d.root:
        return str(d.root)
    if d.name == "rafd":
        return (f"synthetic RaFD (starbench synth v{SYNTH_VERSION}: {d.synth_subjects} subjects x 72 images, "
                f"{d.synth_size} px, seed 0)")
    return f"synthetic CelebA (starbench synth v{SYNTH_VERSION}: {d.synth_celeba_images} images, seed 0)"


def load_index(cfg: Any, strict: bool = True, show_progress: bool = True) -> DatasetIndex:
    """Run the configured loader; ``strict`` raises on any unusable file (``data info`` lists them)."""
    loader = DATASETS.get(cfg.data.name)
    root, _ = dataset_root(cfg, show_progress)
    index = loader(root, cfg.data)
    index.description = describe(cfg)
    if strict:
        index.check()
    return index


@dataclass
class LoadedData:
    """An index with its decoded images and labels, ready for batches."""

    index: DatasetIndex
    images: np.ndarray  # (N, 3, S, S) uint8 memmap
    labels: np.ndarray  # (N, D) float32

    @property
    def domains(self) -> DomainSpec:
        return self.index.domains

    def split(self, name: str) -> np.ndarray:
        return self.index.indices(name)


def load_data(cfg: Any, show_progress: bool = True) -> LoadedData:
    """Index (strict), subset for the scale, and decode once into the cache."""
    index = load_subset(cfg, show_progress)
    images = decoded_images(index, cfg.data.image_size, cache_dir(cfg), cfg.data.workers, show_progress)
    index.notes += [f"decoding: {note}" for note in decode_notes(index, cfg.data.image_size, cache_dir(cfg))]
    return LoadedData(index, images, index.labels())


def decode_check(cfg: Any, index: DatasetIndex, show_progress: bool = True) -> tuple[list[str], list[str]]:
    """Decode every image the index lists into the cache at ``data.image_size``, as a run would (so a run finds it
    decoded): the files that cannot be decoded (one line each; nothing is cached then), and what decoding converted.
    A file name can be right and its bytes not an image: only decoding tells."""
    if not index.records:
        return [], []
    try:
        decoded_images(index, cfg.data.image_size, cache_dir(cfg), cfg.data.workers, show_progress)
    except UnusableImages as exc:
        return exc.problems, []
    return [], decode_notes(index, cfg.data.image_size, cache_dir(cfg))


def load_subset(cfg: Any, show_progress: bool = True) -> DatasetIndex:
    """The strict index cut to ``data.max_images`` per split; the cut is seeded by ``data.split_seed``, not by the
    training ``seed``, so that every training seed sees the same data."""
    return load_index(cfg, strict=True, show_progress=show_progress).subset(cfg.data.max_images, cfg.data.split_seed)
