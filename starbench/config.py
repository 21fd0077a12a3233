"""Configuration: the common schema, its scale presets, the models' own options, and ``key=value`` settings.

Every default is here or in the model it belongs to. Resolution order is defaults < scale preset <
settings. The schema is an OmegaConf structured config, so a misspelt key or a badly typed value is
caught before anything runs and reported as a ``StarbenchError`` naming the key (with the closest
valid keys, or the expected type).

The common sections (data, train, classifier, fid, ...) are declared here. A model's options are
declared by the model class itself (``options``: a dataclass; ``presets``: its settings per scale;
``steps``: its training steps per scale, or per scale and dataset as ``"demo/celeba"``), and the schema
gets one section per model, named by the model's ``name``: ``stargan.g_lr=2e-4`` for a built-in,
``tiny.width=64`` for a plug-in class ``my_lab.models:Tiny`` that declares ``name = "tiny"``. A plug-in
named in ``model=`` or ``models=[...]`` joins the schema before the settings are read.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from starbench.errors import StarbenchError
from starbench.registry import DATASETS, MODELS, PROTOCOLS

CELEBA_DEFAULT_ATTRIBUTES = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
SCALES = ("smoke", "demo", "paper")


@dataclass
class DataConfig:
    """Which dataset to read and how to preprocess it (the paper's datasets and preprocessing, Section 5)."""

    name: str = "rafd"  # rafd | celeba | folder | joint (see `starbench list`)
    root: Optional[str] = None  # absent: the built-in synthetic set, generated once into cache_dir
    image_size: int = 128  # side of the square network input, pixels
    crop: Optional[list[int]] = None  # [left, top, width, height] in source pixels; absent: dataset default
    split: str = "standard"  # celeba: standard (partition file) | stargan (seed-1234 shuffle, 1,999 test)
    split_by: str = "subject"  # rafd/folder random split unit: subject | image
    test_fraction: float = 0.1  # rafd/folder: share held out for test
    split_seed: int = 1234  # seed of the rafd/folder split
    attributes: list[str] = field(default_factory=lambda: list(CELEBA_DEFAULT_ATTRIBUTES))
    angles: list[str] = field(default_factory=lambda: ["045", "090", "135"])  # rafd camera angles kept
    max_images: Optional[int] = None  # cap per split after splitting (smoke runs); absent: all
    batch_size: int = 16
    workers: int = 2  # threads that decode images when the decoded cache is built
    synth_subjects: int = 67  # synthetic RaFD subjects when no root is given
    synth_celeba_images: int = 2000  # synthetic CelebA images when no root is given
    synth_size: int = 256  # side of the synthetic RaFD images (already face-cropped)
    celeba_root: Optional[str] = None  # data=joint: the CelebA folder (absent: synthetic)
    rafd_root: Optional[str] = None  # data=joint: the RaFD folder (absent: synthetic)


@dataclass
class TrainConfig:
    """The Trainer's loop: length, schedule, logging, checkpoints, speed switches."""

    steps: int = 200000  # iterations; one iteration = one D step (the paper's n_critic counting)
    model_steps: dict[str, int] = field(default_factory=dict)  # per-model steps by model name, e.g. {cyclegan: 300}
    epochs: Optional[float] = None  # when set, steps = epochs x (train images // batch size)
    decay_start: Optional[int] = None  # constant lr until this step, then linear to exactly 0; absent: decay_from
    decay_from: float = 0.5  # else: the share of a model's steps after which its lr falls linearly to 0 (1.0: constant)
    # per-model shares, by model name, e.g. {diat: 1.0} (a model's ``decay_from`` preset); before both the above
    model_decay_from: dict[str, float] = field(default_factory=dict)
    # per-model batch size by model name, e.g. {icgan: 32} (a model's ``batch_size`` preset); else data.batch_size
    model_batch_size: dict[str, int] = field(default_factory=dict)
    log_every: int = 10  # loss log line every N steps
    checkpoint_every: int = 1000  # also at the end and on Ctrl-C / SIGTERM
    sample_every: int = 1000  # sample grid PNG every N steps (0: only at the end)
    sample_images: int = 8  # test images in a sample grid
    resume: bool = True  # continue from the run folder's checkpoint when there is one
    amp: Optional[bool] = None  # bf16 autocast (losses and the gradient penalty stay fp32); absent: the device default
    channels_last: Optional[bool] = None  # channels_last memory format; absent: the device default
    progress: bool = True  # rich progress bar
    # TensorBoard event files in the run folder; absent: on if tensorboard is installed
    tensorboard: Optional[bool] = None
    # seconds to wait for a run folder another process is training; absent: no limit
    lock_timeout: Optional[float] = None
    keep_every: Optional[int] = None  # also keep the networks every N steps in kept/ (learning curves); absent: no
    # two-domain baselines: true grouped networks, false each alone; absent: DIAT's F shared
    pack: Optional[bool] = None
    # keep a running average of the translating networks' weights over about this share of the last steps (0.1:
    # the last 10%; train/averaging.py); absent: none. It never feeds back into training.
    ema_window: Optional[float] = None


@dataclass
class ClassifierConfig:
    """The protocols' ResNet-18 classifier (expressions / attributes), trained from scratch."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0  # the classifier's own seed: the same classifier judges every training seed
    members: int = 1  # an ensemble of N ResNet-18s (seeds seed .. seed+N-1) judging by their mean probability


@dataclass
class FIDConfig:
    """FID settings; see starbench/metrics/fid.py for how the Inception weights are found."""

    weights: Optional[str] = None  # Inception weights file; else $STARBENCH_INCEPTION_WEIGHTS, hub cache, download
    required: bool = False  # no weights: error instead of "n/a"
    download: bool = True  # let torch-fidelity download the weights when none are found
    download_timeout: float = 20.0  # seconds before a download attempt gives up
    check_hash: bool = True  # the file's sha256 must be the standard weights' (6726825d...)
    batch_size: int = 64


@dataclass
class MetricsConfig:
    """Distribution metrics beside FD: KID and precision/recall (starbench/metrics/distances.py), one more extractor."""

    extractor: Optional[str] = None  # one more torch-fidelity feature extractor for FD and KID columns (clip-vit-b-32)
    extractor_weights: Optional[str] = None  # its weights file (absent: torch-fidelity's own, which may download)
    kid_subsets: int = 100  # random subsets KID is averaged over (mean ± sd)
    kid_subset_size: int = 1000  # at most; at small N, half the smaller set
    min_images: int = 8  # fewer images in a set: KID, precision and recall are n/a (FD needs 2)
    prc_neighborhood: int = 3  # k nearest neighbours of precision and recall


@dataclass
class Config:
    """The whole resolved configuration of one command."""

    protocol: Optional[str] = None
    model: str = "stargan"
    scale: str = "demo"  # smoke | demo | paper
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pair: Optional[str] = None  # two-domain models: train/use only this pair, e.g. neutral,happy
    models: list[str] = field(default_factory=lambda: ["stargan", "diat", "cyclegan", "icgan"])  # compared by protocols
    translations: list[str] = field(default_factory=list)  # folders of translations made elsewhere (starbench export)
    seeds: Optional[list[int]] = None  # train every method once per seed; tables give mean ± sd; absent: `seed` alone
    curve_every: Optional[int] = None  # learning curves: evaluate a kept checkpoint every N training steps
    curve_model_every: dict[str, int] = field(default_factory=dict)  # per-model curve_every, e.g. {cyclegan: 24}
    # learning curves of evenly spaced points: each trained method keeps this many checkpoints over its training
    # (spacing: its steps // curve_points), enough for the plateau test (evaluate/curves.py); curve_every wins
    curve_points: Optional[int] = None
    # curve points score the distribution metrics too (FD, KID, precision/recall; slower) besides the error and L1
    curve_distances: bool = False
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    fid: FIDConfig = field(default_factory=FIDConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    grid_inputs: int = 4  # input rows in translations.png
    # what trained methods translate with: "average" (their weight average, when the run kept one: train.ema_window)
    # or "last" (the last weights, as the paper's code does)
    generator_weights: str = "average"
    run_dir: str = "runs"
    results_dir: str = "results"
    cache_dir: Optional[str] = None  # absent: $STARBENCH_CACHE or ~/.cache/starbench
    device: str = "auto"  # auto | cpu | cuda
    # protocols: train their runs in this many processes at once, each with cores // jobs threads (1: one after
    # another in this process with torch's default threads); absent: 2 at demo scale on a CPU with 2 or more cores
    # (a demo model cannot keep two cores busy), else 1; evaluate/parallel.py
    jobs: Optional[int] = None
    seed: int = 0


# Each preset is a partial config merged between the defaults and the user's settings; a model's own preset
# (its options and steps at that scale) is declared in the model's file and joins it (``preset``).
SCALE_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "data": {"image_size": 32, "max_images": 256, "synth_subjects": 12, "synth_celeba_images": 300,
                 "synth_size": 64, "batch_size": 8},
        "train": {"steps": 40, "log_every": 5, "checkpoint_every": 20, "sample_every": 20, "sample_images": 4},
        # enough for the judge to learn on the 256 smoke training images (real test error well below 7/8, chance)
        "classifier": {"epochs": 12, "lr": 3e-3, "batch_size": 32},
        "grid_inputs": 3,
    },
    "demo": {
        # 32 px and small networks, each method trained to its plateau (benchmarks/results/convergence/), its
        # weight average over the last 10% translating (as every method's: train/averaging.py), and 12 evenly
        # spaced curve points per method, 4 of them in the last quarter, for the table's plateau test
        "data": {"image_size": 32, "synth_subjects": 67, "synth_celeba_images": 2000, "synth_size": 128},
        # a constant learning rate: falling to 0 over the second half, StarGAN's, DIAT's and CycleGAN's errors rose
        # again at the end (benchmarks/results/convergence/*-constlr*)
        "train": {"steps": 3000, "log_every": 25, "checkpoint_every": 500, "sample_every": 500, "ema_window": 0.1,
                  "decay_from": 1.0},
        "curve_points": 12,
        # three judges: one ResNet-18's verdicts on translations move with its own seed by 2.3 points on average
        # (up to 9.5), about the test set's interval, and its real-image error by 0.4-2.4%; three together by 1.7
        # (up to 4.3) and 0.0-0.6% (benchmarks/results/judge_seeds/)
        "classifier": {"epochs": 8, "members": 3},
    },
    "paper": {
        "data": {"image_size": 128, "batch_size": 16, "synth_size": 256},
        "train": {"steps": 200000, "log_every": 100, "checkpoint_every": 10000, "sample_every": 10000},
    },
}

# Top-level keys and sections that shape only the evaluation (what is scored and how), never a trained model.
EVALUATION_ONLY = ("protocol", "models", "translations", "seeds", "curve_every", "curve_model_every", "curve_points",
                   "curve_distances", "results_dir", "grid_inputs", "classifier", "fid", "metrics",
                   "generator_weights")
# Where and how a run is done, not what it trains: also left out of run keys.
MACHINE_ONLY = ("run_dir", "device", "cache_dir", "jobs")
TRAIN_MACHINE_ONLY = ("progress", "tensorboard", "lock_timeout", "pack")

# Short forms: `data=rafd` means `data.name=rafd`.
SHORTHANDS = {"data": "data.name"}


def _flat_keys(node: Any, prefix: str = "") -> list[str]:
    keys = []
    for k in node.keys():
        full = f"{prefix}{k}"
        child = node[k] if not OmegaConf.is_missing(node, k) else None
        if isinstance(child, DictConfig):
            keys.extend(_flat_keys(child, full + "."))
        else:
            keys.append(full)
    return keys


# ------------------------------------------------------------------------------------------ models' own options
@dataclass(frozen=True)
class ModelSection:
    """A model's part of the schema: its section name, its options dataclass and its presets per scale."""

    name: str
    options: Optional[type]
    presets: dict[str, dict[str, Any]]
    steps: dict[str, int]
    decay_from: dict[str, float] = field(default_factory=dict)
    batch_size: dict[str, int] = field(default_factory=dict)


def model_section(spec: str) -> ModelSection:
    """The options section of model ``spec`` (a registered name or ``package.module:Class``; ``NAME@PATH``: the
    model NAME): named by the class's ``name`` (a registered model's is its registry name)."""
    cls = MODELS.get(str(spec).partition("@")[0])
    name = getattr(cls, "name", None)
    options = getattr(cls, "options", None)
    if not name:
        if options is not None:
            raise StarbenchError(f"model '{spec}' declares options but no name: give the class a name = '...' (the "
                                 f"config section of its options)")
        return ModelSection("", None, {}, {}, {})
    if options is not None and not dataclasses.is_dataclass(options):
        raise StarbenchError(f"model '{spec}': options must be a dataclass (got {options!r})")
    if name in {f.name for f in dataclasses.fields(Config)}:
        raise StarbenchError(f"model '{spec}' is named '{name}', which is a common config section: choose another name")
    steps = dict(getattr(cls, "steps", {}) or {})
    batch_size = dict(getattr(cls, "batch_size", {}) or {})
    decay_from = dict(getattr(cls, "decay_from", {}) or {})
    datasets = {*DATA_NAMES, *DATASETS.names()}
    for what, table in (("steps", steps), ("batch_size", batch_size), ("decay_from", decay_from)):
        for key in table:
            scale, _, data = str(key).partition("/")
            if scale not in SCALES or (data and data not in datasets):
                raise StarbenchError(f"model '{spec}': {what} key '{key}' is neither a scale ({', '.join(SCALES)}) "
                                     f"nor 'scale/dataset' with a dataset of {', '.join(sorted(datasets))}")
    return ModelSection(name, options, dict(getattr(cls, "presets", {}) or {}), steps, decay_from, batch_size)


def named_models(dotlist: Iterable[str], values: Optional[dict[str, Any]] = None) -> list[str]:
    """The models a command's settings name (``model=``, ``models=[...]``), as specs without ``@PATH``."""
    found: list[str] = []
    items = [d.split("=", 1) for d in dotlist] + [[k, v] for k, v in (values or {}).items()]
    for key, value in items:
        if key not in ("model", "models"):
            continue
        if isinstance(value, str):
            try:
                value = OmegaConf.to_container(OmegaConf.from_dotlist([f"v={value}"]))["v"]
            except OmegaConfBaseException:
                continue
        for spec in (value if isinstance(value, (list, tuple)) else [value]):
            if spec:
                found.append(str(spec).partition("@")[0])
    return found


_SCHEMAS: dict[tuple[str, ...], type] = {}


def sections_for(specs: Iterable[str] = ()) -> list[ModelSection]:
    """Every registered model's section, plus those of the plug-in classes ``specs`` names, by name."""
    out: dict[str, ModelSection] = {}
    for spec in [*MODELS.names(), *specs]:
        section = model_section(spec)
        if section.name and section.options is not None:
            out.setdefault(section.name, section)
    return list(out.values())


def schema_for(specs: Iterable[str] = ()) -> type:
    """The whole schema: ``Config`` plus one section per model (every registered one and the plug-ins in ``specs``)."""
    sections = sections_for(specs)
    key = tuple(f"{s.name}={s.options.__module__}.{s.options.__qualname__}" for s in sections)  # type: ignore[union-attr]
    if key not in _SCHEMAS:
        fields = [(s.name, s.options, field(default_factory=s.options)) for s in sections]
        _SCHEMAS[key] = dataclasses.make_dataclass("Config", fields, bases=(Config,))
    return _SCHEMAS[key]


def preset(scale: str, specs: Iterable[str] = (), data: Optional[str] = None) -> dict[str, Any]:
    """The scale preset: the common one, each model's options at that scale and its training steps, learning-rate
    schedule and batch size there (on ``data``, where the model's ``steps``, ``decay_from`` or ``batch_size`` names
    that dataset: ``{"demo": 320, "demo/celeba": 960}``)."""
    out = copy.deepcopy(SCALE_PRESETS[scale])
    train = {"model_steps": ("steps", int), "model_batch_size": ("batch_size", int),
             "model_decay_from": ("decay_from", float)}
    for section in sections_for(specs):
        if section.presets.get(scale):
            out[section.name] = dict(section.presets[scale])
        for key, (budget, kind) in train.items():
            value = _at(getattr(section, budget), scale, data)
            if value is not None:
                out.setdefault("train", {}).setdefault(key, {})[section.name] = kind(value)
    return out


def _at(table: dict[str, Any], scale: str, data: Optional[str]) -> Any:
    """A model's per-scale value: the dataset's own (``"demo/celeba"``) before the scale's (``"demo"``), else None."""
    return table.get(f"{scale}/{data}", table.get(scale))


def valid_keys(schema: Any = None) -> list[str]:
    """Every dotted key the schema accepts, for error messages and documentation."""
    return _flat_keys(OmegaConf.structured(schema or schema_for()))


def _closest(key: str, keys: list[str]) -> list[str]:
    """Up to three valid keys that look like ``key`` (whole dotted key, or its last part)."""
    close = difflib.get_close_matches(key, keys, n=3, cutoff=0.5)
    by_leaf: dict[str, list[str]] = {}
    for k in keys:
        by_leaf.setdefault(k.rsplit(".", 1)[-1], []).append(k)
    for leaf in difflib.get_close_matches(key.rsplit(".", 1)[-1], list(by_leaf), n=3, cutoff=0.6):
        close += [k for k in by_leaf[leaf] if k not in close]
    return close[:3]


def parse_overrides(args: Iterable[str]) -> list[str]:
    """Check the ``key=value`` form and expand shorthands; returns an OmegaConf dotlist."""
    out = []
    for arg in args:
        if "=" not in arg:
            raise StarbenchError(f"argument '{arg}': expected key=value (for example scale=smoke)")
        key, value = arg.split("=", 1)
        key = key.strip()
        if not key:
            raise StarbenchError(f"argument '{arg}': empty key before '='")
        out.append(f"{SHORTHANDS.get(key, key)}={value}")
    return out


def _nested(key: str, value: Any) -> dict[str, Any]:
    """'train.steps', 10 -> {'train': {'steps': 10}}."""
    out: Any = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


def _merge_setting(cfg: DictConfig, key: str, node: Any, shown: Any, schema_keys: list[str], schema: Any
                   ) -> DictConfig:
    """Merge one setting (``node``: a parsed dotlist item or a nested dict) with errors that name the key."""
    try:
        return OmegaConf.merge(cfg, node)
    except (ConfigKeyError, ConfigAttributeError) as exc:
        close = _closest(key, schema_keys)
        hint = f"; closest valid keys: {', '.join(close)}" if close else ""
        raise StarbenchError(f"unknown config key '{key}'{hint} (all keys: `starbench run --dry-run`, a model's "
                             f"options: `starbench list model=NAME`)") from exc
    except ValidationError as exc:
        expected = _expected_type(key, schema)
        raise StarbenchError(f"config key '{key}': value '{shown}' is not a valid {expected}") from exc
    except OmegaConfBaseException as exc:  # pragma: no cover - other OmegaConf parse errors
        raise StarbenchError(f"config setting '{key}={shown}': {exc.msg if hasattr(exc, 'msg') else exc}") from exc


def _merge_dotlist(cfg: DictConfig, dotlist: list[str], schema_keys: list[str], schema: Any) -> DictConfig:
    for item in dotlist:
        key, value = item.split("=", 1)
        try:
            node = OmegaConf.from_dotlist([item])
        except OmegaConfBaseException as exc:
            raise StarbenchError(f"config setting '{item}': {exc.msg if hasattr(exc, 'msg') else exc}") from exc
        cfg = _merge_setting(cfg, key, node, value, schema_keys, schema)
    return cfg


def _expected_type(key: str, schema: Any = Config) -> str:
    """The declared type of a dotted key, as text for an error message."""
    node: Any = schema
    for part in key.split("."):
        hints = typing.get_type_hints(node) if dataclasses.is_dataclass(node) else {}
        if part not in hints:
            return "value"
        node = hints[part]
    inner = [a for a in typing.get_args(node) if a is not type(None)]
    if typing.get_origin(node) is typing.Union and len(inner) == 1:  # Optional[X]: X, the type a value must have
        node = inner[0]
    if typing.get_origin(node) is None and hasattr(node, "__name__"):
        return node.__name__
    return str(node).replace("typing.", "")


def resolve(overrides: Iterable[str] = (), base: Optional[dict] = None, values: Optional[dict[str, Any]] = None
            ) -> DictConfig:
    """Build the config: schema defaults < ``base`` < scale preset < settings.

    ``overrides``: ``key=value`` strings as on the command line; ``values``: the same as a {dotted key: Python
    value} mapping (the Python API), applied after them. ``base`` lets a command set its own defaults.
    """
    dotlist = parse_overrides(overrides)
    values = {SHORTHANDS.get(k, k): v for k, v in (values or {}).items()}
    specs = named_models(dotlist, values)
    schema = schema_for(specs)
    cfg = OmegaConf.structured(schema)
    keys = _flat_keys(cfg)
    if base:
        cfg = OmegaConf.merge(cfg, base)
    # The scale must be known before the preset is applied: look for it in the settings first.
    cfg = _merge_dotlist(cfg, [d for d in dotlist if d.split("=", 1)[0] == "scale"], keys, schema)
    if "scale" in values:
        cfg = _merge_setting(cfg, "scale", {"scale": values["scale"]}, values["scale"], keys, schema)
    if cfg.scale not in SCALES:
        raise StarbenchError(f"config key 'scale': '{cfg.scale}' is not one of {', '.join(SCALES)}")
    cfg = OmegaConf.merge(cfg, preset(cfg.scale, specs, _dataset_named(cfg, dotlist, values)))
    cfg = _merge_dotlist(cfg, dotlist, keys, schema)
    for key, value in values.items():
        cfg = _merge_setting(cfg, key, _nested(key, value), value, keys, schema)
    if cfg.protocol:
        given = [d.split("=", 1)[1] for d in dotlist if d.split("=", 1)[0] == "data.name"]
        _protocol_data(cfg, given + ([values["data.name"]] if "data.name" in values else []))
    check(cfg)
    return cfg


def check(cfg: DictConfig) -> None:
    """Values each of the right type but wrong together or out of range."""
    if cfg.device not in ("auto", "cpu", "cuda") and not str(cfg.device).startswith("cuda:"):
        raise StarbenchError(f"config key 'device': '{cfg.device}' is not one of auto, cpu, cuda")
    if cfg.data.image_size < 8:
        raise StarbenchError(f"config key 'data.image_size': {cfg.data.image_size} is too small (at least 8)")
    if not 0.0 < cfg.data.test_fraction < 1.0:
        raise StarbenchError(f"config key 'data.test_fraction': {cfg.data.test_fraction} must lie in (0, 1)")
    if cfg.seeds is not None:
        if not cfg.seeds:
            raise StarbenchError("config key 'seeds': an empty list; give at least one seed, e.g. seeds=[0,1,2], or "
                                 "leave it out for one run with `seed`")
        repeated = sorted({s for s in cfg.seeds if list(cfg.seeds).count(s) > 1})
        if repeated:
            raise StarbenchError(f"config key 'seeds': seed {repeated[0]} is given twice; each seed trains once")
    if cfg.generator_weights not in ("average", "last"):
        raise StarbenchError(f"config key 'generator_weights': '{cfg.generator_weights}' is not one of average, last")
    window = cfg.train.ema_window
    if window is not None and not 0.0 < window <= 1.0:
        raise StarbenchError(f"config key 'train.ema_window': {window}; expected a share of the steps in (0, 1]")
    shares = {"decay_from": cfg.train.decay_from, **{f"model_decay_from.{name}": share for name, share in
                                                   (OmegaConf.select(cfg, "train.model_decay_from") or {}).items()}}
    for key, share in shares.items():
        if not 0.0 <= share <= 1.0:
            raise StarbenchError(f"config key 'train.{key}': {share}; expected a share of the model's steps in "
                                 f"[0, 1] (1.0: a constant learning rate)")
    sizes = {"data.batch_size": cfg.data.batch_size, **{f"train.model_batch_size.{name}": size for name, size in
                                                       (OmegaConf.select(cfg, "train.model_batch_size") or {}).items()}}
    for key, size in sizes.items():
        if size < 1:
            raise StarbenchError(f"config key '{key}': {size}; expected a batch of 1 or more images")
    if cfg.classifier.members < 1:
        raise StarbenchError(f"config key 'classifier.members': {cfg.classifier.members}; expected 1 or more "
                             f"classifiers in the judging ensemble")
    if cfg.jobs is not None and cfg.jobs < 1:
        raise StarbenchError(f"config key 'jobs': jobs={cfg.jobs}: expected a whole number of processes, 1 or more")
    for key in ("curve_every", "curve_points", "train.keep_every"):
        value = OmegaConf.select(cfg, key)
        if value is not None and value < 1:
            raise StarbenchError(f"config key '{key}': {value}; expected a positive number of training steps")


DATA_NAMES = {"rafd": "RaFD", "celeba": "CelebA", "joint": "CelebA and RaFD together", "folder": "a folder of domains"}


def _dataset_named(cfg: DictConfig, dotlist: list[str], values: dict[str, Any]) -> str:
    """The dataset the settings will train on, before they are merged (a model's steps preset may depend on it):
    the protocol's own, else the last ``data.name`` given, else the default's."""
    settings = dict(d.split("=", 1) for d in dotlist)
    settings.update({k: v for k, v in values.items() if k in ("protocol", "data.name")})
    protocol = settings.get("protocol") or cfg.protocol
    needs = getattr(PROTOCOLS.get(protocol), "data", None) if protocol and protocol in PROTOCOLS else None
    return str(needs or settings.get("data.name") or cfg.data.name)


def _protocol_data(cfg: DictConfig, given: list[str]) -> None:
    """A protocol picks its own dataset: ``data.name`` is set to it; an explicit different ``data=`` is an error."""
    needs = getattr(PROTOCOLS.get(cfg.protocol), "data", None)
    if not needs:
        return
    if given and given[-1] != needs:
        raise StarbenchError(f"protocol {cfg.protocol} runs on {DATA_NAMES.get(needs, needs)} (data={needs}); got "
                             f"data={given[-1]}: leave data= out and the protocol picks its dataset"
                             + (" (data.celeba_root and data.rafd_root point at your copies)" if needs == "joint" else
                                " (data.root points at your copy)"))
    cfg.data.name = needs


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def cache_dir(cfg: Optional[DictConfig] = None) -> Path:
    """Where decoded images, synthetic sets and other caches live."""
    explicit = cfg.cache_dir if cfg is not None else None
    path = explicit or os.environ.get("STARBENCH_CACHE") or Path.home() / ".cache" / "starbench"
    return Path(path).expanduser()
