"""Decoded-image cache: every image decoded, cropped and resized once into a uint8 memmap.

Why: the public StarGAN code decodes every JPEG every epoch with one worker. Here an index is
decoded once into ``<cache>/decoded/<fingerprint>.npy`` (N x 3 x S x S, uint8) and batches are
gathered from it with no decoding. The fingerprint covers the file list, each file's size and
mtime, the preprocessing (crop, size) and the cache format version, so a changed file, a changed
crop or a new size gives a new cache. The file is written under a temporary name and renamed, so an
interrupted build never leaves a half-written cache behind.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np

from starbench.data.images import load_image
from starbench.data.index import DatasetIndex
from starbench.errors import StarbenchError
from starbench.locks import exclusive
from starbench.progress import progress_bar

CACHE_VERSION = 1


def fingerprint(index: DatasetIndex, size: int) -> str:
    """Content key of the decoded array: files (path, size, mtime), crop, size, format version."""
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, "size": size, "crop": index.crop}).encode())
    for rec in index.records:
        try:
            st = os.stat(rec.path)
        except FileNotFoundError:
            raise StarbenchError(f"{rec.path}: image listed but missing") from None
        h.update(f"{rec.path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def decoded_images(index: DatasetIndex, size: int, cache_root: Path, workers: int = 2,
                   show_progress: bool = True) -> np.ndarray:
    """The index's images as a read-only (N, 3, size, size) uint8 memmap, decoding on first use."""
    key = fingerprint(index, size)
    folder = Path(cache_root) / "decoded"
    path = folder / f"{key}.npy"
    shape = (len(index.records), 3, size, size)
    arr = _cached(path, shape)
    if arr is not None:
        return arr
    folder.mkdir(parents=True, exist_ok=True)
    with exclusive(folder / f".{key}.lock", f"the decoded {index.name} cache being written"):
        if _cached(path, shape) is None:  # else another process decoded it while this one waited
            _decode(index, size, path, workers, show_progress)
    return np.load(path, mmap_mode="r")


def _cached(path: Path, shape: tuple[int, ...]) -> Optional[np.ndarray]:
    if path.exists():
        arr = np.load(path, mmap_mode="r")
        if arr.shape == shape:
            return arr
    return None


def _decode(index: DatasetIndex, size: int, path: Path, workers: int, show_progress: bool) -> None:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    try:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(index.records), 3, size, size))

        def work(i: int, out: np.ndarray = arr) -> int:
            out[i] = load_image(index.records[i].path, size, index.crop)
            return i

        with progress_bar(f"decoding {index.name} images ({size}px)", total=len(index.records),
                          enabled=show_progress) as advance:
            with ThreadPoolExecutor(max(1, workers)) as pool:
                for _ in pool.map(work, range(len(index.records))):
                    advance(1)
        arr.flush()
        del arr
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()

