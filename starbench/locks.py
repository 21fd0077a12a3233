"""One writer per run folder or cached step, across processes (the ``filelock`` package).

A second process that wants a folder another process is writing waits, saying which process holds
it, and then goes on: it resumes from, or simply reuses, what the first one finished. ``timeout``
bounds the wait (``train.lock_timeout``), after which a ``StarbenchError`` names the holder. Readers
of a finished run take no lock: every file is written to a temporary name and renamed, so what they
read is always whole.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Iterator, Optional

from filelock import FileLock, Timeout

from starbench.errors import StarbenchError
from starbench.progress import console


def _owner_file(lock_path: Path) -> Path:
    return lock_path.with_name(lock_path.name + ".owner")


UNKNOWN_HOLDER = "another process"


def holder(lock_path: Path) -> str:
    """'process 123 on host, since 12:00:01' for the process that holds ``lock_path`` (as far as it said)."""
    try:
        owner = json.loads(_owner_file(lock_path).read_text())
        return f"process {owner['pid']} on {owner['host']}, since {owner['since']}"
    except (OSError, ValueError, KeyError):
        return UNKNOWN_HOLDER


def _acquired_while_naming(lock: FileLock, lock_path: Path, seconds: float = 2.0) -> tuple[bool, str]:
    """A holder writes its name just after taking the lock: a process that finds the lock taken in that moment
    gives it up to ``seconds`` to appear (or the lock to come free) before saying whom it waits for."""
    who, deadline = holder(lock_path), time.monotonic() + seconds
    while who == UNKNOWN_HOLDER and time.monotonic() < deadline:
        try:
            lock.acquire(timeout=0.05)
            return True, who
        except Timeout:
            who = holder(lock_path)
    return False, who


def held(lock_path: Path) -> bool:
    """Whether another process holds ``lock_path`` now: a glance (it may be taken or let go a moment later), for
    choosing what to do first, never for deciding who may write."""
    if not Path(lock_path).is_file():
        return False
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    except OSError:  # a folder this process may only read (a finished run on read-only storage): nothing to wait for
        return False
    lock.release()
    return False


@contextlib.contextmanager
def exclusive(lock_path: Path, what: str, timeout: Optional[float] = None) -> Iterator[None]:
    """Hold ``lock_path`` while writing ``what``; wait (at most ``timeout`` seconds, None: forever) if it is taken."""
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        start = time.monotonic()
        acquired, who = _acquired_while_naming(lock, lock_path, 2.0 if timeout is None else min(2.0, timeout))
        if not acquired:
            console.print(f"waiting for {what}: in use by {who}", highlight=False, soft_wrap=True)
            try:  # the time spent waiting for the holder's name counts against the timeout
                lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout - (time.monotonic() - start)))
            except Timeout:
                raise StarbenchError(f"{what} is still in use by {holder(lock_path)} after waiting {timeout:g} s "
                                     f"(train.lock_timeout); try again later or raise the timeout") from None
    owner = _owner_file(lock_path)
    try:
        tmp = owner.with_name(f".{owner.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                   "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        os.replace(tmp, owner)
        yield
    finally:
        with contextlib.suppress(OSError):
            owner.unlink()
        lock.release()
