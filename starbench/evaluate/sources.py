"""Sources of translations: each yields, per task column, the uint8 translations of the asked inputs.

- ``TrainedSource``: a model trained by the Trainer into ``run_dir/models/...`` (or loaded from its
  finished run);
- ``FileSource``: a model built from a weights file, ``models=[name@PATH]``: a starbench checkpoint,
  the public StarGAN release's generator (``starbench.loading``), or whatever the class's ``load`` reads;
- ``TranslatorSource``: a translate-only plug-in (a ``Translator`` without ``train_step``) as it is;
- ``FolderSource``: a folder of translated images named as ``starbench export`` says (``tasks.csv``).

Every source goes through the same metrics (``evaluate.score``); which one a row came from is in the
provenance.
"""
from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image

from starbench.baselines.pairwise import count_instances
from starbench.data.batches import to_float, to_uint8
from starbench.data.domains import DomainSpec
from starbench.data.images import read_rgb, summarize_notes
from starbench.errors import StarbenchError
from starbench.evaluate.runs import index_fingerprint, run_folder, train_method
from starbench.evaluate.task import Task
from starbench.files import UnsafeFile, load_torch
from starbench.loading import open_weights
from starbench.models.base import Translator
from starbench.models.classes import is_trainable, section_of, translator_class
from starbench.train.speed import FastPath
from starbench.train.trainer import steps_of

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TRANSLATE_BATCH = 64


class Source(abc.ABC):
    """One method's translations of a task (one row of a protocol's table)."""

    kind = "source"

    def __init__(self, name: str, seed: Optional[int] = None) -> None:
        self.name = name
        self.seed = seed  # the training seed of a trained source (None: not trained here)
        self.info: dict[str, Any] = {"kind": self.kind}
        self.notes: list[str] = []

    def prepare(self, task: Task) -> None:
        """Train, load or check whatever the source needs before ``column`` is called."""

    @abc.abstractmethod
    def column(self, task: Task, t: int) -> torch.Tensor:
        """(M, 3, S, S) uint8 translations of ``task.rows_of(t)`` for column ``t``."""

    def release(self) -> None:
        """Drop what ``prepare`` loaded (networks) once the source is scored."""


# ------------------------------------------------------------------------------------------------ models
def label_adapter(model: DomainSpec, task: DomainSpec) -> Callable[[np.ndarray], np.ndarray]:
    """Labels of the task's domains -> the model's: as they are, or embedded in a joint (mask-vector) label."""
    if tuple(model.names) == tuple(task.names):
        return lambda labels: labels
    if model.is_joint:
        for name, part in zip(model.dataset_names, model.parts):
            if tuple(part.names) == tuple(task.names):
                return lambda labels, name=name: model.embed(name, labels)
    raise StarbenchError(f"the model translates the domains {', '.join(model.names)}; this task needs "
                         f"{', '.join(task.names)}")


class ModelSource(Source):
    """Translations made by a ``Translator`` (``prepare`` builds it; subclasses say how)."""

    def __init__(self, name: str, device: torch.device, seed: Optional[int] = None) -> None:
        super().__init__(name, seed)
        self.device = device
        self.fast = FastPath(None, False)  # the evaluation's precision and layout (``Evaluation.translate_at``)
        self.model: Optional[Translator] = None
        self._adapt: Callable[[np.ndarray], np.ndarray] = lambda labels: labels

    def use(self, model: Translator, task: Task) -> None:
        """Translate with ``model`` from now on; its parameter counts go into the provenance and the table."""
        self.model = model
        # every source translates at the same precision and memory layout, however it was made
        self.model.to(self.device, self.fast.channels_last)
        self.model.autocast_dtype = self.fast.autocast_dtype
        self._adapt = label_adapter(model.domains, task.domains)
        counts = count_instances(model)
        per_instance = next(iter(counts.values()))
        self.info.update({"parameters_per_instance": per_instance, "instances": len(counts),
                          "networks": sorted(model.networks()),
                          "identity_network": getattr(model, "identity_info", None) or None})
        if per_instance:
            self.info["parameters"] = f"{per_instance / 1e6:.2f}M x {len(counts)}"

    @torch.no_grad()
    def column(self, task: Task, t: int) -> torch.Tensor:
        assert self.model is not None, "prepare() first"
        rows = task.rows_of(t)
        out = torch.empty((len(rows),) + tuple(task.inputs.shape[1:]), dtype=torch.uint8)
        src = self._adapt(task.sources[rows])
        tgt = self._adapt(task.targets[rows, t])
        for i in range(0, len(rows), TRANSLATE_BATCH):
            x = to_float(task.inputs[rows[i:i + TRANSLATE_BATCH]].clone()).to(self.model.device)
            if self.fast.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            s = torch.from_numpy(np.ascontiguousarray(src[i:i + TRANSLATE_BATCH])).to(self.model.device)
            g = torch.from_numpy(np.ascontiguousarray(tgt[i:i + TRANSLATE_BATCH])).to(self.model.device)
            y = self.model.translate(x, s, g)
            if y.shape != x.shape:
                raise StarbenchError(f"method {self.name}: translate() returned shape {tuple(y.shape)} for inputs "
                                     f"of shape {tuple(x.shape)}")
            out[i:i + x.size(0)] = to_uint8(y).cpu()
        return out

    def release(self) -> None:
        self.model = None


class TrainedSource(ModelSource):
    """A model of ``models=[...]`` trained by the Trainer (or loaded from its finished run).

    Its config is the protocol's with ``delta`` merged in (the seed, kept checkpoints for a learning curve,
    a variant's dataset): ``starbench plan`` prints the same delta as the overrides of a ``starbench train``.
    """

    kind = "trained"

    def __init__(self, name: str, model: str, base_cfg: Any, delta: dict[str, Any], fingerprint: str,
                 device: torch.device) -> None:
        super().__init__(name, device, int(delta.get("seed", base_cfg.seed)))
        self.model_name, self.delta, self.fp = model, delta, fingerprint
        self.cfg = OmegaConf.merge(base_cfg, delta)

    def run_folder(self) -> Path:
        return run_folder(self.cfg, self.model_name, self.fp)

    def prepare(self, task: Task) -> None:
        model, _, info = train_method(self.cfg, self.model_name, self.fp, bool(self.cfg.train.progress))
        self.info.update({**info, "seed": self.seed, "generator_updates": model.generator_updates(info["steps"])})
        self.use(model, task)


class FileSource(ModelSource):
    """``models=[name@PATH]``: the model's class builds itself from the file; nothing is trained."""

    kind = "checkpoint"

    def __init__(self, name: str, model: str, path: Path, cfg: Any, device: torch.device) -> None:
        super().__init__(name, device)
        self.model_name, self.path, self.cfg = model, path, cfg
        self.info.update({"model": model, "file": path.name})

    def prepare(self, task: Task) -> None:
        loaded = open_weights(self.path, self.model_name, task.domains, self.cfg,
                              average=self.cfg.generator_weights == "average")
        self.info["format"] = type(loaded.model).__qualname__
        self.use(loaded.model, task)


class TranslatorSource(ModelSource):
    """A translate-only plug-in (no ``train_step``): evaluated as it is."""

    kind = "translator"

    def __init__(self, name: str, model: str, cfg: Any, device: torch.device) -> None:
        super().__init__(name, device)
        self.model_name, self.cfg = model, cfg

    def prepare(self, task: Task) -> None:
        self.use(translator_class(self.model_name)(task.domains, self.cfg), task)


# ------------------------------------------------------------------------------------------------ folders
def _find(folder: Path, name: str) -> Optional[Path]:
    """``name`` in ``folder``, or the same stem as PNG or JPEG."""
    exact = folder / name
    if exact.is_file():
        return exact
    stem = Path(name).stem
    for suffix in IMAGE_SUFFIXES:
        for cand in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if cand.is_file():
                return cand
    return None


class FolderSource(Source):
    """Translations made elsewhere: one image per task cell, named as ``tasks.csv``'s ``output`` column.

    ``prepare`` reads every file once, before anything is trained: a missing, unreadable or corrupt image fails
    the run there (all of them named), so no table is ever made from a half-read folder."""

    kind = "folder"

    def __init__(self, folder: Path) -> None:
        super().__init__(folder.name)
        self.folder = folder
        self.resized = 0
        self.conversions: list[str] = []
        self.files: dict[tuple[int, int], Path] = {}

    def prepare(self, task: Task) -> None:
        """Every asked cell must have its file, and every file must be a readable image: the error counts the
        missing ones and names the first few, or names each file that cannot be read and why."""
        if self.files:
            return
        if not self.folder.is_dir():
            raise StarbenchError(f"translations folder {self.folder} does not exist")
        missing: list[str] = []
        for i, t in task.cells():
            path = _find(self.folder, task.output_name(i, t))
            if path is None:
                missing.append(task.output_name(i, t))
            else:
                self.files[(i, t)] = path
        if missing and not self.files:
            raise StarbenchError(f"translations folder {self.folder} holds none of the {len(missing)} images the task "
                                 f"names (e.g. {missing[0]}); write them as `starbench export "
                                 f"protocol={task.protocol}` "
                                 f"says (tasks.csv, column 'output')")
        if missing:
            total = len(missing) + len(self.files)
            raise StarbenchError(f"translations folder {self.folder}: {len(missing)} of {total} "
                                 f"translations are missing: {', '.join(missing[:5])}"
                                 + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
        bad = []
        for path in self.files.values():
            try:
                self.conversions += read_rgb(path).notes
            except StarbenchError as exc:
                bad.append(str(exc))
        if bad:
            self.files = {}
            raise StarbenchError(f"translations folder {self.folder}: {len(bad)} image(s) cannot be used:\n  "
                                 + "\n  ".join(bad))
        self.info.update({"folder": self.folder.name, "images": len(self.files)})

    def column(self, task: Task, t: int) -> torch.Tensor:
        rows = task.rows_of(t)
        out = torch.empty((len(rows), 3, task.size, task.size), dtype=torch.uint8)
        for k, i in enumerate(rows):
            out[k] = torch.from_numpy(self._read(self.files[(int(i), t)], task.size))
        return out

    def _read(self, path: Path, size: int) -> np.ndarray:
        rgb = read_rgb(path).image
        if rgb.size != (size, size):
            self.resized += 1
            rgb = rgb.resize((size, size), Image.BILINEAR)
        return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1))

    def release(self) -> None:
        if self.resized:
            self.notes.append(f"{self.name}: {self.resized} translation(s) were not of the protocol's size and were "
                              f"resized (bilinear) to it.")
        if self.conversions:
            self.notes.append(f"{self.name}: read as 8-bit RGB: {'; '.join(summarize_notes(self.conversions))}.")
        self.info["resized"] = self.resized


# ------------------------------------------------------------------------------------------------ from config
def parse_method(spec: str) -> tuple[str, Optional[Path]]:
    """'stargan' -> ('stargan', None); 'stargan@/w/200000-G.ckpt' -> ('stargan', Path(...))."""
    model, sep, path = str(spec).partition("@")
    if sep and not path:
        raise StarbenchError(f"models: '{spec}' names no file after '@' (expected NAME@PATH)")
    return model, (Path(path).expanduser() if sep else None)


def seeds_of(cfg: Any) -> list[int]:
    """The training seeds: ``seeds=[...]``, else ``seed`` alone."""
    return [int(s) for s in cfg.seeds] if cfg.seeds is not None else [int(cfg.seed)]


def curve_every(cfg: Any, model: str) -> Optional[int]:
    """The learning-curve spacing of ``model``: ``curve_model_every.<name>``, else ``curve_every``, else its steps
    divided by ``curve_points`` (None: no curve)."""
    name = section_of(model)
    if name in cfg.curve_model_every:
        return int(cfg.curve_model_every[name])
    if cfg.curve_every:
        return int(cfg.curve_every)
    if cfg.curve_points:
        return max(1, steps_of(cfg, model) // int(cfg.curve_points))
    return None


def training_delta(cfg: Any, seed: int, model: str) -> dict[str, Any]:
    """What a trained method's config adds to the protocol's: its seed, and kept checkpoints for a curve."""
    delta: dict[str, Any] = {"seed": seed}
    every = curve_every(cfg, model)
    if every:
        delta["train"] = {"keep_every": int(every)}
    return delta


def check_curve(cfg: Any, model: str) -> None:
    """The curve spacing must be positive and leave at least one kept checkpoint before ``model``'s training ends."""
    every = curve_every(cfg, model)
    steps = steps_of(cfg, model)
    key = "curve_model_every" if section_of(model) in cfg.curve_model_every else "curve_every"
    if every is not None and every < 1:
        raise StarbenchError(f"config key '{key}': {every} for {model}; expected a positive number of training steps")
    if every and not cfg.train.epochs and every >= steps:
        raise StarbenchError(f"config key '{key}': {every} is not shorter than the training of {model} ({steps} "
                             f"steps): no checkpoint would be kept for its learning curve (curve_model_every."
                             f"{model}=N sets another spacing for it)")


def check_methods(cfg: Any) -> None:
    """Fail before any work: unknown models, missing weight files, nothing to score, a curve with no points."""
    if not cfg.models and not cfg.translations:
        raise StarbenchError("config keys 'models' and 'translations' are both empty; give e.g. models=[stargan] or "
                             "translations=[DIR]")
    for spec in cfg.models:
        model, path = parse_method(spec)
        cls = translator_class(model)  # unknown names and classes that miss the interface fail here
        if path is not None and not path.is_file():
            raise StarbenchError(f"models: weights file {path} (from '{spec}') does not exist")
        if path is not None:
            refuse_unsafe(path)
        if path is None and is_trainable(cls):
            check_curve(cfg, model)
    for folder in cfg.translations:
        if not Path(folder).is_dir():
            raise StarbenchError(f"translations: folder {folder} does not exist")


def refuse_unsafe(path: Path) -> None:
    """A weights file that asks for code is refused before any work; one that is not a torch file at all is left to
    its model class's ``load`` (a plug-in may read its own format)."""
    try:
        load_torch(path, "weights file")
    except UnsafeFile:
        raise
    except StarbenchError:
        pass


def count_sources(cfg: Any) -> int:
    """How many sources ``sources_from_config`` makes: a trained method once per seed, the others once."""
    n = len(cfg.translations)
    for spec in cfg.models:
        model, path = parse_method(spec)
        n += len(seeds_of(cfg)) if path is None and is_trainable(translator_class(model)) else 1
    return n


def sources_from_config(cfg: Any, fingerprint: str, device: torch.device) -> list[Source]:
    """One source per ``models=[...]`` entry, then one per ``translations=[...]`` folder."""
    check_methods(cfg)
    out: list[Source] = []
    for spec in cfg.models:
        model, path = parse_method(spec)
        if path is not None:
            out.append(FileSource(f"{model}@{path.name}", model, path, cfg, device))
        elif is_trainable(translator_class(model)):
            out += [TrainedSource(model, model, cfg, training_delta(cfg, seed, model), fingerprint, device)
                    for seed in seeds_of(cfg)]
        else:
            out.append(TranslatorSource(model, model, cfg, device))
    out += [FolderSource(Path(folder).expanduser()) for folder in cfg.translations]
    rows = [(s.name, s.seed) for s in out]  # a trained method has one source per seed, in one row of the tables
    kinds = {s.name: set() for s in out}
    for s in out:
        kinds[s.name].add(s.kind)
    dup = sorted({n for n, seed in rows if rows.count((n, seed)) > 1} | {n for n, k in kinds.items() if len(k) > 1})
    if dup:
        raise StarbenchError(f"two methods would share the table row '{dup[0]}' (models=[...] / translations=[...]); "
                             f"rename a folder or file so that every row has its own name")
    return out


def trained_jobs(cfg: Any) -> list[TrainedSource]:
    """The trained sources of ``models=[...]`` (every seed) on the configured data, from its file list alone: what
    ``starbench plan`` lists for a protocol that trains its ``models``."""
    return [s for s in sources_from_config(cfg, index_fingerprint(cfg), torch.device("cpu"))
            if isinstance(s, TrainedSource)]
