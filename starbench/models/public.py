"""The public StarGAN release format (the authors' code, yunjey/stargan): a bare generator state dict,
``{step}-G.ckpt``.

The official code saves ``G.state_dict()`` with ``torch.save`` and nothing else: no config, no
domain names. Everything is read off the tensors: the width from ``main.0.weight`` (64, 3 + c, 7, 7),
the label size c from its input channels, the residual blocks from the ``main.K.main.0.weight`` keys.
Domain names default to the five CelebA attributes (c = 5, the released models) or the eight RaFD
expressions (c = 8); any other c needs ``domains=[...]``. starbench's ``Generator`` uses the same
module names, so the state dict loads as it is (files from PyTorch 0.3 lack ``num_batches_tracked``,
which is filled in). Translation runs InstanceNorm in train mode, as the public test path does (it
never calls ``eval()``; running statistics give broken images, yunjey/stargan#102).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import nn

from starbench.config import CELEBA_DEFAULT_ATTRIBUTES
from starbench.data.domains import DomainSpec
from starbench.data.synth import CELEBA_ATTRIBUTES, RAFD_EXPRESSIONS
from starbench.errors import StarbenchError
from starbench.models.base import Translator, frozen_buffers
from starbench.models.stargan import Generator

# The public test path's centre crop before resizing (CelebA aligned 178x218; RaFD faces 256x256).
PUBLIC_CROP = {"celeba": 178, "rafd": 256}
FIRST_KEY = "main.0.weight"
_BLOCK_KEY = re.compile(r"^main\.(\d+)\.main\.0\.weight$")


def is_state_dict(obj: Any) -> bool:
    """A bare dict of tensors (what the public code's ``torch.save(G.state_dict())`` writes)."""
    if not isinstance(obj, dict) or not obj:
        return False
    return all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items())


def is_public_generator(obj: Any) -> bool:
    return is_state_dict(obj) and FIRST_KEY in obj


def generator_dims(state: dict[str, torch.Tensor], path: Path) -> tuple[int, int, int]:
    """(conv_dim, c_dim, residual blocks) of a public-format generator state dict."""
    w = state[FIRST_KEY]
    if w.dim() != 4 or tuple(w.shape[2:]) != (7, 7) or w.shape[1] < 4:
        hint = (" (this looks like the public discriminator, {step}-D.ckpt: give the generator file, {step}-G.ckpt)"
                if w.dim() == 4 and w.shape[1] == 3 else "")
        raise StarbenchError(f"checkpoint {path}: key '{FIRST_KEY}' has shape {tuple(w.shape)}; the public StarGAN "
                             f"generator format expects (conv_dim, 3 + labels, 7, 7){hint}")
    blocks = sorted(int(m.group(1)) for k in state for m in [_BLOCK_KEY.match(k)] if m)
    return int(w.shape[0]), int(w.shape[1]) - 3, len(blocks)


def default_domains(c_dim: int, names: Optional[Sequence[str]], path: Path) -> DomainSpec:
    """Domain names for a label of ``c_dim``: given ones, else CelebA's five or RaFD's eight.

    Given names are CelebA attributes (multi-label) when every one is a CelebA attribute name, else
    one-hot domains (RaFD expressions, folders).
    """
    if names:
        names = list(names)
        if len(names) != c_dim:
            raise StarbenchError(f"checkpoint {path} takes {c_dim} labels but domains=[...] names {len(names)}: "
                                 f"{', '.join(names)}")
        kind = "multilabel" if all(n in CELEBA_ATTRIBUTES for n in names) else "onehot"
        return DomainSpec(tuple(names), kind)
    if c_dim == len(CELEBA_DEFAULT_ATTRIBUTES):
        return DomainSpec.multilabel(CELEBA_DEFAULT_ATTRIBUTES)
    if c_dim == len(RAFD_EXPRESSIONS):
        return DomainSpec.onehot(RAFD_EXPRESSIONS)
    raise StarbenchError(f"checkpoint {path} takes {c_dim} labels, which fit neither CelebA's five attributes nor "
                         f"RaFD's eight expressions: name them in order with domains=[name1,name2,...]")


def public_crop(domains: DomainSpec) -> Optional[int]:
    """The public test path's centre crop for these domains (None: the centre square)."""
    if domains.kind == "multilabel":
        return PUBLIC_CROP["celeba"]
    if tuple(domains.names) == tuple(RAFD_EXPRESSIONS):
        return PUBLIC_CROP["rafd"]
    return None


def build_generator(state: dict[str, torch.Tensor], path: Path) -> Generator:
    """A starbench ``Generator`` shaped like the file, with its weights loaded (keys checked one by one)."""
    conv_dim, c_dim, blocks = generator_dims(state, path)
    G = Generator(conv_dim, c_dim, blocks)
    own = G.state_dict()
    for key, tensor in state.items():
        if key not in own:
            raise StarbenchError(f"checkpoint {path}: key '{key}' (shape {tuple(tensor.shape)}) is not part of the "
                                 f"public StarGAN generator ({conv_dim} filters, {c_dim} labels, {blocks} residual "
                                 f"blocks); expected keys like main.3.weight {tuple(own['main.3.weight'].shape)}")
        if tuple(own[key].shape) != tuple(tensor.shape):
            raise StarbenchError(f"checkpoint {path}: key '{key}' has shape {tuple(tensor.shape)}; the public StarGAN "
                                 f"generator with {FIRST_KEY} {tuple(state[FIRST_KEY].shape)} expects "
                                 f"{tuple(own[key].shape)}")
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise StarbenchError(f"checkpoint {path}: missing key '{missing[0]}' (and {len(missing) - 1} more) of the "
                             f"public StarGAN generator")
    G.load_state_dict({**{k: v for k, v in own.items() if k.endswith("num_batches_tracked")}, **state})
    return G


class PublicStarGAN(Translator):
    """A StarGAN generator from a public-format file; translates as the public test path does."""

    def __init__(self, domains: DomainSpec, cfg: Any, generator: nn.Module, source: Path) -> None:
        super().__init__(domains, cfg)
        self.G = generator
        self.source = source
        self.crop = public_crop(domains)

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G}

    @torch.no_grad()
    def translate(self, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with frozen_buffers(self.G), self.autocast():
            return self.G(x, target).float()
