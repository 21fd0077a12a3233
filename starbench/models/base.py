"""The model interface, in two levels: the floor every model and the Trainer stand on.

``Translator`` is what can be *evaluated*: it translates images between the domains of a
``DomainSpec`` and may load weights from a file in a format of its own. A model trained in another
code base needs only this level: wrap it in a ``Translator`` and a protocol scores it without
training anything.

``TranslationModel`` is what can also be *trained* by the one ``Trainer``: it owns its networks,
losses and optimisers; the Trainer owns everything else (data, schedule and the optimisers'
``initial_lr``, precision, distribution, checkpoints, logging).

A model is one file: the class declares its ``name`` (the config section of its options), its
``options`` (a dataclass), its ``presets`` per scale and, when it needs another budget than
``train.steps``, its ``steps`` per scale (``starbench.models.template`` is a worked example). Select
it with ``model=package.module:ClassName``, register it (``starbench.register_model``), or name it
in the ``starbench.models`` entry-point group of your package.
"""
from __future__ import annotations

import abc
import contextlib
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Optional

import torch
from torch import nn

from starbench.data.batches import Batch
from starbench.data.domains import DomainSpec, every_target
from starbench.errors import StarbenchError

GradSync = Callable[[nn.Module], None]


class Translator(abc.ABC):
    """Translate images between the domains of a ``DomainSpec``: enough to be evaluated.

    ``cfg`` is the whole resolved config; ``self.opts`` is the model's own section of it (its ``options``).
    Images are float tensors in [-1, 1], shape (N, 3, S, S); labels are float (N, label_dim).
    """

    #: The config section of this model's options (``<name>.<option>=VALUE``); a registered model's is its name.
    name: ClassVar[Optional[str]] = None
    #: A dataclass of the model's options, with their defaults (None: it has none).
    options: ClassVar[Optional[type]] = None
    #: Options per scale ("smoke", "demo", "paper"), merged between the defaults and the user's settings.
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Training steps per scale, where the model needs another budget than ``train.steps``.
    steps: ClassVar[dict[str, int]] = {}
    #: Batch size per scale, where the model trains best with another than ``data.batch_size``.
    batch_size: ClassVar[dict[str, int]] = {}

    def __init__(self, domains: DomainSpec, cfg: Any) -> None:
        self.domains = domains
        self.cfg = cfg
        self.opts: Any = cfg[self.name] if self.name and cfg is not None and self.name in cfg else None
        self.device = torch.device("cpu")
        self.autocast_dtype: torch.dtype | None = None  # set by the Trainer / evaluation (bf16 on CUDA)

    @abc.abstractmethod
    def translate(self, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Images ``x`` with labels ``source`` translated to labels ``target``, in [-1, 1]."""

    def load(self, path: Path | str) -> None:
        """Load weights from ``path`` in a format of this class's own (a model trained elsewhere).

        ``models=[name@PATH]`` calls it when the file is not in a format starbench reads itself (a starbench
        checkpoint, the public StarGAN release: ``starbench.loading``); a translator without weights need not
        implement it.
        """
        raise StarbenchError(f"model {type(self).__qualname__} cannot load weights from a file ({path}): it does "
                             f"not implement load(path)")

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
        """Optimisers by name, created once (the Trainer checkpoints them and sets each group's ``initial_lr``,
        which its schedule scales)."""
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
        return every_target(self.domains, labels, dataset)

    def generator_updates(self, steps: int) -> int:
        """How many times ``steps`` training steps update the translating networks (tables show it beside the steps:
        StarGAN updates G once every ``n_critic`` steps)."""
        return steps

    def averaged_networks(self) -> list[str]:
        """The networks ``translate`` uses: those a weight average keeps (``train.ema_window``). By default every
        network; a GAN names its generator(s) (and encoders), not its critics."""
        return list(self.networks())

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
