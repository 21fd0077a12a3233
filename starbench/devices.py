"""The one device resolver: ``device=auto|cpu|cuda|cuda:N`` -> a ``torch.device``, with a clear error."""
from __future__ import annotations

import torch

from starbench.errors import StarbenchError


def resolve_device(name: str | None = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: CUDA when there is a GPU, else the CPU; ``cuda``: this process's GPU under torchrun
    (``local_rank``)."""
    name = name or "auto"
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise StarbenchError("device=cuda was asked for but no CUDA device is available (use device=cpu or auto)")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    return torch.device(name)
