"""The protocols' classifier (the judge): a ResNet-18 trained on the task's train split (or an ensemble of several,
``classifier.members``), cached by its recipe and the data, and written once more as a torch-fidelity
feature-extractor file for the distribution metrics."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from starbench.config import cache_dir
from starbench.data import LoadedData
from starbench.data.batches import to_float
from starbench.errors import StarbenchError
from starbench.evaluate.parallel import torch_threads, training_threads
from starbench.evaluate.runs import data_fingerprint
from starbench.files import save_torch
from starbench.metrics.classifier import (
    ClassifierRecipe,
    Ensemble,
    cache_key,
    cached_classifier,
    predict_logits,
    resnet_fast_path,
    train_classifier,
)
from starbench.train.speed import FastPath, fast_path, precision_key


def task_classifier(cfg: Any, data: LoadedData, device: torch.device, kind: str, labels: str, description: str,
                    **key: Any) -> tuple[torch.nn.Module, dict, Path]:
    """The protocol's judge on the train split (cached by recipe and data), and its feature-extractor file.

    ``kind`` names what it classifies (part of the cache key with ``key``), ``labels`` is ``onehot`` or
    ``multilabel``. With ``classifier.members=N`` the judge is an ``Ensemble`` of N ResNet-18s, seeds
    ``classifier.seed`` to ``classifier.seed + N - 1``, each cached under the key a single classifier of that seed
    has. The extractor file (the first member's weights) is what torch-fidelity loads for the classifier Fréchet
    distance.
    """
    fast = fast_path(device, cfg.train.amp, cfg.train.channels_last)  # once: its fallback line is printed once
    fast = resnet_fast_path(fast, int(data.images.shape[-1]))  # fp32 where bf16 would train a layer wrongly
    # every member's cache key but its recipe: the images, the rows it learns from and their labels (a split setting
    # or a label file changes them, not the images), and the arithmetic it is trained with (precision, threads)
    train = data.split("train")
    train_labels = np.ascontiguousarray(data.labels[train])
    _check_learnable(data, train_labels, labels, description)
    rows = hashlib.sha256(np.asarray(train, dtype=np.int64).tobytes() + train_labels.tobytes()).hexdigest()[:16]
    threads = training_threads(cfg)  # a training process's count, whether or not this command trains methods
    shared = {"kind": kind, "data": data_fingerprint(data), "size": int(data.images.shape[-1]), "train_rows": rows,
              "precision": precision_key(fast), "threads": threads, **key}
    members, infos = [], []
    with torch_threads(threads):
        for seed in range(cfg.classifier.seed, cfg.classifier.seed + cfg.classifier.members):
            net, info = _one_classifier(cfg, data, train, device, labels, seed, fast, shared,
                                        description if cfg.classifier.members == 1 else f"{description}, seed {seed}")
            members.append(net)
            infos.append(info)
    first_key = infos[0]["key"]
    extractor_file = cache_dir(cfg) / "classifiers" / f"{first_key}.extractor.pt"
    if not extractor_file.is_file():
        save_torch(extractor_file, {"state": {k: v.cpu() for k, v in members[0].state_dict().items()},
                                    "num_outputs": int(data.labels.shape[1]), "image_size": shared["size"]})
    if len(members) == 1:
        return members[0], {**infos[0], "judge_key": first_key}, extractor_file
    info = {**infos[0], "judge_key": "+".join(i["key"] for i in infos),
            "members": [{"seed": i["recipe"]["seed"], "key": i["key"], "cached": i["cached"],
                         "train_seconds": i.get("train_seconds")} for i in infos]}
    return Ensemble(members, labels).to(device).eval(), info, extractor_file


def _check_learnable(data: LoadedData, y: np.ndarray, labels: str, description: str) -> None:
    """Refuse a judge that could not learn every verdict it will give (``y``: the train split's labels): an
    expression with no training image (it would never be predicted, so every translation to it counts as wrong), an
    attribute that is always on or always off in the train split (it would be judged by a constant)."""
    names = data.domains.names
    if labels == "onehot":
        missing, what, each = [n for n, c in zip(names, y.sum(0)) if c == 0], "no training image", "class"
    else:
        missing = [n for n, c in zip(names, y.sum(0)) if c == 0 or c == len(y)]
        what, each = "the same value on every training image", "attribute"
    if missing:
        raise StarbenchError(f"{description} ({data.index.description}): {', '.join(missing)} has {what} in the "
                             f"train split of {len(y)}; expected every {each} to be learnable (a larger "
                             f"data.max_images, or another data.test_fraction?)")


def _one_classifier(cfg: Any, data: LoadedData, train: np.ndarray, device: torch.device, labels: str, seed: int,
                    fast: FastPath, shared: dict[str, Any], description: str) -> tuple[torch.nn.Module, dict]:
    """One ResNet-18 of the judge on the ``train`` rows, trained with ``seed`` or loaded from the cache (``shared``:
    the rest of its key)."""
    recipe = ClassifierRecipe(epochs=cfg.classifier.epochs, batch_size=cfg.classifier.batch_size,
                              lr=cfg.classifier.lr, seed=seed)
    cache_key_ = cache_key(recipe=vars(recipe), **shared)

    def fit():
        net = train_classifier(data.images, data.labels, train, labels, recipe, device, description=description,
                               show_progress=cfg.train.progress, amp=fast.autocast_dtype is not None,
                               channels_last=fast.channels_last)
        return net, {"recipe": vars(recipe), "train_images": int(len(train)), "key": cache_key_}

    return cached_classifier(cache_dir(cfg), cache_key_, int(data.labels.shape[1]), device, fit)


def classify(net: torch.nn.Module, images_u8: torch.Tensor) -> np.ndarray:
    return predict_logits(net, to_float(images_u8.clone())).argmax(1).numpy()
