"""Trained runs shared by protocols: a run key per (model, settings, data), its folder, and training-or-loading it.

A run lives in ``run_dir/models/<model>-<data>-<key>``; the key hashes everything that decides the trained
model: the common settings (evaluation-only and machine-only keys left out, ``config.EVALUATION_ONLY`` and
``MACHINE_ONLY``), the model's own options section and its own entries of ``train.model_steps`` and
``train.model_decay_from`` (not the other models': adding a plug-in to ``models=[...]`` or changing CycleGAN's
budget does not retrain StarGAN), the batch size it trains with (its own ``train.model_batch_size`` entry, else
``data.batch_size``) and the data's fingerprint. Protocols that need the same model trained the same way
on the same data share the run, and ``starbench plan`` prints train lines into the very same folders.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from starbench.config import EVALUATION_ONLY, MACHINE_ONLY, TRAIN_MACHINE_ONLY, Config, cache_dir
from starbench.data import LoadedData, load_subset
from starbench.data.cache import fingerprint
from starbench.errors import StarbenchError
from starbench.models.classes import section_of
from starbench.train.averaging import use_average
from starbench.train.trainer import Trainer, batch_size_of, decay_start_of

COMMON = {f.name for f in fields(Config)}
BUDGET = ("model_steps", "model_decay_from")  # train.<key>.<model name>, hashed as the model's own entry
PER_MODEL = (*BUDGET, "model_batch_size")  # the batch size hashes as the data.batch_size the run trains with


def run_key(cfg: Any, model: str, data_fingerprint: str) -> str:
    """Hash of everything that decides a trained model (see the module docstring)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    own = section_of(model)
    for k in list(c):
        if k in EVALUATION_ONLY or k in MACHINE_ONLY or (k not in COMMON and k != own):
            c.pop(k)
    for k in TRAIN_MACHINE_ONLY:
        c["train"].pop(k, None)
    for k in BUDGET:  # a model's own budget and schedule decide its run; another model's do not
        mine = (c["train"].get(k) or {}).get(own)
        c["train"][k] = {} if mine is None else {own: mine}
    batch = (c["train"].pop("model_batch_size", None) or {}).get(own)
    if batch is not None:  # the run is the one data.batch_size=N trains (keys made before the setting existed hold)
        c["data"]["batch_size"] = batch
    if c["train"].get("keep_every") is None:  # runs that keep no checkpoints hash as before the key existed
        c["train"].pop("keep_every", None)
    c["model"] = model
    c["data_fingerprint"] = data_fingerprint
    return hashlib.sha256(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:12]


def data_fingerprint(data: LoadedData) -> str:
    return fingerprint(data.index, int(data.images.shape[-1]))


def index_fingerprint(cfg: Any) -> str:
    """``data_fingerprint`` of the data ``cfg`` names, from its file list alone (nothing decoded: ``starbench
    plan``)."""
    return fingerprint(load_subset(cfg, show_progress=False), int(cfg.data.image_size), cache_dir(cfg))


def run_folder(cfg: Any, model: str, fp: str) -> Path:
    """``run_dir/models/<model>-<data>-<key>``: where ``model`` trained with ``cfg`` on data ``fp`` lives."""
    return Path(cfg.run_dir) / "models" / f"{model.replace(':', '_')}-{cfg.data.name}-{run_key(cfg, model, fp)}"


def train_method(cfg: Any, model: str, fp: str, show: bool) -> tuple[Any, Path, dict]:
    """Train ``model`` with ``cfg`` through the Trainer, or load it when its run is complete; the model translates
    with its weight average when the run kept one and ``generator_weights=average`` (``weights`` in the info says
    which).

    Runs live in ``run_dir/models/<model>-<data>-<key>``: protocols that need the same model trained
    the same way on the same data share it.
    """
    run_dir = run_folder(cfg, model, fp)
    key = run_dir.name.rsplit("-", 1)[1]
    mcfg = OmegaConf.merge(cfg, {"model": model, "train": {"resume": True}})
    res = Trainer(mcfg, run_dir, show_progress=show).fit()
    if res.interrupted:
        raise StarbenchError(f"interrupted while training {model}; its checkpoint is in {run_dir}: run the protocol "
                             f"again to continue")
    weights = "last"
    if res.average is not None and cfg.generator_weights == "average":
        use_average(res.model, res.average)
        weights = average_text(res.average, cfg.train.ema_window)
    return res.model, run_dir, {"run_dir": str(run_dir), "key": key, "steps": res.step,
                                "reused": res.reused, "train_seconds": res.train_seconds, "weights": weights,
                                "lr_decay_start": lr_decay_start(mcfg, model, res.total_steps),
                                "batch_size": batch_size_of(mcfg, model)}


def lr_decay_start(cfg: Any, model: str, total: int) -> int:
    """The step where the run's learning rate started to fall (``total``: a constant rate)."""
    return min(total, decay_start_of(cfg, model, total))


def average_text(average: dict[str, Any], window: Any) -> str:
    """'average over the last 10% of steps, decay 0.9967': what a source translated with."""
    share = f"the last {100 * float(window):g}% of steps, " if window else ""
    return f"average over {share}decay {average['decay']:.4f}"
