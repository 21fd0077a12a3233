"""Writing results: tables (csv, md, tex), figures and provenance, never half-written.

A protocol writes into a fresh temporary folder beside ``results/<protocol>/``; only when every file
is written does ``results_folder`` swap it into place, so a failed or interrupted run leaves the
previous results untouched. The swap is one atomic exchange of the two folders where the system
has it (Linux ``renameat2``), so ``results/<protocol>/`` never goes missing, not even under ``kill -9``;
elsewhere it is two renames, and a hard kill between them is repaired by the next run (``recover``),
which puts the previous results back.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from starbench.errors import StarbenchError
from starbench.files import no_space, pid_alive, pid_of, write_json
from starbench.locks import exclusive


@dataclass
class ProtocolResult:
    """What a protocol returns: where it wrote, its tables, and how long it took."""

    name: str
    folder: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    seconds: float = 0.0


PACKAGES = ("torch", "torchvision", "torch-fidelity", "numpy", "scipy", "pandas", "pillow", "omegaconf", "starbench")


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing folders in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system has no such call (the caller then renames twice)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        rename = libc.renameat2
    except (OSError, AttributeError, TypeError):
        return False
    at_fdcwd, exchange = -100, 2
    if rename(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), exchange) == 0:
        return True
    return False


def recover(final: Path) -> None:
    """Repair what a hard-killed ``results_folder`` left: the previous results moved aside (``.NAME.old-PID``) go
    back when the new ones never arrived, and the temporary folders of dead processes are removed."""
    for old in sorted(final.parent.glob(f".{final.name}.old-*")):
        if pid_alive(pid_of(old)) and pid_of(old) != os.getpid():
            continue
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, final)
    for tmp in final.parent.glob(f".{final.name}.tmp-*"):
        if not pid_alive(pid_of(tmp)) or pid_of(tmp) == os.getpid():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def results_folder(results_dir: Path | str, name: str) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces ``results_dir/name``."""
    final = Path(results_dir) / name
    final.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(final.parent / f".{name}.lock", f"the results folder {final}"):
        recover(final)
    tmp = final.with_name(f".{name}.tmp-{os.getpid()}")
    tmp.mkdir()
    try:
        yield tmp
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        full = no_space(final, exc)
        if full is not None:
            raise StarbenchError(f"no space left on {final.parent} while writing the results of {name}; the "
                                 f"previous {final} is unchanged: free some space and run the command again") from exc
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    with exclusive(final.parent / f".{name}.lock", f"the results folder {final}"):
        if final.exists() and _exchange(tmp, final):
            shutil.rmtree(tmp)  # now the previous results
            return
        old = final.with_name(f".{name}.old-{os.getpid()}")
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        if old.exists():
            shutil.rmtree(old)


RECORD_FILE = "record.json"
ARRAYS_FILE = "record_arrays.npz"
KEEP_ON_RERENDER = ("provenance.json", RECORD_FILE, ARRAYS_FILE)


def save_record(folder: Path, record: dict[str, Any], arrays: Optional[dict[str, np.ndarray]] = None) -> None:
    """The run record a protocol's tables and figures are rendered from (``starbench tables`` reads it)."""
    write_json(Path(folder) / RECORD_FILE, record)
    if arrays:
        np.savez_compressed(Path(folder) / ARRAYS_FILE, **arrays)


def load_record(folder: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    path = Path(folder) / RECORD_FILE
    if not path.is_file():
        raise StarbenchError(f"{path} does not exist: run the protocol first (starbench run protocol=...)")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise StarbenchError(f"{path}: not a valid run record ({exc})") from exc
    arrays: dict[str, np.ndarray] = {}
    if (Path(folder) / ARRAYS_FILE).is_file():
        with np.load(Path(folder) / ARRAYS_FILE) as z:
            arrays = {k: z[k] for k in z.files}
    return record, arrays


def rerender(results_dir: Path | str, name: str, render: Any) -> Path:
    """Regenerate a protocol's tables and figures from its stored record, without training or translating."""
    folder = Path(results_dir) / name
    record, arrays = load_record(folder)
    with results_folder(results_dir, name) as tmp:
        for keep in KEEP_ON_RERENDER:
            if (folder / keep).is_file():
                shutil.copy2(folder / keep, tmp / keep)
        render(record, arrays, tmp)
    return folder


def write_table(df: pd.DataFrame, folder: Path, stem: str, caption: str = "", notes: Sequence[str] = ()) -> None:
    """``stem``.csv (machine-readable), .md (with caption and notes) and .tex (a booktabs table)."""
    folder = Path(folder)
    df.to_csv(folder / f"{stem}.csv", index=False)
    md = (f"**{caption}**\n\n" if caption else "") + df.to_markdown(index=False, disable_numparse=True) + "\n"
    if notes:
        md += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    (folder / f"{stem}.md").write_text(md)
    tex = df.to_latex(index=False, caption=caption or None, label=f"tab:{stem}", escape=True)
    (folder / f"{stem}.tex").write_text(tex)


def git_commit() -> Optional[str]:
    try:
        here = Path(__file__).resolve().parent.parent
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, Optional[str]]:
    out: dict[str, Optional[str]] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance(cfg: Any, **extra: Any) -> dict[str, Any]:
    """Config, code and environment of a run, plus whatever the protocol adds."""
    return {
        "config": OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg,
        "git_commit": git_commit(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }


def plt():
    """matplotlib.pyplot with a non-interactive backend (figures are files, never windows)."""
    import matplotlib  # lazy: matplotlib takes a second to import and only reports draw

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot  # lazy: as above

    return pyplot
