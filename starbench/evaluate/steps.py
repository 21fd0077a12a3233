"""Steps of a protocol run: each announced as it starts ("[2/6] expression classifier") and timed for provenance."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from starbench.progress import console


class Steps:
    """Announces each step and records its wall time (for provenance)."""

    def __init__(self, total: int) -> None:
        self.total, self.n, self.times = total, 0, {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.n += 1
        console.print(f"[bold cyan][{self.n}/{self.total}][/] {name}", highlight=False)
        start = time.perf_counter()
        yield
        self.times[name] = round(time.perf_counter() - start, 2)
