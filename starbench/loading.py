"""Weight files -> a ``Translator``, whatever wrote them: the one place starbench opens a weights file.

A file is read once, as data only (``starbench.files.load_torch``: nothing it carries runs), and handed to the
first registered weight format that recognises it. Formats are a small registry (``registry.FORMATS``); the
built-ins are registered here:

- ``starbench``: a starbench ``checkpoint.pt`` or a kept network file (``kept/step_*.pt``). The model is rebuilt
  from the config and domain names stored in the file, so its widths and image size are its own;
- ``stargan-public``: the public StarGAN release's bare generator state dict (``200000-G.ckpt``, Choi et al.
  2018). Label size and depth are read off the tensors (``starbench.models.public``).

A model class whose files are in a format of its own implements ``Translator.load(path)``: ``models=[NAME@PATH]``
builds the class for the task's domains and calls it when no registered format recognises the file (or the
file is not a torch file at all).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from omegaconf import OmegaConf

from starbench.config import resolve, schema_for
from starbench.data.domains import DomainSpec
from starbench.data.images import Crop
from starbench.errors import StarbenchError
from starbench.files import UnsafeFile, load_torch
from starbench.models.base import Translator
from starbench.models.classes import translator_class
from starbench.models.public import PublicStarGAN, build_generator, default_domains, is_public_generator
from starbench.registry import FORMATS
from starbench.train.averaging import use_average
from starbench.train.checkpoint import FORMAT, check_checkpoint, domains_from_dict, load_networks


@dataclass
class LoadedModel:
    """A translator built from a file, with what translating files needs: how inputs are preprocessed."""

    model: Translator
    cfg: Any
    name: str  # the model's name, e.g. "stargan", "stargan (public format)"
    format: str  # the weight format that read the file
    step: int = 0
    crop: Crop = None  # preprocessing of input files: crop, then resize to image_size
    image_size: int = 128


@dataclass(frozen=True)
class Request:
    """What the caller knows: the model it expects (or None), the task's domains (or None: the file's own), the
    caller's config, domain names for a file that has none (``domains=[...]``), and an image size."""

    model: Optional[str] = None
    domains: Optional[DomainSpec] = None
    cfg: Any = None
    names: Sequence[str] = ()
    image_size: Optional[int] = None
    average: bool = True  # a starbench file's weight average (train.ema_window) when it holds one


@dataclass(frozen=True)
class WeightFormat:
    """A registered weight format: ``detect(obj)`` says whether the loaded object is one; ``build`` makes the
    translator from it."""

    detect: Callable[[Any], bool]
    build: Callable[[Path, Any, Request], LoadedModel]


def register_format(name: str, description: str) -> Callable[[WeightFormat], WeightFormat]:
    return lambda fmt: FORMATS.register(name, fmt, description)


# --------------------------------------------------------------------------------------------- built-in formats
def _is_starbench(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT and "networks" in obj


def _build_starbench(path: Path, ckpt: Any, req: Request) -> LoadedModel:
    check_checkpoint(ckpt, path)
    if req.model and ckpt["model"] != req.model:
        raise StarbenchError(f"checkpoint {path} holds model '{ckpt['model']}', not '{req.model}'")
    if req.names:
        raise StarbenchError(f"domains=[...] is only for public-format checkpoints; {path} carries its own domain "
                             f"names")
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(schema_for([ckpt["model"]])), ckpt["config"])
    except Exception as exc:
        raise StarbenchError(f"checkpoint {path}: its stored config does not fit this starbench version ({exc})")
    model = translator_class(ckpt["model"])(domains_from_dict(ckpt["domains"]), cfg)
    load_networks(model, ckpt, path)
    if req.average and ckpt.get("average"):  # the run kept a weight average: translate with it
        use_average(model, ckpt["average"])
    if req.image_size and req.image_size != int(cfg.data.image_size):
        raise StarbenchError(f"checkpoint {path} was trained at {cfg.data.image_size} px; image_size={req.image_size} "
                             f"does not fit it")
    crop = tuple(cfg.data.crop) if cfg.data.crop else None
    return LoadedModel(model, cfg, ckpt["model"], "starbench", int(ckpt["step"]), crop, int(cfg.data.image_size))


def _build_public(path: Path, state: Any, req: Request) -> LoadedModel:
    if req.model not in (None, "stargan"):
        raise StarbenchError(f"{path} is a public StarGAN generator, not a '{req.model}' model: give it as "
                             f"models=[stargan@{path}]")
    cfg = req.cfg if req.cfg is not None else resolve([f"data.image_size={req.image_size or 128}"])
    G = build_generator(state, path)
    domains = req.domains or default_domains(G.c_dim, req.names or None, path)
    if domains.label_dim != G.c_dim:
        raise StarbenchError(f"checkpoint {path} takes {G.c_dim} labels; this task's domains have {domains.label_dim} "
                             f"({', '.join(domains.names)})")
    model = PublicStarGAN(domains, cfg, G, path)
    step = re.match(r"^(\d+)-G$", path.stem)
    return LoadedModel(model, cfg, "stargan (public format)", "stargan-public", int(step.group(1)) if step else 0,
                       model.crop, int(cfg.data.image_size))


register_format("starbench", "starbench checkpoint.pt or kept network file (the model rebuilt from its stored "
                             "config)")(WeightFormat(_is_starbench, _build_starbench))
register_format("stargan-public", "the public StarGAN release's generator state dict (200000-G.ckpt)")(
    WeightFormat(is_public_generator, _build_public))


# --------------------------------------------------------------------------------------------- the entry point
def open_weights(path: Path | str, model: Optional[str] = None, domains: Optional[DomainSpec] = None, cfg: Any = None,
                 names: Sequence[str] = (), image_size: Optional[int] = None, average: bool = True) -> LoadedModel:
    """The translator held by the weights file ``path`` (see the module docstring for the formats).

    ``model``: the model the caller expects (``models=[NAME@PATH]``); its class's own ``load`` reads a file no
    registered format knows. ``average``: translate with the weight average a starbench file keeps (else the last
    weights). ``domains``: the task's (a public generator must fit them); ``names``: domain names
    for a public generator whose label size fits neither CelebA's five attributes nor RaFD's eight expressions.
    """
    path = Path(path)
    req = Request(model, domains, cfg, tuple(names), image_size, average)
    try:
        obj = load_torch(path, "checkpoint")
    except UnsafeFile:
        raise
    except StarbenchError:
        if model is None:
            raise
        obj = None  # not a torch file: perhaps the model's own format
    if obj is not None:
        for entry in FORMATS:
            if entry.obj.detect(obj):
                return entry.obj.build(path, obj, req)
    cls = translator_class(model) if model is not None else None
    if cls is not None and cls.load is not Translator.load:  # the class reads a format of its own
        own = cls(domains, cfg)
        own.load(path)
        return LoadedModel(own, cfg, model, f"{cls.__qualname__}.load", 0, None, int(cfg.data.image_size))
    known = ", ".join(f"{e.name} ({e.description})" for e in FORMATS)
    first = next(iter(obj.items()), None) if isinstance(obj, dict) else None
    shape = f", shape {tuple(first[1].shape)}" if first and hasattr(first[1], "shape") else ""
    what = f"its first key is '{first[0]}'{shape}" if first else f"it holds a {type(obj).__name__}"
    raise StarbenchError(f"checkpoint {path} fits no weight format starbench knows ({what}); known formats: {known}"
                         + (f"; model '{model}' does not implement load(path) for a format of its own"
                            if model else ""))
