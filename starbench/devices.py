"""The one device resolver (``device=auto|cpu|cuda|cuda:N`` -> a ``torch.device``, with a clear error), and what
kind of CPU this is: its name and native bf16 units, which decide the arithmetic a run takes on it."""
from __future__ import annotations

import contextlib
import platform
from pathlib import Path

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


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else what ``platform`` knows)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_bf16_units() -> list[str]:
    """The CPU's native bf16 units ('AMX', 'AVX512-BF16'): CPUs with other units run other kernels, so other bits."""
    probes = {"AMX": "_is_amx_tile_supported", "AVX512-BF16": "_is_avx512_bf16_supported"}
    return [unit for unit, name in probes.items() if (probe := getattr(torch.cpu, name, None)) and probe()]


def cpu_label(name: str | None = None, units: list[str] | None = None) -> str:
    """The CPU as every figure names it: model name and native bf16 units ('AMD EPYC (AVX512-BF16)',
    '... (no native bf16)'), the two things that decide its numerical path; this CPU's, or the ``name`` and
    ``units`` another machine's provenance recorded."""
    name = cpu_name() if name is None else name
    units = cpu_bf16_units() if units is None else units
    return f"{name} ({', '.join(units) if units else 'no native bf16'})"
