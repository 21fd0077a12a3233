"""Learning-rate schedule: constant, then linear decay to exactly 0 at the last step, as the paper trains.

The public code subtracts lr/num_iters_decay once every 1,000 iterations, so its rate ends at about
0.999 of the start; the paper (and this schedule) decays linearly to 0.
"""
from __future__ import annotations

from typing import Optional

import torch


def lr_factor(step: int, total: int, decay_start: Optional[int] = None) -> float:
    """Multiplier of the initial rate at ``step`` (0-based): 1 until decay_start, 0 at ``total``."""
    start = total // 2 if decay_start is None else decay_start
    if step < start or total <= start:
        return 1.0
    return max(0.0, 1.0 - (step - start) / (total - start))


def apply_lr(optimizers: dict[str, torch.optim.Optimizer], factor: float) -> None:
    for opt in optimizers.values():
        for group in opt.param_groups:
            group["lr"] = group["initial_lr"] * factor
