"""The model interface every method fills in (StarGAN, the baselines, a user's own model).

A model owns its networks, losses and optimisers; the one ``Trainer`` owns everything else
(data, schedule, precision, distribution, checkpoints, logging). Adding a model means writing one
subclass and registering it (``starbench.registry.register_model``), or pointing
``model=package.module:ClassName`` / the ``starbench.models`` entry-point group at it.
"""
from __future__ import annotations

import abc
import contextlib
from typing import Any, Callable, Iterator

import torch
from torch import nn

from starbench.data.batches import Batch
from starbench.data.domains import DomainSpec

GradSync = Callable[[nn.Module], None]


class TranslationModel(abc.ABC):
    """Translate images between the domains of a ``DomainSpec``.

    ``cfg`` is the whole resolved config (a model reads its own section, e.g. ``cfg.stargan``).
    Images are float tensors in [-1, 1], shape (N, 3, S, S); labels are float (N, label_dim).
    """

    #: Config section holding this model's options (``None``: the model has none).
    config_section: str | None = None

    def __init__(self, domains: DomainSpec, cfg: Any) -> None:
        self.domains = domains
        self.cfg = cfg
        self.device = torch.device("cpu")
        self.autocast_dtype: torch.dtype | None = None  # set by the Trainer (bf16 on CUDA)
        self.grad_sync: GradSync = lambda net: None  # set by the Trainer under torchrun

    # ------------------------------------------------------------------ the contract
    @abc.abstractmethod
    def networks(self) -> dict[str, nn.Module]:
        """Every network by name: checkpointing, gradient sync and parameter counts use this."""

    @abc.abstractmethod
    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        """One training iteration on ``batch``; returns the losses to log (floats or 0-d tensors: the
        Trainer converts them only when it logs, so a GPU step need not wait for them)."""

    @abc.abstractmethod
    def translate(self, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Images ``x`` with labels ``source`` translated to labels ``target``, in [-1, 1]."""

    # ------------------------------------------------------------------ optional hooks
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimisers by name (checkpointed; their ``initial_lr`` is scaled by the schedule)."""
        return {}

    def prepare_training(self, data: Any) -> None:
        """Hook the Trainer calls with its ``TrainingData`` before the first step (DIAT trains its
        identity network here)."""

    def pair_requests(self) -> list[tuple[str, str, str]]:
        """Two-domain models: (tag, domain a, domain b) for each instance; the Trainer then feeds
        each step one batch per tag (``Batch.pair``), a-images in the first half, b-images in the second."""
        return []

    def sample_source(self) -> str | None:
        """Domain the sample-grid inputs are drawn from (None: any test image)."""
        return None

    def sample_targets(self, labels: torch.Tensor, dataset: str | None = None) -> list[tuple[str, torch.Tensor]]:
        """(name, target labels) shown in sample grids: by default every domain."""
        from starbench.train.samples import target_labels

        return target_labels(self.domains, labels, dataset)

    def to(self, device: torch.device, channels_last: bool = False) -> "TranslationModel":
        self.device = device
        for net in self.networks().values():
            net.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
        return self

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed-precision context for forward passes (a no-op unless the Trainer enabled it)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def parameter_counts(self) -> dict[str, int]:
        return {name: sum(p.numel() for p in net.parameters()) for name, net in self.networks().items()}

    def extra_state(self) -> dict[str, Any]:
        """Anything besides networks and optimisers that a checkpoint must restore."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass


@contextlib.contextmanager
def frozen_buffers(*nets: nn.Module) -> Iterator[None]:
    """Run nets in train-mode normalisation without changing their running statistics.

    StarGAN's public code never switches G to eval mode, so its InstanceNorm layers always use the
    statistics of the image being translated. Translation here does the same and restores the
    buffers afterwards, so that sampling during training leaves the weights bit-identical.
    """
    saved = [{k: b.clone() for k, b in net.named_buffers()} for net in nets]
    modes = [net.training for net in nets]
    for net in nets:
        net.train()
    try:
        yield
    finally:
        for net, bufs, mode in zip(nets, saved, modes):
            for k, b in net.named_buffers():
                b.copy_(bufs[k])
            net.train(mode)
