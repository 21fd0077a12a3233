"""TensorBoard event files in the run folder (``train.tensorboard``), through TensorBoard's own SummaryWriter.

Every logged loss, the learning-rate factor and it/s go in as scalars, each sample grid as an image;
protocols log their learning-curve metrics into the same folder. ``train.tensorboard`` absent means
"on when the ``tensorboard`` package is installed" (``pip install -e ".[tensorboard]"``). On resume the
events after the resumed step are purged, so a curve never doubles back.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Optional

import numpy as np

from starbench.progress import console

EVENTS_DIR = "tensorboard"


def tensorboard_installed() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


class EventLog:
    """A SummaryWriter into ``run_dir/tensorboard`` when enabled, else a no-op."""

    def __init__(self, run_dir: Path, enabled: Optional[bool], start: int = 0) -> None:
        self.writer: Any = None
        if enabled is None:
            enabled = tensorboard_installed()
        elif enabled and not tensorboard_installed():
            console.print("train.tensorboard=true but the tensorboard package is not installed "
                          "(pip install -e \".[tensorboard]\"); no event files are written", highlight=False)
            enabled = False
        if enabled:
            from torch.utils.tensorboard import SummaryWriter  # optional: needs the tensorboard package

            self.writer = SummaryWriter(log_dir=str(Path(run_dir) / EVENTS_DIR), purge_step=start or None)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.writer is not None:
            for tag, value in values.items():
                self.writer.add_scalar(tag, value, step)

    def image(self, tag: str, step: int, picture: np.ndarray) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, picture, step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
