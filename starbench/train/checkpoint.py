"""Atomic checkpoints: networks, optimisers, step, RNG states, config and domains.

A checkpoint is written to a temporary name in the same folder and renamed over the old one
(``starbench.files``), so an interrupt, a ``kill -9`` or a full disk never leaves a truncated file;
the one before it is kept as ``checkpoint.prev.pt``, and a latest checkpoint that cannot be read (a
disk error, a copy cut short) makes resume fall back to it with a warning. A checkpoint carries the
resolved config and the domain names, so that ``starbench translate`` can rebuild the model from
the file alone.

Everything in a checkpoint is data that loads with ``weights_only=True``: tensors, numbers,
strings and plain containers. numpy's RNG state is stored as a tensor of its key (checkpoints of
starbench 0.1.0 hold it as a numpy array, which ``starbench.files`` still reads).
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import OmegaConf
from rich.markup import escape

from starbench.data.domains import DomainSpec
from starbench.errors import StarbenchError
from starbench.files import load_torch, save_torch
from starbench.progress import console

FORMAT = 1
REQUIRED_KEYS = ("model", "config", "domains", "step", "networks")
CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_NAME = "checkpoint.prev.pt"


def rng_state() -> dict[str, Any]:
    """Every RNG state as plain data: numpy's key as an int64 tensor instead of an array."""
    name, key, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": (name, torch.from_numpy(key.astype(np.int64)), int(pos), int(has_gauss), float(cached))}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, key, pos, has_gauss, cached = state["numpy"]
    key = key.numpy() if torch.is_tensor(key) else np.asarray(key)  # a numpy array in 0.1.0 checkpoints
    np.random.set_state((name, key.astype(np.uint32), pos, has_gauss, cached))
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
                    train_seconds: float = 0.0, average: Optional[dict[str, Any]] = None) -> None:
    """``average``: the weight average's state (``train.averaging``), saved beside the networks when kept."""
    save_torch(path, {
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
        **({"average": average} if average is not None else {}),
    }, previous=Path(path).with_name(PREVIOUS_NAME))


KEPT_DIR = "kept"
TRANSLATING_ONLY = "translating_only"  # a kept file: only the networks translate uses (no critics, no optimisers)


def kept_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / KEPT_DIR / f"step_{step:07d}.pt"


def save_kept(run_dir: Path, model: Any, model_name: str, cfg: Any, step: int, total_steps: int,
              train_seconds: float = 0.0, average: Optional[dict[str, Any]] = None) -> None:
    """The networks ``translate`` uses at ``step`` (``train.keep_every``; ``averaged_networks``, with their weight
    average): what a learning curve evaluates. Critics and optimiser state are left out, so a kept file is a
    fraction of a checkpoint (a demo CycleGAN's: 22 MB, not 61; its discriminators are 78% of its weights); it
    translates (``starbench translate``, ``models=[name@PATH]``) but cannot resume training.
    ``train_seconds``: the training-loop wall time up to this step (a curve against wall-clock time)."""
    nets = model.networks()
    save_torch(kept_path(run_dir, step), {
        "train_seconds": round(train_seconds, 2), "format": FORMAT, "model": model_name,
        "model_class": f"{type(model).__module__}:{type(model).__qualname__}",
        "config": OmegaConf.to_container(cfg, resolve=True), "domains": domains_to_dict(model.domains),
        "step": step, "total_steps": total_steps,
        "networks": {k: nets[k].state_dict() for k in model.averaged_networks()}, TRANSLATING_ONLY: True,
        **({"average": average} if average is not None else {}),
    })


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A starbench checkpoint, read as data only (``starbench.files.load_torch``)."""
    ckpt = load_torch(Path(path), "checkpoint")
    check_checkpoint(ckpt, Path(path))
    return ckpt


def check_checkpoint(ckpt: Any, path: Path) -> None:
    """What was read from ``path`` is a whole starbench checkpoint (or kept network file)."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "networks" not in ckpt:
        raise StarbenchError(f"checkpoint {path} is not a starbench checkpoint (format {FORMAT})")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise StarbenchError(f"checkpoint {path} lacks '{missing[0]}': not a whole starbench checkpoint (format "
                             f"{FORMAT} holds {', '.join(REQUIRED_KEYS)})")


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
    """Load network weights, with an error that says which network and shape disagree. A kept file
    (``TRANSLATING_ONLY``) fills the networks ``translate`` uses; the others keep their initial weights."""
    nets = model.networks()
    if ckpt.get(TRANSLATING_ONLY):
        nets = {name: nets[name] for name in model.averaged_networks()}
    missing = set(nets) - set(ckpt["networks"])
    if missing:
        raise StarbenchError(f"checkpoint {path} has no weights for network(s) {', '.join(sorted(missing))} "
                             f"(it was written by model '{ckpt.get('model')}')")
    for name, net in nets.items():
        state = ckpt["networks"][name]
        if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
            raise StarbenchError(f"checkpoint {path}: the weights of network {name} are not a dict of tensors")
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
