"""A running average of the translating networks' weights, kept beside them (``train.ema_window``).

GAN generators keep moving at the end of training, so the translations of the last weights swing from one
step to the next (at demo scale DIAT's error moved by ±5 points between neighbouring checkpoints). An
exponential moving average of the weights, as StarGAN v2 evaluates its generator (Choi et al. 2020), damps
that. It is applied to every method alike: each model names the networks its ``translate`` uses
(``TranslationModel.averaged_networks``), and the window is a share of each method's own training
(``train.ema_window=0.1``: about the last 10% of its steps, decay 1 - 1/(0.1 x steps)), so methods with
different budgets are averaged alike. The average never feeds back into training: the last weights are
exactly those of a run without it, and both are saved (``generator_weights=last`` evaluates the plain ones).

Early steps use the smaller decay min(decay, (1 + t) / (10 + t)), so the average does not start from the
random initial weights.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


def decay_for(window: float, total_steps: int) -> float:
    """The per-step decay that averages over about ``window`` x ``total_steps`` steps."""
    return 1.0 - 1.0 / max(1.0, window * total_steps)


class WeightAverage:
    """Averaged copies of some networks, updated after every training step."""

    def __init__(self, nets: dict[str, nn.Module], decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.nets = {name: copy.deepcopy(net).requires_grad_(False) for name, net in nets.items()}
        # The parameter lists, gathered once: walking the modules for them at every step cost about 0.15 ms of a
        # demo StarGAN step (benchmarks/step_overhead.py). Parameters keep their identity through load_state_dict
        # and .to(), so the lists stay the networks' own.
        self._params = [(list(avg.parameters()), list(nets[name].parameters())) for name, avg in self.nets.items()]
        # Buffers are replaced, not copied into, by .to(): keep the modules that own them and look them up.
        self._buffer_owners = [(m_avg, m_src) for name, avg in self.nets.items()
                               for m_avg, m_src in zip(avg.modules(), nets[name].modules())
                               if next(m_avg.buffers(recurse=False), None) is not None]

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for averaged, current in self._params:
            torch._foreach_lerp_(averaged, current, 1.0 - decay)
        for m_avg, m_src in self._buffer_owners:  # running statistics: the current ones
            for b_avg, b_src in zip(m_avg.buffers(recurse=False), m_src.buffers(recurse=False)):
                b_avg.copy_(b_src)

    def state(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates,
                "networks": {name: net.state_dict() for name, net in self.nets.items()}}

    def load(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        for name, net in self.nets.items():
            net.load_state_dict(state["networks"][name])


def use_average(model: Any, average: dict[str, Any]) -> None:
    """Load a saved average's weights (``WeightAverage.state()``) into the model's networks of those names."""
    nets = model.networks()
    for name, weights in average["networks"].items():
        nets[name].load_state_dict(weights)
