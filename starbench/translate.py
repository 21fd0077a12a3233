"""Apply a trained checkpoint to image files: ``starbench translate``.

Two formats are read: a starbench ``checkpoint.pt`` (the model is rebuilt from the file alone: its
config and domain names travel inside it; inputs are preprocessed exactly as in training) and the
public StarGAN release's bare generator state dict (``200000-G.ckpt``; REFERENCE §9: names from the
label size or ``domains=[...]``, the public test path's centre crop, then ``image_size``, default
128). Outputs are written as PNG, one per input and target.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from omegaconf import OmegaConf

from starbench.config import Config
from starbench.data.batches import to_float
from starbench.data.domains import DomainSpec
from starbench.data.images import Crop, preprocess, read_rgb, summarize_notes
from starbench.data.index import is_image
from starbench.errors import StarbenchError
from starbench.progress import console
from starbench.models.base import Translator
from starbench.files import load_torch
from starbench.models.public import is_public_generator, is_state_dict, load_public
from starbench.train.checkpoint import FORMAT, domains_from_dict, load_networks, read_checkpoint


@dataclass
class LoadedModel:
    model: Translator
    cfg: Any
    name: str
    step: int
    crop: Crop = None  # preprocessing of input files: crop, then resize to image_size
    image_size: int = 128


def checkpoint_kind(path: Path) -> tuple[str, Any]:
    """("public", state dict) | ("state_dict", state dict) | ("starbench", checkpoint) | ("other", None).

    The file is read once, as data only (``starbench.files.load_torch``): a file that asks for code is refused
    here, before anything else looks at it."""
    obj = load_torch(path, "checkpoint")
    if is_state_dict(obj):
        return ("public" if is_public_generator(obj) else "state_dict"), obj
    if isinstance(obj, dict) and obj.get("format") == FORMAT and "networks" in obj:
        return "starbench", obj
    return "other", None


def load_translator(path: Path | str, device: str = "cpu", names: Sequence[str] = (),
                    image_size: Optional[int] = None) -> LoadedModel:
    """A starbench checkpoint or a public StarGAN generator, ready to translate files."""
    from starbench.config import resolve
    from starbench.train.trainer import resolve_device

    path = Path(path)
    kind, obj = checkpoint_kind(path)
    if kind == "public":
        cfg = resolve([f"data.image_size={image_size or 128}"])
        model = load_public(path, obj, cfg, names=names or None)
        model.to(resolve_device(device))
        step = re.match(r"^(\d+)-G$", path.stem)
        return LoadedModel(model, cfg, "stargan (public format)", int(step.group(1)) if step else 0, model.crop,
                           int(cfg.data.image_size))
    if kind == "state_dict":
        key, tensor = next(iter(obj.items()))
        raise StarbenchError(f"checkpoint {path}: key '{key}' (shape {tuple(tensor.shape)}) fits neither a starbench "
                             f"checkpoint nor the public StarGAN generator format (whose first key is "
                             f"main.0.weight, shape (64, 3 + labels, 7, 7))")
    if names:
        raise StarbenchError(f"domains=[...] is only for public-format checkpoints; {path} carries its own domain names")
    loaded = load_model(path, device, ckpt=obj if kind == "starbench" else None)
    if image_size and image_size != loaded.image_size:
        raise StarbenchError(f"checkpoint {path} was trained at {loaded.image_size} px; image_size={image_size} "
                             f"does not fit it")
    return loaded


def load_model(path: Path | str, device: str = "cpu", expect_model: Optional[str] = None,
               ckpt: Optional[dict[str, Any]] = None) -> LoadedModel:
    """Rebuild the model stored in a starbench checkpoint and load its weights."""
    from starbench.train.trainer import build_model, resolve_device

    path = Path(path)
    ckpt = ckpt if ckpt is not None else read_checkpoint(path)
    if expect_model and ckpt["model"] != expect_model:
        raise StarbenchError(f"checkpoint {path} holds model '{ckpt['model']}', not '{expect_model}'")
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(Config), ckpt["config"])
    except Exception as exc:
        raise StarbenchError(f"checkpoint {path}: its stored config does not fit this starbench version ({exc})")
    domains = domains_from_dict(ckpt["domains"])
    model = build_model(ckpt["model"], domains, cfg)
    load_networks(model, ckpt, path)
    model.to(resolve_device(device))
    crop = tuple(cfg.data.crop) if cfg.data.crop else None
    return LoadedModel(model, cfg, ckpt["model"], int(ckpt["step"]), crop, int(cfg.data.image_size))


def target_vectors(domains: DomainSpec, names: Sequence[str]) -> list[tuple[str, torch.Tensor]]:
    """Target label vectors for ``target=...``.

    One-hot domains: one output per name. Multi-label domains (CelebA): the names together form one
    target, those attributes on and the rest off. Joint: names from one dataset's part, mask set.
    """
    def check(spec: DomainSpec, name: str) -> None:
        if name not in spec.names:
            raise StarbenchError(f"unknown target '{name}'; valid targets: {', '.join(spec.names)}")

    if domains.is_joint:
        for dataset in domains.dataset_names:
            part = domains.part(dataset)
            if all(n in part.names for n in names):
                return [(label, torch.from_numpy(domains.embed(dataset, vec[None].numpy())[0]))
                        for label, vec in target_vectors(part, names)]
        valid = ", ".join(n for n in domains.names if not n.startswith("mask:"))
        raise StarbenchError(f"targets {', '.join(names)} are not all from one dataset; valid targets: {valid}")
    for n in names:
        check(domains, n)
    if domains.kind == "onehot":
        return [(n, torch.from_numpy(domains.label(n))) for n in names]
    return [("+".join(names), torch.from_numpy(domains.label(list(names))))]


def list_inputs(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and is_image(p))
        if not files:
            raise StarbenchError(f"input folder {path} holds no .jpg/.png images")
        return files
    raise StarbenchError(f"input {path} does not exist")


@torch.no_grad()
def translate_files(checkpoint: Path | str, inputs: Path | str, targets: Sequence[str], out: Path | str,
                    source: Sequence[str] = (), device: str = "cpu", batch_size: int = 16,
                    domains: Sequence[str] = (), image_size: Optional[int] = None) -> list[Path]:
    """Translate every input image to every target; returns the written PNG paths."""
    from starbench.train.samples import save_image

    loaded = load_translator(checkpoint, device, domains, image_size)
    model = loaded.model
    tvecs = target_vectors(model.domains, targets)
    src = torch.zeros(model.domains.label_dim)
    if source:
        src = target_vectors(model.domains, source)[0][1]
    files = list_inputs(Path(inputs))
    images, bad, notes = [], [], []
    for p in files:  # every input is read before anything is written: a bad file leaves out/ untouched
        try:
            decoded = read_rgb(p)
            images.append(torch.from_numpy(preprocess(decoded.image, loaded.image_size, loaded.crop, p)))
            notes += decoded.notes
        except StarbenchError as exc:
            bad.append(str(exc))
    if bad:
        raise StarbenchError(f"{len(bad)} input image(s) cannot be used (nothing was written):\n  " + "\n  ".join(bad))
    for line in summarize_notes(notes):
        console.print(f"note: input {line}", highlight=False)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        x = to_float(torch.stack(images[start:start + batch_size])).to(model.device)
        s = src.expand(len(chunk), -1).to(model.device)
        for name, t in tvecs:
            y = model.translate(x, s, t.expand(len(chunk), -1).to(model.device))
            for p, img in zip(chunk, y):
                dest = out / f"{p.stem}_{name}.png"
                save_image(dest, img)
                written.append(dest)
    return written

