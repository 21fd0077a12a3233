"""Distribution distances between generated and real images, through torch-fidelity: FD, KID, precision/recall.

Per task column a set of translations is compared with the column's real images on the features of one
extractor, all metrics from one feature extraction (``torch_fidelity.calculate_metrics``; the real side's
features are cached under a key that includes a fingerprint of the images):

- FD, the Fréchet distance (FID on Inception features). At the task's small N (63 per target at demo) it is
  biased upwards, by an amount that depends on the model (Bińkowski et al. 2018; Chong & Forsyth 2020), so
  two methods' FDs at this N are not comparable the way a table suggests (``starbench run protocol=metric_bias``
  shows how far N moves it);
- KID (Bińkowski et al. 2018): squared MMD with a cubic polynomial kernel, unbiased at any N (so it can be
  slightly negative when two sets come from one distribution). Reported x1000, as mean ± sd over
  ``metrics.kid_subsets`` random subsets of half the smaller set (at most ``metrics.kid_subset_size``): the sd
  is the spread of a half-size estimate, an upper bound on that of the full-set mean;
- precision and recall (Kynkäänniemi et al. 2019, k = ``metrics.prc_neighborhood`` nearest neighbours):
  generated = torch-fidelity's input1, real = input2 (the other order swaps them); precision: the share of
  translations inside the real images' manifold, recall: the share of real images inside the translations'.

A set smaller than ``metrics.min_images`` gets KID, precision and recall "n/a" with the reason (FD needs two
images); torch-fidelity is never asked for what it would refuse. Which features: the protocol's classifier
(always: no download), Inception (when its weights are there: ``metrics.fid``), and one more torch-fidelity
extractor by name (``metrics.extractor``, e.g. a CLIP model whose weights you have), each in columns named
after it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch_fidelity
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

from starbench.errors import StarbenchError
from starbench.locks import exclusive
from starbench.metrics.extractors import CLASSIFIER_EXTRACTOR, InceptionWeights, UInt8Images, images_fingerprint

INCEPTION = "Inception"
CLASSIFIER = "classifier"


@dataclass(frozen=True)
class Settings:
    """How KID and precision/recall are computed (``metrics.*``)."""

    kid_subsets: int = 100
    kid_subset_size: int = 1000
    min_images: int = 8
    prc_neighborhood: int = 3

    @classmethod
    def of(cls, cfg: Any) -> "Settings":
        m = cfg.metrics
        return cls(int(m.kid_subsets), int(m.kid_subset_size), int(m.min_images), int(m.prc_neighborhood))

    def kid_subset(self, n1: int, n2: int) -> Optional[int]:
        """Subset size for sets of n1 and n2 images: half the smaller set, at most ``kid_subset_size``; None when
        the smaller set has fewer than ``min_images``."""
        n = min(n1, n2)
        return None if n < max(self.min_images, 4) else min(self.kid_subset_size, n // 2)


@dataclass(frozen=True)
class Extractor:
    """A torch-fidelity feature extractor and how its columns are named."""

    label: str  # column prefix: "Inception", "classifier", or the name of the user's extractor
    name: str  # torch-fidelity registry name
    weights: Optional[Path]  # its weights file (None: torch-fidelity's own)
    layer: Optional[str]  # one feature layer for every metric (None: the extractor's default for each)
    tag: str  # what identifies its features in cache keys (a weights hash or file stem)
    prc: bool = False  # also precision and recall

    @classmethod
    def inception(cls, weights: InceptionWeights) -> "Extractor":
        return cls(INCEPTION, "inception-v3-compat", weights.path, None, f"inception-{(weights.sha256 or '')[:12]}")

    @classmethod
    def classifier(cls, weights_file: Path) -> "Extractor":
        return cls(CLASSIFIER, CLASSIFIER_EXTRACTOR, Path(weights_file), "512", f"classifier-{Path(weights_file).stem}",
                   prc=True)

    @classmethod
    def named(cls, name: str, weights: Optional[str]) -> "Extractor":
        """``metrics.extractor=NAME`` (with ``metrics.extractor_weights=PATH``): any registered torch-fidelity
        extractor, e.g. clip-vit-b-32."""
        if name not in FEATURE_EXTRACTORS_REGISTRY:
            raise StarbenchError(f"config key 'metrics.extractor': '{name}' is not a torch-fidelity feature extractor; "
                                 f"known: {', '.join(sorted(FEATURE_EXTRACTORS_REGISTRY))}")
        path = Path(weights).expanduser() if weights else None
        if path is not None and not path.is_file():
            raise StarbenchError(f"config key 'metrics.extractor_weights': {path} does not exist")
        return cls(name, name, path, None, f"{name}-{path.stem if path else 'default'}")


@dataclass(frozen=True)
class Distances:
    """One column's distances on one extractor's features; None where a metric could not be computed (``note``)."""

    fd: Optional[float] = None
    kid: Optional[float] = None  # raw (not x1000)
    kid_sd: Optional[float] = None
    precision: Optional[float] = None
    recall: Optional[float] = None
    note: Optional[str] = None


def too_few(n1: int, n2: int, settings: Settings) -> Optional[str]:
    """Why KID and precision/recall are n/a for sets of n1 generated and n2 real images (None: they are not)."""
    if settings.kid_subset(n1, n2) is None:
        return (f"KID, precision and recall n/a: {min(n1, n2)} images in the smaller set, fewer than "
                f"metrics.min_images={settings.min_images}")
    return None


def set_distances(generated: torch.Tensor, real: torch.Tensor, extractor: Extractor, settings: Settings,
                  cache_root: Path, batch_size: int = 64) -> Distances:
    """FD, KID (and precision/recall for an extractor that asks for them) between two uint8 image sets."""
    n1, n2 = len(generated), len(real)
    if min(n1, n2) < 2:
        return Distances(note=f"n/a: {min(n1, n2)} image(s) in the smaller set")
    subset, short = settings.kid_subset(n1, n2), too_few(n1, n2, settings)
    real_key = f"starbench-real-{extractor.tag}-{images_fingerprint(real)}"
    kwargs: dict[str, Any] = dict(
        input1=UInt8Images(generated), input2=UInt8Images(real), fid=True, kid=subset is not None,
        prc=extractor.prc and subset is not None, cuda=torch.cuda.is_available(), batch_size=batch_size,
        feature_extractor=extractor.name, cache=True, cache_root=str(cache_root), input2_cache_name=real_key,
        verbose=False, save_cpu_ram=True,  # in-memory tensors: no loader workers
        feature_extractor_weights_path=str(extractor.weights) if extractor.weights else None,
        kid_subsets=settings.kid_subsets, kid_subset_size=subset or 2, prc_neighborhood=settings.prc_neighborhood)
    if extractor.layer:
        kwargs.update(feature_layer_fid=extractor.layer, feature_layer_kid=extractor.layer,
                      feature_layer_prc=extractor.layer)
    # torch-fidelity writes its feature cache in place: one process at a time per real set
    with exclusive(Path(cache_root) / f".{real_key}.lock", f"the feature cache {real_key}"):
        out = torch_fidelity.calculate_metrics(**kwargs)
    return Distances(float(out["frechet_inception_distance"]),
                     _get(out, "kernel_inception_distance_mean"), _get(out, "kernel_inception_distance_std"),
                     _get(out, "precision"), _get(out, "recall"), short)


def _get(out: dict[str, Any], key: str) -> Optional[float]:
    return float(out[key]) if key in out else None


# ------------------------------------------------------------------------------------------ on features
def features(images: torch.Tensor, extractor: Extractor, batch_size: int = 64) -> torch.Tensor:
    """The extractor's features of a uint8 image set (one layer: the FD layer), for studies that draw many subsets."""
    layer = extractor.layer or FEATURE_EXTRACTORS_REGISTRY[extractor.name].get_default_feature_layer_for_metric("fid")
    fe = create_feature_extractor(extractor.name, [layer], cuda=torch.cuda.is_available(),
                                  feature_extractor_weights_path=str(extractor.weights) if extractor.weights else None,
                                  verbose=False)
    out = get_featuresdict_from_dataset(UInt8Images(images), fe, batch_size, torch.cuda.is_available(), True, False)
    return out[layer]


def feature_distances(f1: torch.Tensor, f2: torch.Tensor, settings: Settings, prc: bool = False,
                      seed: int = 2020) -> Distances:
    """The same distances as ``set_distances``, on features already extracted (torch-fidelity's own metrics)."""
    n1, n2 = len(f1), len(f2)
    s1 = fid_features_to_statistics(f1.double())
    s2 = fid_features_to_statistics(f2.double())
    fd = float(fid_statistics_to_metric(s1, s2, verbose=False)["frechet_inception_distance"])
    subset = settings.kid_subset(n1, n2)
    if subset is None:
        return Distances(fd, note=too_few(n1, n2, settings))
    kid = kid_features_to_metric(f1, f2, kid_subsets=settings.kid_subsets, kid_subset_size=subset, rng_seed=seed,
                                 verbose=False)
    pr = prc_features_to_metric(f1, f2, prc_neighborhood=settings.prc_neighborhood, verbose=False) if prc else {}
    return Distances(fd, float(kid["kernel_inception_distance_mean"]), float(kid["kernel_inception_distance_std"]),
                     _get(pr, "precision"), _get(pr, "recall"))


# ------------------------------------------------------------------------------------------ over columns
def mean_kid(values: list[Optional[Distances]]) -> tuple[Optional[float], Optional[float]]:
    """KID averaged over columns, and the sd of that average: sqrt(sum of the columns' sd^2) / T (independent
    columns); (None, None) when no column has a KID."""
    kept = [d for d in values if d is not None and d.kid is not None]
    if not kept:
        return None, None
    mean = float(np.mean([d.kid for d in kept]))
    sd = math.sqrt(sum((d.kid_sd or 0.0) ** 2 for d in kept)) / len(kept)
    return mean, sd
