"""The speed switches for a device: bf16 autocast and channels_last, each with a measured default.

``train.amp`` and ``train.channels_last`` left absent take the default measured on that kind of
device (``benchmarks/demo_steps.py``; figures in ``benchmarks/results/``): on CUDA both on; on the
CPU what ``CPU_DEFAULTS`` says. A switch asked for where it cannot work (bf16 on a CPU without
AVX512-BF16 or AMX) falls back to the plain path with one line saying so, never a traceback.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from starbench.devices import cpu_bf16_units
from starbench.progress import console

CUDA_DEFAULTS = {"amp": True, "channels_last": True}
CPU_DEFAULTS = {"amp": True, "channels_last": True}  # benchmarks/results/demo_steps_cpu.txt: 1.2-1.5x


@dataclass(frozen=True)
class FastPath:
    autocast_dtype: Optional[torch.dtype]
    channels_last: bool


def precision_key(fast: FastPath) -> str:
    """How a network was trained, for cache keys: 'fp32', 'bf16', with '+channels_last'."""
    return ("bf16" if fast.autocast_dtype is not None else "fp32") + ("+channels_last" if fast.channels_last else "")


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 autocast is slower than fp32."""
    return bool(cpu_bf16_units())


def bf16_autocast(device: torch.device, amp: Optional[bool]) -> bool:
    """Whether training on ``device`` runs under bf16 autocast: ``amp``, else the device's measured default, and on
    the CPU only where it computes bf16 natively."""
    asked = (CUDA_DEFAULTS if device.type == "cuda" else CPU_DEFAULTS)["amp"] if amp is None else amp
    return bool(asked) and (device.type != "cpu" or cpu_has_bf16())


def fast_path(device: torch.device, amp: Optional[bool], channels_last: Optional[bool]) -> FastPath:
    """The switches for ``device``: explicit settings win, absent ones take the measured default."""
    defaults = CUDA_DEFAULTS if device.type == "cuda" else CPU_DEFAULTS
    channels_last = defaults["channels_last"] if channels_last is None else channels_last
    bf16 = bf16_autocast(device, amp)
    if not bf16 and (defaults["amp"] if amp is None else amp):
        console.print("train.amp: this CPU has no native bf16 (AVX512-BF16/AMX): training in fp32", highlight=False)
    return FastPath(torch.bfloat16 if bf16 else None, bool(channels_last))
