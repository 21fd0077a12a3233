"""The feature extractors of the distribution metrics: Inception (its weights found or explained) and the
protocol's classifier, registered with torch-fidelity (which computes every metric: ``metrics.distances``).

Inception weights are resolved in this order: ``fid.weights=PATH``, the environment variable
``STARBENCH_INCEPTION_WEIGHTS``, the torch hub cache file
(``$TORCH_HOME/hub/checkpoints/weights-inception-2015-12-05-6726825d.pth``), then torch-fidelity's own
download (``fid.download=true``). The file's sha256 must start with the hash in its name
(``6726825d``), the TensorFlow-ported weights that make FID comparable with published numbers;
``fid.check_hash=false`` accepts other weights, and the table then says the FID is not comparable.
With no weights to be had (offline), FID is reported as "n/a" and the protocol goes on, unless
``fid.required=true``.

Images go to torch-fidelity as uint8 tensors (``UInt8Images``: the same quantisation for real and
generated sets), and real-side features are cached under a key that includes a fingerprint of the
images (``images_fingerprint``), never their name alone.

The protocol's classifier is registered as the extractor ``starbench-classifier`` (its 512-d pooled
features): it needs no download, so every run reports distribution distances; they are not
comparable with Inception's.
"""
from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from starbench.errors import StarbenchError
from starbench.files import load_torch
from starbench.metrics.classifier import features, resnet18

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_SHA256_PREFIX = "6726825d"
CLASSIFIER_EXTRACTOR = "starbench-classifier"
ENV_WEIGHTS = "STARBENCH_INCEPTION_WEIGHTS"


class UInt8Images(Dataset):
    """A uint8 (N, 3, H, W) tensor as the Dataset torch-fidelity takes."""

    def __init__(self, images: torch.Tensor) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.size(1) != 3:
            raise ValueError(f"expected uint8 images of shape (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        self.images = images

    def __len__(self) -> int:
        return self.images.size(0)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def images_fingerprint(images: torch.Tensor) -> str:
    return hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class InceptionWeights:
    """Where the weights came from, or why there are none."""

    path: Optional[Path]
    source: str
    sha256: Optional[str] = None
    standard: bool = False  # the TF-ported weights FID is defined with
    problem: Optional[str] = None

    @property
    def available(self) -> bool:
        return self.path is not None

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path) if self.path else None, "source": self.source, "sha256": self.sha256,
                "standard": self.standard, "problem": self.problem}


def hub_cache_file() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


def _download(timeout: float) -> Optional[str]:
    """Let torch-fidelity's own loader fetch the weights into the hub cache; returns why not on failure."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        torch.hub.load_state_dict_from_url(URL_INCEPTION_V3, progress=False, check_hash=True)
        return None
    except Exception as exc:  # offline, refused, timed out, bad hash
        return f"download failed ({type(exc).__name__}: {str(exc)[:120]})"
    finally:
        socket.setdefaulttimeout(old)


def resolve_inception_weights(fid_cfg: Any) -> InceptionWeights:
    """Find the Inception weights (see the module docstring); raise for a file that is wrong, and for none at all
    with ``fid.required=true``: before any work."""
    candidates = [(fid_cfg.weights, "fid.weights"), (os.environ.get(ENV_WEIGHTS), f"${ENV_WEIGHTS}")]
    for value, source in candidates:
        if value:
            return _checked(Path(value).expanduser(), source, fid_cfg.check_hash)
    cached = hub_cache_file()
    if cached.is_file():
        return _checked(cached, "torch hub cache", fid_cfg.check_hash)
    if fid_cfg.download:
        problem = _download(fid_cfg.download_timeout)
        if problem is None and cached.is_file():
            return _checked(cached, "downloaded by torch-fidelity", fid_cfg.check_hash)
    else:
        problem = "download disabled (fid.download=false)"
    missing = InceptionWeights(None, "none", problem=f"no Inception weights (fid.weights=PATH): {problem}")
    if fid_cfg.required:
        raise StarbenchError(f"fid.required=true but {missing.problem}")
    return missing


def _checked(path: Path, source: str, check_hash: bool) -> InceptionWeights:
    if not path.is_file():
        raise StarbenchError(f"Inception weights {path} (from {source}) do not exist")
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise StarbenchError(f"Inception weights {path} (from {source}) cannot be read: {exc}") from exc
    standard = digest.startswith(INCEPTION_SHA256_PREFIX)
    if check_hash and not standard:
        raise StarbenchError(
            f"Inception weights {path} (from {source}) have sha256 {digest[:16]}..., expected one starting with "
            f"{INCEPTION_SHA256_PREFIX} ({INCEPTION_FILE}); give the right file, or fid.check_hash=false to use "
            f"these weights anyway (the FID is then not comparable with published numbers)")
    return InceptionWeights(path, source, digest, standard)


# ---------------------------------------------------------------------------------------------
# ---------------------------------------------------------------------------------------------
_EXTRACTOR_FILES: dict[tuple[str, int, int], dict[str, Any]] = {}


def _extractor_file(path: Path) -> dict[str, Any]:
    """The classifier extractor file, read once per process (torch-fidelity builds its extractor for every set it
    scores: a protocol run scores several per method); keyed by path, size and mtime, so a rewritten file is read
    again."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _EXTRACTOR_FILES:
        _EXTRACTOR_FILES.clear()
        _EXTRACTOR_FILES[key] = load_torch(path, "classifier feature extractor")
    return _EXTRACTOR_FILES[key]


class ClassifierFeatures(FeatureExtractorBase):
    """The protocol's ResNet-18 classifier as a torch-fidelity feature extractor ('512': its pooled features).

    Its weights file is the classifier's state dict with its output count and image size, read as data only."""

    def __init__(self, name: str, features_list: list[str], feature_extractor_weights_path: Optional[str] = None,
                 **kwargs: Any) -> None:
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            raise StarbenchError("the classifier feature extractor needs the classifier's weights file")
        blob = _extractor_file(Path(feature_extractor_weights_path))
        self.size = int(blob["image_size"])
        with torch.device("meta"):  # no random initialisation: every weight comes from the file
            self.net = resnet18(int(blob["num_outputs"]))
        self.net.load_state_dict(blob["state"], assign=True)
        self.net.eval()

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("512",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return "512"

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = x.float().div(127.5).sub(1.0)
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        return (features(self.net, x).float(),)


def register_extractor(name: str, cls: type = ClassifierFeatures) -> None:
    """Register a feature extractor with torch-fidelity under ``name`` (once)."""
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(name, cls)


register_extractor(CLASSIFIER_EXTRACTOR)


