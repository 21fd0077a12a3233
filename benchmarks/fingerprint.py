"""What the data's content key costs on a large folder: the first read, a later call, a new process.

The decoded cache, the runs and the judges are keyed by the data's content (``starbench.data.cache.fingerprint``:
every file's sha256). This writes ``--files`` files of ``--bytes`` random bytes (a CelebA-sized folder: 200,000
files of about 8 KB) and times, in one process:

- the plain reference: reading and hashing every file (``_content_key``, what every process paid before the key
  was kept on disk);
- the first call with a cache folder (stat every file, read every file, store the key under the listing);
- a later call on the same index (memoised);
- a new process (the in-process memos cleared): stat every file, read the stored key.

Usage:
  python benchmarks/fingerprint.py --files 200000 --bytes 8000 --out benchmarks/results/fingerprint_cpu.txt
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from starbench.data import cache
from starbench.devices import cpu_label


class Record:
    def __init__(self, path: str) -> None:
        self.path = path


class Listing:
    """The part of a ``DatasetIndex`` the fingerprint reads: the file records, the data folder, the crop."""

    def __init__(self, root: Path, paths: list[Path]) -> None:
        self.root = str(root)
        self.crop = None
        self.records = [Record(str(p)) for p in paths]


def write_files(root: Path, n: int, size: int) -> list[Path]:
    blob = os.urandom(size * 16)
    paths = []
    for i in range(n):
        path = root / "img" / f"{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        offset = (i * 997) % (size * 15)
        path.write_bytes(blob[offset:offset + size])
        paths.append(path)
    return paths


def timed(fn) -> tuple[float, str]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--bytes", type=int, default=8000)
    ap.add_argument("--out", help="also write the lines to this file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = write_files(root / "data", args.files, args.bytes)
        index = Listing(root / "data", paths)
        settings = '{"v": 1}'
        reference, ref_key = timed(lambda: cache._content_key(index, settings))
        first, key = timed(lambda: cache.fingerprint(index, 128, root / "cache"))
        later, again = timed(lambda: cache.fingerprint(index, 128, root / "cache"))
        cache._CONTENT_KEYS.clear()  # as a new process: nothing known in memory
        cache._LISTINGS.clear()
        new_index = Listing(root / "data", paths)
        fresh, stored = timed(lambda: cache.fingerprint(new_index, 128, root / "cache"))
    assert key == again == stored, "the content key changed between calls"
    lines = [f"cpu: {cpu_label()}; {args.files} files of {args.bytes} bytes",
             f"plain reference (read and hash every file): {reference:.2f} s",
             f"first call (stat, read, store the key):      {first:.2f} s ({first / reference:.2f}x the reference)",
             f"later call, same index:                      {later:.4f} s",
             f"new process (stat, read the stored key):     {fresh:.2f} s ({fresh / reference:.3f}x the reference)"]
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
