"""Rich progress bars shared by every long step (decoding, synthesis, training, protocols)."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)


@contextlib.contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; shows a bar with count, elapsed time and ETA on stderr when enabled."""
    if not enabled:
        yield lambda n=1: None
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=console) as prog:
        task = prog.add_task(description, total=total)
        yield lambda n=1: prog.advance(task, n)


@contextlib.contextmanager
def training_bar(title: str, total: int, start: int = 0, enabled: bool = True
                 ) -> Iterator[Callable[[int, dict, float], None]]:
    """Yield ``advance(step, losses, rate)``: a bar with the step count, it/s, elapsed time, ETA and the last losses."""
    if not enabled:
        yield lambda *args: None
        return
    columns = (TextColumn(f"[bold]{title}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[losses]}"))
    with Progress(*columns, console=console) as prog:
        task = prog.add_task(title, total=total, completed=start, rate="", losses="")

        def advance(step: int, losses: dict, rate: float) -> None:
            text = " ".join(f"{k}={float(v):.3f}" for k, v in sorted(losses.items()))
            prog.update(task, completed=step, rate=f"{rate:.1f} it/s", losses=text)

        yield advance
