"""Packed forward passes: M two-domain instances of one network role run as one grouped network.

DIAT trains 7 and CycleGAN 14 networks of each role per step. Run one after another, each instance
launches its own small kernels; packed, instance m's batch sits in channel group m of one tensor
and every layer runs once for all M: a convolution with ``groups=M`` and the instances' weights
concatenated, InstanceNorm over the M*C channels (its statistics are per channel, so this is
exact), element-wise layers as they are.

The instances' own modules stay the parameters: the packed weights are ``torch.cat`` of theirs,
built in each forward, so backward hands each instance exactly its own gradient, each keeps its
own Adam (element-wise, so training packed equals training alone up to float summation order),
and checkpoints, parameter counts and translation are the same whether a run was packed or not.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from starbench.errors import StarbenchError


def pack(images: Sequence[torch.Tensor]) -> torch.Tensor:
    """M batches (N, C, H, W) -> (N, M*C, H, W), instance m in channel group m."""
    return torch.stack(list(images), 1).flatten(1, 2)


def unpack(x: torch.Tensor, m: int) -> torch.Tensor:
    """(N, M*C, H, W) -> (M, N, C, H, W)."""
    return x.unflatten(1, (m, -1)).transpose(0, 1)


def _cat(tensors: Sequence[torch.Tensor | None]) -> torch.Tensor | None:
    return None if tensors[0] is None else torch.cat(list(tensors))  # type: ignore[arg-type]


def packed_forward(modules: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """Run ``len(modules)`` instances of one architecture on packed ``x`` as one grouped network."""
    first, m = modules[0], len(modules)
    if isinstance(first, nn.Sequential):
        for layers in zip(*modules):
            x = packed_forward(layers, x)
        return x
    if isinstance(first, nn.Conv2d):
        return F.conv2d(x, torch.cat([c.weight for c in modules]), _cat([c.bias for c in modules]), first.stride,
                        first.padding, first.dilation, first.groups * m)
    if isinstance(first, nn.ConvTranspose2d):
        return F.conv_transpose2d(x, torch.cat([c.weight for c in modules]), _cat([c.bias for c in modules]),
                                  first.stride, first.padding, first.output_padding, first.groups * m, first.dilation)
    if isinstance(first, nn.InstanceNorm2d):
        if first.track_running_stats:
            raise StarbenchError("packed InstanceNorm with running statistics is not supported")
        weight = _cat([n.weight for n in modules]) if first.affine else None
        bias = _cat([n.bias for n in modules]) if first.affine else None
        return F.instance_norm(x, weight=weight, bias=bias, eps=first.eps)
    if isinstance(first, (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.ReflectionPad2d, nn.ZeroPad2d)):
        return first(x)
    if hasattr(first, "packed_forward"):
        return first.packed_forward(modules, x)
    raise StarbenchError(f"no packed form for {type(first).__name__}")


def optimize_all(instances: Sequence, optimizer: str, nets: Sequence[str], loss: torch.Tensor, model: object,
                 frozen: Sequence[nn.Module] = ()) -> None:
    """One optimiser step of every instance on the summed ``loss`` (each instance gets exactly its own gradient);
    ``frozen`` networks (the critics during a generator step) get none."""
    for net in frozen:
        net.requires_grad_(False)
    for inst in instances:
        inst.optimizers[optimizer].zero_grad(set_to_none=True)
    loss.backward()
    for net in frozen:
        net.requires_grad_(True)
    for inst in instances:
        for name in nets:
            model.grad_sync(inst.nets[name])  # type: ignore[attr-defined]
        inst.optimizers[optimizer].step()
