"""Files on disk: written whole or not at all, and read without running anything they carry.

Writing: every file starbench writes (checkpoints, caches, tables, JSON, images) goes to a temporary name in
the target's folder, is flushed and fsynced, and is then renamed over the target (``os.replace`` is atomic on
POSIX). An interrupt, a ``kill -9`` or a full disk therefore leaves either the old file or the new one, never
half of one; a write that fails removes its temporary file, leaves the previous file as it was, and a full disk
is reported in one line: "no space left on <folder> while writing <file>".

Reading: every ``torch.load`` goes through ``load_torch`` with ``weights_only=True``, so a file can hold only
tensors, numbers, strings and plain containers. The one allow-listed extra is numpy's array type
(``SAFE_NUMPY``): checkpoints written by starbench 0.1.0 carry numpy's RNG state as an array. A file that asks
for anything else (a class, a function such as ``os.system``) is refused with a ``StarbenchError`` naming the
file and what it asked for, and nothing in it runs.
"""
from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any, BinaryIO, Callable, Optional

import numpy as np
import torch

from starbench.errors import StarbenchError

# numpy's ndarray as pickled by numpy (reconstructor, array type, dtypes): builds arrays and nothing else. Files from
# numpy 1 name the reconstructor numpy.core.multiarray, numpy 2's numpy._core.multiarray.
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]
SAFE_NUMPY: list[Any] = [_RECONSTRUCT, (_RECONSTRUCT, "numpy.core.multiarray._reconstruct"), np.ndarray, np.dtype,
                         type(np.dtype(np.uint32)), type(np.dtype(np.float64)), type(np.dtype(np.int64))]
SAFE_NAMES = {"numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray",
              "numpy.dtype"}
FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def no_space(path: Path, exc: BaseException) -> Optional[StarbenchError]:
    """The one-line error for a write into ``path`` that failed because its disk is full (None: another failure)."""
    full = isinstance(exc, OSError) and exc.errno in FULL_ERRNOS
    if not full and isinstance(exc, OSError):  # numpy reports a short write without an errno
        try:
            full = shutil.disk_usage(path.parent).free < 64 * 1024
        except OSError:
            full = False
    if not full:
        return None
    return StarbenchError(f"no space left on {path.parent} while writing {path.name}; the previous {path.name}, if "
                          f"any, is unchanged: free some space and run the command again")


class UnsafeFile(StarbenchError):
    """A file that asks for code or classes to be loaded: refused, nothing in it run."""


def _keep_previous(path: Path, previous: Path) -> None:
    """``previous`` becomes the current ``path`` while ``path`` itself stays in place (a hard link renamed over
    ``previous``), so there is no moment without ``path``; a file system without hard links gets a rename."""
    if previous.exists() and os.path.samefile(path, previous):
        return  # already the same file (rename would do nothing between two links of one file)
    link = previous.with_name(f".{previous.name}.{os.getpid()}.tmp")
    try:
        os.link(path, link)
    except OSError:
        os.replace(path, previous)
        return
    os.replace(link, previous)


def atomic_write(path: Path | str, write: Callable[[BinaryIO], None], previous: Optional[Path] = None) -> None:
    """``write(f)`` into a temporary file beside ``path``, then rename it to ``path`` (the old file becomes
    ``previous`` first, when given). Nothing is left behind when ``write`` or the disk fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if previous is not None and path.exists():
            _keep_previous(path, Path(previous))
        os.replace(tmp, path)
    except OSError as exc:
        full = no_space(path, exc)
        if full is not None:
            raise full from exc
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (temporary files of dead processes may be removed)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def pid_of(path: Path) -> int:
    """The process id in a temporary name: '.checkpoint.pt.123.tmp' or '.results.tmp-123' -> 123 (-1: none)."""
    for part in reversed(path.name.replace("-", ".").split(".")):
        if part.isdigit():
            return int(part)
    return -1


def remove_stale_temporaries(folder: Path | str) -> list[Path]:
    """Delete the temporary files (``.NAME.PID.tmp``) that hard-killed processes left in ``folder``."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        if tmp.is_file() and not pid_alive(pid_of(tmp)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def write_bytes(path: Path | str, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def write_text(path: Path | str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path | str, obj: Any) -> None:
    """``obj`` as indented JSON, written atomically (readers never see half a file)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def save_torch(path: Path | str, obj: Any, previous: Optional[Path] = None) -> None:
    """``torch.save`` atomically; ``obj`` must hold only what ``load_torch`` reads back (tensors, plain types)."""
    atomic_write(path, lambda f: torch.save(obj, f), previous)


def _unsafe_globals(path: Path) -> list[str]:
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # not a zip file, or unreadable: the caller's message stands
        return []


def load_torch(path: Path | str, what: str = "file") -> Any:
    """A torch file read with ``weights_only=True`` (plus numpy arrays); anything else is refused, unexecuted.

    ``what`` names the file's role in messages ("checkpoint", "classifier cache", ...).
    """
    path = Path(path)
    if not path.is_file():
        raise StarbenchError(f"{what} {path} does not exist")
    try:
        with torch.serialization.safe_globals(SAFE_NUMPY):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        asked = [g for g in _unsafe_globals(path) if g not in SAFE_NAMES and not g.startswith("numpy.dtypes.")]
        if not asked:  # not a torch file at all, or an old-style one that is not data only
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            last = next((line for line in reversed(lines) if "documentation" not in line), "unpickling failed")
            raise StarbenchError(f"{what} {path} cannot be read as a torch file of data only ({last[:160]})") from None
        raise UnsafeFile(f"{what} {path} was refused: it asks for {', '.join(asked)}, which starbench does not load "
                             f"(files are read as data only: tensors, numbers, strings, lists and dicts; nothing in "
                             f"them is run)") from None
    except Exception as exc:  # truncated, not a torch file, a disk error
        raise StarbenchError(f"{what} {path} cannot be read ({type(exc).__name__}: {str(exc)[:200]})") from exc
