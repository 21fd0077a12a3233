"""Configuration: dataclass schema, scale presets and ``key=value`` overrides.

Resolution order is defaults < scale preset < overrides. The schema is an OmegaConf structured
config, so a misspelt key or a badly typed value is caught before anything runs and reported as
a ``StarbenchError`` naming the key (with the closest valid keys, or the expected type).
"""
from __future__ import annotations

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

CELEBA_DEFAULT_ATTRIBUTES = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
SCALES = ("smoke", "demo", "paper")


@dataclass
class DataConfig:
    """Which dataset to read and how to preprocess it (REFERENCE §2, §6)."""

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

    steps: int = 200000  # iterations; one iteration = one D step (REFERENCE §2)
    model_steps: dict[str, int] = field(default_factory=dict)  # per-model overrides of steps, e.g. {cyclegan: 300}
    epochs: Optional[float] = None  # when set, steps = epochs x (train images // batch size)
    decay_start: Optional[int] = None  # constant lr until here, then linear to exactly 0; absent: steps // 2
    log_every: int = 10  # loss log line every N steps
    checkpoint_every: int = 1000  # also at the end and on Ctrl-C / SIGTERM
    sample_every: int = 1000  # sample grid PNG every N steps (0: only at the end)
    sample_images: int = 8  # test images in a sample grid
    resume: bool = True  # continue from the run folder's checkpoint when there is one
    amp: Optional[bool] = None  # bf16 autocast (losses and the gradient penalty stay fp32); absent: the device default
    channels_last: Optional[bool] = None  # channels_last memory format; absent: the device default
    progress: bool = True  # rich progress bar
    tensorboard: Optional[bool] = None  # TensorBoard event files in the run folder; absent: on if tensorboard is installed
    lock_timeout: Optional[float] = None  # seconds to wait for a run folder another process is training; absent: no limit
    keep_every: Optional[int] = None  # also keep the networks every N steps in kept/ (learning curves); absent: no
    pack: Optional[bool] = None  # two-domain baselines: true grouped networks, false each alone; absent: DIAT's F shared


@dataclass
class StarGANConfig:
    """StarGAN's networks and losses (REFERENCE §1-2); defaults are the paper's."""

    g_conv_dim: int = 64
    g_repeat: int = 6  # residual blocks in G's bottleneck
    d_conv_dim: int = 64
    d_repeat: int = 6  # strided conv layers in D (image_size / 2**d_repeat is the patch map side)
    lambda_cls: float = 1.0
    lambda_rec: float = 10.0
    lambda_gp: float = 10.0
    n_critic: int = 5  # one G step every n_critic D steps
    g_lr: float = 1e-4
    d_lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    gp_fp32: bool = True  # compute the gradient penalty outside mixed precision
    compile_g: bool = True  # torch.compile G (CUDA only; ignored on CPU)
    compile_d: bool = False  # torch.compile D for the adversarial passes (CUDA only; the penalty stays eager)


@dataclass
class CycleGANConfig:
    """CycleGAN as the paper ran it (REFERENCE §5): ResNet G, StarGAN-style PatchGAN D without class head."""

    g_conv_dim: int = 64
    g_blocks: int = 6  # residual blocks (6 at 128 px)
    d_conv_dim: int = 64
    d_repeat: int = 6
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5  # times lambda_cycle; 0 disables the identity loss
    pool_size: int = 50  # image pool of earlier fakes shown to D
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999


@dataclass
class DIATConfig:
    """DIAT: one-directional transform G with adversarial loss and identity regulariser ||F(x) - F(G(x))||_1."""

    g_conv_dim: int = 64
    g_blocks: int = 6
    d_conv_dim: int = 64
    d_repeat: int = 6
    lambda_id: float = 1.0  # weight of the identity regulariser (mean absolute feature difference)
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    identity_weights: Optional[str] = None  # your own F: a torchvision ResNet-18 state dict; absent: trained here
    identity_epochs: int = 10  # epochs of the subject-identity ResNet-18 trained when no weights are given


@dataclass
class IcGANConfig:
    """IcGAN: conditional DCGAN G(z, y) with encoders E_z and E_y; editing x' = G(E_z(x), y')."""

    z_dim: int = 100
    g_conv_dim: int = 64  # G's last hidden width; it doubles per layer towards the 4x4 input
    d_conv_dim: int = 64
    e_conv_dim: int = 64  # encoders' first width
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_ez: float = 1.0  # E_z regression loss weight (on generated pairs)
    lambda_ey: float = 1.0  # E_y classification loss weight (on real images)


@dataclass
class ClassifierConfig:
    """The protocols' ResNet-18 classifier (expressions / attributes), trained from scratch."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0  # the classifier's own seed: the same classifier judges every training seed


@dataclass
class FIDConfig:
    """FID settings (REFERENCE §7); see starbench/metrics/fid.py for how the weights are found."""

    weights: Optional[str] = None  # Inception weights file; else $STARBENCH_INCEPTION_WEIGHTS, hub cache, download
    required: bool = False  # no weights: error instead of "n/a"
    download: bool = True  # let torch-fidelity download the weights when none are found
    download_timeout: float = 20.0  # seconds before a download attempt gives up
    check_hash: bool = True  # the file's sha256 must be the standard weights' (6726825d...)
    batch_size: int = 64


@dataclass
class Config:
    """The whole resolved configuration of one command."""

    protocol: Optional[str] = None
    model: str = "stargan"
    scale: str = "demo"  # smoke | demo | paper
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    stargan: StarGANConfig = field(default_factory=StarGANConfig)
    cyclegan: CycleGANConfig = field(default_factory=CycleGANConfig)
    diat: DIATConfig = field(default_factory=DIATConfig)
    icgan: IcGANConfig = field(default_factory=IcGANConfig)
    pair: Optional[str] = None  # two-domain models: train/use only this pair, e.g. neutral,happy
    models: list[str] = field(default_factory=lambda: ["stargan", "diat", "cyclegan", "icgan"])  # compared by protocols
    translations: list[str] = field(default_factory=list)  # folders of translations made elsewhere (starbench export)
    seeds: Optional[list[int]] = None  # train every method once per seed; tables give mean ± sd; absent: `seed` alone
    curve_every: Optional[int] = None  # learning curves: evaluate a kept checkpoint every N training steps
    curve_model_every: dict[str, int] = field(default_factory=dict)  # per-model curve_every, e.g. {cyclegan: 24}
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    fid: FIDConfig = field(default_factory=FIDConfig)
    grid_inputs: int = 4  # input rows in translations.png
    run_dir: str = "runs"
    results_dir: str = "results"
    cache_dir: Optional[str] = None  # absent: $STARBENCH_CACHE or ~/.cache/starbench
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 0


# Each preset is a partial config merged between the defaults and the user's overrides.
SCALE_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "data": {"image_size": 32, "max_images": 256, "synth_subjects": 12, "synth_celeba_images": 300,
                 "synth_size": 64, "batch_size": 8},
        "train": {"steps": 40, "log_every": 5, "checkpoint_every": 20, "sample_every": 20, "sample_images": 4},
        "stargan": {"g_conv_dim": 16, "g_repeat": 2, "d_conv_dim": 16, "d_repeat": 4},
        "cyclegan": {"g_conv_dim": 8, "g_blocks": 1, "d_conv_dim": 8, "d_repeat": 4, "pool_size": 8},
        "diat": {"g_conv_dim": 8, "g_blocks": 1, "d_conv_dim": 8, "d_repeat": 4, "identity_epochs": 1},
        "icgan": {"g_conv_dim": 16, "d_conv_dim": 16, "e_conv_dim": 8},
        "classifier": {"epochs": 2},
        "grid_inputs": 3,
    },
    "demo": {
        # 32 px and one learning rate (5e-4) for every method, so that each learns within a few minutes of CPU;
        # steps per method give each a similar wall-clock budget (two-domain methods train 7 instances per step).
        "data": {"image_size": 32, "synth_subjects": 67, "synth_celeba_images": 2000, "synth_size": 128},
        "train": {"steps": 1200, "log_every": 25, "checkpoint_every": 400, "sample_every": 400,
                  "model_steps": {"cyclegan": 72, "diat": 160}},
        "stargan": {"g_conv_dim": 32, "g_repeat": 3, "d_conv_dim": 32, "d_repeat": 4, "g_lr": 5e-4, "d_lr": 5e-4},
        "cyclegan": {"g_conv_dim": 16, "g_blocks": 2, "d_conv_dim": 32, "d_repeat": 4, "lr": 5e-4},
        "diat": {"g_conv_dim": 16, "g_blocks": 2, "d_conv_dim": 32, "d_repeat": 4, "lr": 5e-4, "identity_epochs": 2},
        "icgan": {"g_conv_dim": 32, "d_conv_dim": 32, "e_conv_dim": 32, "lr": 5e-4},
        "classifier": {"epochs": 8},
    },
    "paper": {
        "data": {"image_size": 128, "batch_size": 16, "synth_size": 256},
        "train": {"steps": 200000, "log_every": 100, "checkpoint_every": 10000, "sample_every": 10000},
    },
}

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


def valid_keys(schema: Any = Config) -> list[str]:
    """Every dotted key the schema accepts, for error messages and documentation."""
    return _flat_keys(OmegaConf.structured(schema))


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


def _merge_dotlist(cfg: DictConfig, dotlist: list[str], schema_keys: list[str], schema: Any) -> DictConfig:
    for item in dotlist:
        key, value = item.split("=", 1)
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([item]))
        except (ConfigKeyError, ConfigAttributeError) as exc:
            close = _closest(key, schema_keys)
            hint = f"; closest valid keys: {', '.join(close)}" if close else ""
            raise StarbenchError(f"unknown config key '{key}'{hint} (all keys: `starbench run --dry-run`)") from exc
        except ValidationError as exc:
            expected = _expected_type(key, schema)
            raise StarbenchError(f"config key '{key}': value '{value}' is not a valid {expected}") from exc
        except OmegaConfBaseException as exc:  # pragma: no cover - other OmegaConf parse errors
            raise StarbenchError(f"config override '{item}': {exc.msg if hasattr(exc, 'msg') else exc}") from exc
    return cfg


def _expected_type(key: str, schema: Any = Config) -> str:
    """The declared type of a dotted key, as text for an error message."""
    node: Any = schema
    for part in key.split("."):
        hints = typing.get_type_hints(node) if dataclasses.is_dataclass(node) else {}
        if part not in hints:
            return "value"
        node = hints[part]
    text = getattr(node, "__name__", None) or str(node).replace("typing.", "")
    if text.startswith("Optional["):
        text = text[len("Optional["):-1]
    return text


def resolve(overrides: Iterable[str] = (), base: Optional[dict] = None, schema: Any = Config) -> DictConfig:
    """Build the config: schema defaults < ``base`` < scale preset < overrides.

    ``base`` lets a command set its own defaults (``starbench data synth`` for example).
    """
    dotlist = parse_overrides(overrides)
    cfg = OmegaConf.structured(schema)
    keys = _flat_keys(cfg)
    if base:
        cfg = OmegaConf.merge(cfg, base)
    # The scale must be known before the preset is applied: look for it in the overrides first.
    scale_items = [d for d in dotlist if d.split("=", 1)[0] == "scale"]
    cfg = _merge_dotlist(cfg, scale_items, keys, schema)
    if cfg.scale not in SCALES:
        raise StarbenchError(f"config key 'scale': '{cfg.scale}' is not one of {', '.join(SCALES)}")
    cfg = OmegaConf.merge(cfg, SCALE_PRESETS[cfg.scale])
    cfg = _merge_dotlist(cfg, dotlist, keys, schema)
    if schema is Config and cfg.protocol:
        _protocol_data(cfg, [d.split("=", 1)[1] for d in dotlist if d.split("=", 1)[0] == "data.name"])
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
    for key in ("curve_every", "train.keep_every"):
        value = OmegaConf.select(cfg, key)
        if value is not None and value < 1:
            raise StarbenchError(f"config key '{key}': {value}; expected a positive number of training steps")
    return cfg


DATA_NAMES = {"rafd": "RaFD", "celeba": "CelebA", "joint": "CelebA and RaFD together", "folder": "a folder of domains"}


def _protocol_data(cfg: DictConfig, given: list[str]) -> None:
    """A protocol picks its own dataset: ``data.name`` is set to it; an explicit different ``data=`` is an error."""
    from starbench.registry import PROTOCOLS

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
