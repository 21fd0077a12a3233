"""Decoded-image cache: every image decoded, cropped and resized once into a uint8 memmap.

Why: the public StarGAN code decodes every JPEG every epoch with one worker. Here an index is
decoded once into ``<cache>/decoded/<fingerprint>.npy`` (N x 3 x S x S, uint8) and batches are
gathered from it with no decoding. The fingerprint covers each file's bytes and its path inside the
data folder, the preprocessing (crop, size) and the cache format version, so a changed file, a changed
crop or a new size gives a new cache, while the same images elsewhere (a copied or moved data folder,
the synthetic sets written again in another cache folder) give the same key, and the runs and
classifiers keyed by it are found again. The file is written under a temporary name and renamed, so
an interrupted build never leaves a half-written cache behind; every image that cannot be used is
listed (all of them, one line each) before anything is cached, and what was converted on the way
(grey, CMYK, 16-bit, EXIF-rotated images) is recorded beside the array (``<key>.notes.json``).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np

from starbench.data.images import preprocess, read_rgb, summarize_notes
from starbench.data.index import DatasetIndex
from starbench.errors import StarbenchError
from starbench.files import write_json, write_text
from starbench.locks import exclusive
from starbench.progress import progress_bar

CACHE_VERSION = 1


class UnusableImages(StarbenchError):
    """Images listed by a loader that cannot be decoded: ``problems`` holds one line per file."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


def fingerprint(index: DatasetIndex, size: int, cache_root: Optional[Path] = None) -> str:
    """Content key of the decoded array: each file's bytes and path inside the data folder, crop, size, version.

    Reading every file (200,000 files of 8 KB: about 20 s, benchmarks/fingerprint.py) is done once for a given file
    listing (paths, sizes, mtimes, ctimes, inodes): this process keeps the content key, and with ``cache_root`` it
    is kept on disk as well (``decoded/listings/``), so another process, or the next command, stats the files
    instead (about 2 s). An index asks once per process: a protocol asks for its data's fingerprint several times."""
    settings = json.dumps({"v": CACHE_VERSION, "size": size, "crop": index.crop})
    quick = _listing_key(index, settings)
    if quick not in _CONTENT_KEYS:
        stored = Path(cache_root) / "decoded" / "listings" / f"{quick}.txt" if cache_root is not None else None
        known = _read_key(stored)
        _CONTENT_KEYS[quick] = known or _content_key(index, settings)
        if stored is not None and known is None:
            write_text(stored, _CONTENT_KEYS[quick] + "\n")
    return _CONTENT_KEYS[quick]


_CONTENT_KEYS: dict[str, str] = {}  # file listing's key -> content key, this process
_LISTINGS: dict[int, tuple[weakref.ref, str, str]] = {}  # id(index) -> (the index, its settings, its listing key)


def _listing_key(index: DatasetIndex, settings: str) -> str:
    """A hash of every file's path, size, mtime, ctime and inode (one stat a file), once per index object."""
    seen = _LISTINGS.get(id(index))
    if seen is not None and seen[0]() is index and seen[1] == settings:
        return seen[2]
    listing = hashlib.sha256(settings.encode())
    for rec in index.records:
        try:
            st = os.stat(rec.path)
        except FileNotFoundError:
            raise StarbenchError(f"{rec.path}: image listed but missing") from None
        listing.update(f"{rec.path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\n".encode())
    key = id(index)

    def forget(ref: weakref.ref) -> None:  # the index is gone: its entry goes with it (ids are reused)
        if _LISTINGS.get(key, (None,))[0] is ref:
            del _LISTINGS[key]

    _LISTINGS[key] = (weakref.ref(index, forget), settings, listing.hexdigest())
    return _LISTINGS[key][2]


def _content_key(index: DatasetIndex, settings: str) -> str:
    content = hashlib.sha256(settings.encode())
    root = os.path.abspath(index.root)
    for rec in index.records:
        with open(rec.path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        content.update(f"{_relative(rec.path, root)}\0{digest}\n".encode())
    return content.hexdigest()[:24]


def _read_key(path: Optional[Path]) -> Optional[str]:
    """A content key stored for a listing, or None (no file, or not a key: it is computed again)."""
    try:
        text = path.read_text().strip() if path is not None else ""
    except OSError:
        return None
    return text if len(text) == 24 and all(c in "0123456789abcdef" for c in text) else None


def _relative(path: str, root: str) -> str:
    """The path inside the data folder (as a POSIX path), or the whole path for a file listed outside it."""
    rel = os.path.relpath(os.path.abspath(path), root)
    return Path(path if rel.startswith("..") else rel).as_posix()


def decoded_images(index: DatasetIndex, size: int, cache_root: Path, workers: int = 2,
                   show_progress: bool = True) -> np.ndarray:
    """The index's images as a read-only (N, 3, size, size) uint8 memmap, decoding on first use."""
    key = fingerprint(index, size, cache_root)
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


def decode_notes(index: DatasetIndex, size: int, cache_root: Path) -> list[str]:
    """What decoding the index's images converted ('3 images: EXIF orientation applied'); [] when nothing was."""
    path = Path(cache_root) / "decoded" / f"{fingerprint(index, size, cache_root)}.notes.json"
    try:
        return list(json.loads(path.read_text()).get("notes", []))
    except (OSError, ValueError):
        return []


def _cached(path: Path, shape: tuple[int, ...]) -> Optional[np.ndarray]:
    if path.exists():
        arr = np.load(path, mmap_mode="r")
        if arr.shape == shape:
            return arr
    return None


def _decode(index: DatasetIndex, size: int, path: Path, workers: int, show_progress: bool) -> None:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    shape = (len(index.records), 3, size, size)
    need, free = int(np.prod(shape)) + 4096, shutil.disk_usage(path.parent).free
    if need > free:  # a memory map on a full disk ends in SIGBUS, not an error: check first
        raise StarbenchError(f"no space left on {path.parent} while writing the decoded {index.name} cache: it "
                             f"needs {need / 2**20:.1f} MiB, {free / 2**20:.1f} MiB are free")
    try:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)

        def work(i: int, out: np.ndarray = arr) -> tuple[list[str], Optional[str]]:
            try:
                decoded = read_rgb(index.records[i].path)
                out[i] = preprocess(decoded.image, size, index.crop, index.records[i].path)
                return decoded.notes, None
            except StarbenchError as exc:
                return [], str(exc)

        notes: list[str] = []
        bad: list[str] = []
        with progress_bar(f"decoding {index.name} images ({size}px)", total=len(index.records),
                          enabled=show_progress) as advance:
            with ThreadPoolExecutor(max(1, workers)) as pool:
                for found, problem in pool.map(work, range(len(index.records))):
                    notes += found
                    if problem:
                        bad.append(problem)
                    advance(1)
        if bad:
            raise UnusableImages(f"{len(bad)} image(s) of {index.name} in {index.root} cannot be used (nothing was "
                                 f"cached; fix or remove them):\n  " + "\n  ".join(bad), bad)
        arr.flush()
        del arr
        write_json(path.with_name(f"{path.stem}.notes.json"), {"notes": summarize_notes(notes)})
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()

