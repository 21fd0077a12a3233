"""Adam and AdamW as torch computes them on the CPU, one cache-sized block of a weight tensor at a time.

On the CPU torch's Adam takes its single-tensor path (``foreach`` is a CUDA default), and that path makes eight
passes over memory for every weight tensor (decay, two moments, square root, division, ``eps``, the update),
each over the whole tensor. For the judge's ResNet-18 (11 million weights, 45 MB a tensor set) every pass comes
from main memory, and the optimizer took about a quarter of a training step. ``BlockedAdam`` runs the very same
operations in the very same order on consecutive blocks of ``BLOCK`` elements, so each block stays in the core's
cache for all eight: the weights and moments are bit for bit torch's (``tests/test_adam.py``), only the memory
traffic differs (``benchmarks/adam_kernels.py`` measures the step). The ResNet-18s (the judge, DIAT's identity
network) train with it on the CPU; the translation models keep torch's Adam, their tensors being small enough
that the blocks measured no faster. torch's fused CPU kernel would be faster still but rounds differently, and so
would change every trained judge and committed number.

What the blocks do not restate (amsgrad, maximize, capturable, differentiable, complex or sparse weights, a tensor
learning rate, ``foreach`` or ``fused`` asked for, a weight off the CPU) is left to torch's own step, unchanged.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Optional

import torch

BLOCK = 1 << 15  # elements: four fp32 tensors and two temporaries of a block fit a core's L2 cache (768 KB)


def _flat(t: torch.Tensor) -> Optional[torch.Tensor]:
    """A 1-d view of ``t`` in its memory order (contiguous or channels_last), or None."""
    if t.is_contiguous():
        return t.view(-1)
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last):
        return t.permute(0, 2, 3, 1).view(-1)
    return None


def _blocks(tensors: tuple[torch.Tensor, ...]) -> Iterator[tuple[torch.Tensor, ...]]:
    """The tensors (a weight, its gradient, its moments) cut into matching blocks of ``BLOCK`` elements; whole when
    small or when their layouts differ (elementwise operations give every element the same result either way)."""
    if tensors[0].numel() > BLOCK and len({t.stride() for t in tensors}) == 1:
        flats = [_flat(t) for t in tensors]
        if all(f is not None for f in flats):
            yield from zip(*(f.split(BLOCK) for f in flats))
            return
    yield tensors


class BlockedAdam(torch.optim.Adam):
    """``torch.optim.Adam``, stepped block by block (see the module docstring); state and state_dict are torch's,
    so checkpoints load into either class."""

    def _restated(self) -> bool:
        for group in self.param_groups:
            if (group["amsgrad"] or group["maximize"] or group["capturable"] or group["differentiable"]
                    or group["foreach"] or group["fused"] or isinstance(group["lr"], torch.Tensor)
                    or any(isinstance(b, torch.Tensor) for b in group["betas"])):
                return False
            for p in group["params"]:
                if p.grad is not None and (p.device.type != "cpu" or p.is_complex() or p.grad.is_sparse):
                    return False
        return True

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        if not self._restated():
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group: dict[str, Any]) -> None:
        lr, (beta1, beta2), eps, decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        decoupled = group.get("decoupled_weight_decay", False)
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if not state:  # as torch's _init_group makes it
                state["step"] = torch.tensor(0.0, dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
            step = state["step"].item()
            step_size = lr / (1 - beta1 ** step)
            bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
            for param, grad, exp_avg, exp_avg_sq in _blocks((p, p.grad, state["exp_avg"], state["exp_avg_sq"])):
                if decay != 0:
                    if decoupled:
                        param.mul_(1 - lr * decay)
                    else:
                        grad = grad.add(param, alpha=decay)
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
                param.addcdiv_(exp_avg, denom, value=-step_size)


class BlockedAdamW(BlockedAdam, torch.optim.AdamW):
    """``torch.optim.AdamW`` (decoupled weight decay), stepped block by block."""
