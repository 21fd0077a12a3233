"""Apply a trained checkpoint to image files: ``starbench translate``.

The model is rebuilt from the checkpoint alone (its config and domain names travel inside it), and
inputs are preprocessed exactly as in training (the same crop and resize), then written as PNG.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from omegaconf import OmegaConf

from starbench.config import Config
from starbench.data.batches import to_float
from starbench.data.domains import DomainSpec
from starbench.data.images import load_image
from starbench.data.index import is_image
from starbench.errors import StarbenchError
from starbench.models.base import TranslationModel
from starbench.train.checkpoint import domains_from_dict, load_networks, read_checkpoint


@dataclass
class LoadedModel:
    model: TranslationModel
    cfg: Any
    name: str
    step: int


def load_model(path: Path | str, device: str = "cpu", expect_model: Optional[str] = None) -> LoadedModel:
    """Rebuild the model stored in a starbench checkpoint and load its weights."""
    from starbench.train.trainer import build_model, resolve_device

    path = Path(path)
    ckpt = read_checkpoint(path)
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
    return LoadedModel(model, cfg, ckpt["model"], int(ckpt["step"]))


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
                    source: Sequence[str] = (), device: str = "cpu", batch_size: int = 16) -> list[Path]:
    """Translate every input image to every target; returns the written PNG paths."""
    from starbench.train.samples import save_image

    loaded = load_model(checkpoint, device)
    model, cfg = loaded.model, loaded.cfg
    tvecs = target_vectors(model.domains, targets)
    src = torch.zeros(model.domains.label_dim)
    if source:
        src = target_vectors(model.domains, source)[0][1]
    files = list_inputs(Path(inputs))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    crop = tuple(cfg.data.crop) if cfg.data.crop else None
    written: list[Path] = []
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        x = to_float(torch.stack([torch.from_numpy(load_image(str(p), cfg.data.image_size, crop)) for p in chunk]))
        x = x.to(model.device)
        s = src.expand(len(chunk), -1).to(model.device)
        for name, t in tvecs:
            y = model.translate(x, s, t.expand(len(chunk), -1).to(model.device))
            for p, img in zip(chunk, y):
                dest = out / f"{p.stem}_{name}.png"
                save_image(dest, img)
                written.append(dest)
    return written

