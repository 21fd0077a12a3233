"""The Python API: what the ``starbench`` command does, from a notebook or a script.

Settings are the command line's keys, given as keyword arguments: a dotted key as a string keyword
(``**{"train.steps": 100}``) or nested as a dict (``stargan={"g_lr": 2e-4}``, ``data={"root": "/data/RaFD"}``);
lists and numbers as Python values. Unknown keys and badly typed values raise ``StarbenchError`` naming the key,
as on the command line.

    import starbench
    result = starbench.run_protocol("rafd_expression", scale="smoke", models=["stargan", "icgan"])
    result.tables["table3"]          # pandas DataFrames, one per table the protocol writes
    result.folder                    # where it wrote them (results/rafd_expression)
    run = starbench.train(model="stargan", data="rafd", scale="smoke", run_dir="runs/mine")
    loaded = starbench.load_translator(run.checkpoint)      # any weight format starbench reads
    images = loaded.model.translate(x, source_labels, target_labels)
    check = starbench.compare_folders(Path("main/results/rafd_expression"), Path("results/rafd_expression"))
    check.problems                   # the checks that fail (none: the rerun reproduces the folder); check.report
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig

from starbench.config import resolve
from starbench.devices import resolve_device
from starbench.evaluate.compare import Comparison, compare_folders
from starbench.evaluate.parallel import side_by_side
from starbench.loading import LoadedModel, open_weights
from starbench.models.base import TranslationModel, Translator
from starbench.registry import PROTOCOLS, register_model
from starbench.report import ProtocolResult
from starbench.train.trainer import Trainer, TrainResult

__all__ = ["compare_folders", "configure", "load_translator", "register_model", "run_protocol", "train", "Translator",
           "TranslationModel", "Comparison", "LoadedModel", "ProtocolResult", "TrainResult"]


def flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'stargan': {'g_lr': 1e-4}, 'train.steps': 10} -> {'stargan.g_lr': 1e-4, 'train.steps': 10}."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        full = f"{prefix}{key}"
        leaf_dicts = ("train.model_steps", "train.model_decay_from", "train.model_batch_size", "curve_model_every")
        if isinstance(value, dict) and value and full not in leaf_dicts:
            out.update(flatten(value, full + "."))
        else:
            out[full] = list(value) if isinstance(value, tuple) else value
    return out


def configure(**settings: Any) -> DictConfig:
    """The resolved configuration for these settings (defaults < scale preset < settings)."""
    return resolve(values=flatten(settings))


def run_protocol(name: str, **settings: Any) -> ProtocolResult:
    """Run protocol ``name`` (``starbench run protocol=NAME ...``); returns its tables as DataFrames and its folder."""
    cfg = resolve([f"protocol={name}"], values=flatten(settings))
    protocol = PROTOCOLS.get(name)
    with side_by_side(cfg, protocol):
        return protocol(cfg)


def train(run_dir: Optional[str | Path] = None, **settings: Any) -> TrainResult:
    """Train a model (``starbench train ...``) into ``run_dir`` (absent: ``runs/<model>-<data>-<scale>``)."""
    cfg = resolve(values=flatten(settings))
    folder = Path(run_dir) if run_dir is not None else \
        Path(cfg.run_dir) / f"{str(cfg.model).replace(':', '_')}-{cfg.data.name}-{cfg.scale}"
    return Trainer(cfg, folder).fit()


def load_translator(path: str | Path, device: str = "cpu", domains: Optional[list[str]] = None,
                    image_size: Optional[int] = None) -> LoadedModel:
    """The model in a weights file (a starbench checkpoint or kept network file, or the public StarGAN release), on
    ``device``; ``.model.translate(x, source, target)`` translates images in [-1, 1]. ``domains`` names the labels
    of a public generator whose label size fits neither CelebA's five attributes nor RaFD's eight expressions."""
    loaded = open_weights(path, names=domains or (), image_size=image_size)
    loaded.model.to(resolve_device(device))
    return loaded
