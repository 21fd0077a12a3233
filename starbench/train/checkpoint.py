"""Atomic checkpoints: networks, optimisers, step, RNG states, config and domains.

A checkpoint is written to a temporary name in the same folder and renamed over the old one, so
an interrupt or crash never leaves a truncated file; the one before it is kept as
``checkpoint.prev.pt``, and a latest checkpoint that cannot be read (a disk error, a copy cut
short) makes resume fall back to it with a warning. A checkpoint carries the resolved config and
the domain names, so that ``starbench translate`` can rebuild the model from the file alone.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import OmegaConf
from rich.markup import escape

from starbench.data.domains import DomainSpec
from starbench.errors import StarbenchError
from starbench.progress import console

FORMAT = 1
CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_NAME = "checkpoint.prev.pt"


def atomic_torch_save(obj: Any, path: Path, previous: Optional[Path] = None) -> None:
    """``torch.save`` under a temporary name, then renamed into place (the old file to ``previous`` if given)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def domains_to_dict(domains: DomainSpec) -> dict[str, Any]:
    if domains.is_joint:
        return {"kind": "joint", "parts": {n: domains_to_dict(p) for n, p in zip(domains.dataset_names, domains.parts)}}
    return {"kind": domains.kind, "names": list(domains.names)}


def domains_from_dict(d: dict[str, Any]) -> DomainSpec:
    if d["kind"] == "joint":
        return DomainSpec.joint({n: domains_from_dict(p) for n, p in d["parts"].items()})
    return DomainSpec(tuple(d["names"]), d["kind"])


def save_checkpoint(path: Path, model: Any, model_name: str, cfg: Any, step: int, total_steps: int,
                    train_seconds: float = 0.0) -> None:
    atomic_torch_save({
        "train_seconds": round(train_seconds, 2),
        "format": FORMAT,
        "model": model_name,
        "model_class": f"{type(model).__module__}:{type(model).__qualname__}",
        "config": OmegaConf.to_container(cfg, resolve=True),
        "domains": domains_to_dict(model.domains),
        "step": step,
        "total_steps": total_steps,
        "networks": {k: v.state_dict() for k, v in model.networks().items()},
        "optimizers": {k: v.state_dict() for k, v in model.optimizers().items()},
        "extra": model.extra_state(),
        "rng": rng_state(),
    }, path, previous=Path(path).with_name(PREVIOUS_NAME))


KEPT_DIR = "kept"


def kept_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / KEPT_DIR / f"step_{step:07d}.pt"


def save_kept(run_dir: Path, model: Any, model_name: str, cfg: Any, step: int, total_steps: int) -> None:
    """The networks alone at ``step`` (``train.keep_every``): what a learning curve evaluates, at a third of a
    checkpoint's size; ``starbench translate`` and ``models=[name@PATH]`` read it like a checkpoint."""
    atomic_torch_save({
        "format": FORMAT, "model": model_name, "model_class": f"{type(model).__module__}:{type(model).__qualname__}",
        "config": OmegaConf.to_container(cfg, resolve=True), "domains": domains_to_dict(model.domains),
        "step": step, "total_steps": total_steps, "networks": {k: v.state_dict() for k, v in model.networks().items()},
    }, kept_path(run_dir, step))


def read_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise StarbenchError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise StarbenchError(f"checkpoint {path} cannot be read ({exc}); expected a starbench checkpoint.pt") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "networks" not in ckpt:
        raise StarbenchError(f"checkpoint {path} is not a starbench checkpoint (format {FORMAT})")
    return ckpt


def read_latest(run_dir: Path) -> Optional[tuple[dict[str, Any], Path]]:
    """The run folder's latest readable checkpoint and its file: ``checkpoint.pt``, else (with a warning naming
    both files) ``checkpoint.prev.pt``; None when the folder has neither."""
    latest, previous = Path(run_dir) / CHECKPOINT_NAME, Path(run_dir) / PREVIOUS_NAME
    if latest.is_file():
        try:
            return read_checkpoint(latest), latest
        except StarbenchError as exc:
            if not previous.is_file():
                raise
            problem = str(exc)
    elif previous.is_file():
        problem = f"checkpoint {latest} is missing"
    else:
        return None
    ckpt = read_checkpoint(previous)
    console.print(f"[yellow]warning:[/] {escape(problem)}; resuming from the previous checkpoint {previous} "
                  f"(step {ckpt['step']})", highlight=False, soft_wrap=True)
    return ckpt, previous


def load_networks(model: Any, ckpt: dict[str, Any], path: Path) -> None:
    """Load network weights, with an error that says which network and shape disagree."""
    nets = model.networks()
    missing = set(nets) - set(ckpt["networks"])
    if missing:
        raise StarbenchError(f"checkpoint {path} has no weights for network(s) {', '.join(sorted(missing))} "
                             f"(it was written by model '{ckpt.get('model')}')")
    for name, net in nets.items():
        state = ckpt["networks"][name]
        own = net.state_dict()
        for key, tensor in state.items():
            if key in own and own[key].shape != tensor.shape:
                raise StarbenchError(
                    f"checkpoint {path}: network {name} parameter {key} has shape {tuple(tensor.shape)}, the model "
                    f"built from this config expects {tuple(own[key].shape)} (another image size or width?)")
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise StarbenchError(f"checkpoint {path}: weights of network {name} do not fit: {exc}") from exc
