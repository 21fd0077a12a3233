"""The model interface, in two levels (DESIGN "Model interface").

``Translator`` is what can be *evaluated*: it translates images between the domains of a
``DomainSpec`` and may load weights from a file. A model trained in another code base needs only
this level: wrap it in a ``Translator`` and a protocol scores it without training anything.

``TranslationModel`` is what can also be *trained* by the one ``Trainer``: it owns its networks,
losses and optimisers; the Trainer owns everything else (data, schedule, precision, distribution,
checkpoints, logging). Adding a model means writing one subclass and registering it
(``starbench.registry.register_model``), or pointing ``model=package.module:ClassName`` / the
``starbench.models`` entry-point group at it.
"""
from __future__ import annotations

import abc
import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from starbench.data.batches import Batch
from starbench.data.domains import DomainSpec
from starbench.errors import StarbenchError

GradSync = Callable[[nn.Module], None]


class Translator(abc.ABC):
    """Translate images between the domains of a ``DomainSpec``: enough to be evaluated.

    ``cfg`` is the whole resolved config (a model reads its own section, e.g. ``cfg.stargan``).
    Images are float tensors in [-1, 1], shape (N, 3, S, S); labels are float (N, label_dim).
    """

    #: Config section holding this model's options (``None``: the model has none).
    config_section: str | None = None

    def __init__(self, domains: DomainSpec, cfg: Any) -> None:
        self.domains = domains
        self.cfg = cfg
        self.device = torch.device("cpu")
        self.autocast_dtype: torch.dtype | None = None  # set by the Trainer / evaluation (bf16 on CUDA)

    @abc.abstractmethod
    def translate(self, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Images ``x`` with labels ``source`` translated to labels ``target``, in [-1, 1]."""

    def load(self, path: Path | str) -> None:
        """Load weights from ``path`` (a model trained elsewhere: its own format, or a public release).

        Called by protocols for ``models=[name@PATH]``; a translator without weights need not implement it.
        """
        raise StarbenchError(f"model {type(self).__qualname__} cannot load weights from a file ({path}): it does "
                             f"not implement load(path)")

    @classmethod
    def from_file(cls, path: Path | str, domains: DomainSpec, cfg: Any) -> "Translator":
        """A translator holding the weights in ``path`` (``models=[name@PATH]``): built, then ``load(path)``.

        A class may return another ``Translator`` for a foreign format (StarGAN: the public release).
        """
        obj = cls(domains, cfg)
        obj.load(path)
        return obj

    def networks(self) -> dict[str, nn.Module]:
        """Every network by name (parameter counts, device moves); a translate-only model may return {}."""
        return {}

    def to(self, device: torch.device, channels_last: bool = False) -> "Translator":
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


class TranslationModel(Translator):
    """A ``Translator`` the one ``Trainer`` can also train (networks, losses, optimisers)."""

    def __init__(self, domains: DomainSpec, cfg: Any) -> None:
        super().__init__(domains, cfg)
        self.grad_sync: GradSync = lambda net: None  # set by the Trainer under torchrun

    # ------------------------------------------------------------------ the contract
    @abc.abstractmethod
    def networks(self) -> dict[str, nn.Module]:
        """Every network by name: checkpointing, gradient sync and parameter counts use this."""

    @abc.abstractmethod
    def train_step(self, batch: Batch, step: int) -> dict[str, float]:
        """One training iteration on ``batch``; returns the losses to log (floats or 0-d tensors: the
        Trainer converts them only when it logs, so a GPU step need not wait for them)."""

    def train_batches(self, batches: list[Batch], step: int) -> dict[str, Any]:
        """One training iteration over the step's batches (one per dataset or per two-domain instance); by
        default ``train_step`` on each in turn. A model may train them together (packed two-domain instances)."""
        losses: dict[str, Any] = {}
        for batch in batches:
            losses.update(self.train_step(batch, step))
        return losses

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

    def extra_state(self) -> dict[str, Any]:
        """Anything besides networks and optimisers that a checkpoint must restore."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def load(self, path: Path | str) -> None:
        """Weights from a starbench checkpoint of this model, into networks built from this config."""
        from starbench.train.checkpoint import load_networks, read_checkpoint

        load_networks(self, read_checkpoint(Path(path)), Path(path))

    @classmethod
    def from_file(cls, path: Path | str, domains: DomainSpec, cfg: Any) -> "Translator":
        """A starbench checkpoint is rebuilt from the config stored in it (its own widths and image size);
        any other file goes to ``load(path)``."""
        from starbench.translate import checkpoint_kind

        kind, obj = checkpoint_kind(Path(path))
        return cls.from_checkpoint(Path(path), kind, obj, domains, cfg)

    @classmethod
    def from_checkpoint(cls, path: Path, kind: str, obj: Any, domains: DomainSpec, cfg: Any) -> "Translator":
        """``from_file`` once the file is read (``kind`` and object as ``starbench.translate.checkpoint_kind``)."""
        from starbench.translate import load_model

        if kind != "starbench":
            return Translator.from_file.__func__(cls, path, domains, cfg)  # type: ignore[attr-defined]
        model = load_model(path, ckpt=obj).model
        if not isinstance(model, cls):
            raise StarbenchError(f"checkpoint {path} holds a {type(model).__qualname__}, not a {cls.__qualname__}")
        return model


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
