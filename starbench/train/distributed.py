"""torchrun support: process group, rank-0-only writes, explicit gradient all-reduce.

DDP's reducer does not fit the double backward of the gradient penalty (it hooks the first
backward), so gradients are averaged explicitly, one flattened all-reduce per network, right
before each optimiser step (``TranslationModel.grad_sync``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the torchrun process group when launched by torchrun; otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def all_reduce_grads(net: nn.Module) -> None:
    """Average ``net``'s gradients over all processes (one flat buffer, one collective)."""
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def average_buffers(net: nn.Module) -> None:
    """Average floating-point buffers (InstanceNorm running statistics) over all processes.

    Each rank sees other images, so the running statistics drift apart; they never enter the
    computation (StarGAN normalises with each image's own statistics) but they are saved.
    """
    for b in net.buffers():
        if b.is_floating_point():
            dist.all_reduce(b.data)
            b.data /= dist.get_world_size()


def broadcast_params(net: nn.Module) -> None:
    """Start every rank from rank 0's weights and buffers."""
    for t in list(net.parameters()) + list(net.buffers()):
        dist.broadcast(t.data, 0)


def any_rank(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is set on any process (a stop, a non-finite loss); in one process, ``flag`` itself."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device if device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return bool(t.item() > 0)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
