"""The protocols' classifier (the judge): a ResNet-18 trained on the task's train split, cached by its recipe and the
data, and written once more as a torch-fidelity feature-extractor file for the distribution metrics."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from starbench.config import cache_dir
from starbench.data import LoadedData
from starbench.data.batches import to_float
from starbench.evaluate.runs import data_fingerprint
from starbench.files import save_torch
from starbench.metrics.classifier import (
    ClassifierRecipe,
    cache_key,
    cached_classifier,
    predict_logits,
    train_classifier,
)
from starbench.train.speed import fast_path, precision_key


def task_classifier(cfg: Any, data: LoadedData, device: torch.device, kind: str, labels: str, description: str,
                    **key: Any) -> tuple[torch.nn.Module, dict, Path]:
    """The protocol's ResNet-18 on the train split (cached by recipe and data), and its feature-extractor file.

    ``kind`` names what it classifies (part of the cache key with ``key``), ``labels`` is ``onehot`` or
    ``multilabel``. The extractor file is what torch-fidelity loads for the classifier Fréchet distance.
    """
    recipe = ClassifierRecipe(epochs=cfg.classifier.epochs, batch_size=cfg.classifier.batch_size,
                              lr=cfg.classifier.lr, seed=cfg.classifier.seed)
    size = int(data.images.shape[-1])
    fast = fast_path(device, cfg.train.amp, cfg.train.channels_last)
    cache_key_ = cache_key(kind=kind, data=data_fingerprint(data), recipe=vars(recipe), size=size,
                           precision=precision_key(fast), **key)
    train = data.split("train")

    def fit():
        net = train_classifier(data.images, data.labels, train, labels, recipe, device, description=description,
                               show_progress=cfg.train.progress, amp=fast.autocast_dtype is not None,
                               channels_last=fast.channels_last)
        return net, {"recipe": vars(recipe), "train_images": int(len(train)), "key": cache_key_}

    outputs = int(data.labels.shape[1])
    net, info = cached_classifier(cache_dir(cfg), cache_key_, outputs, device, fit)
    extractor_file = cache_dir(cfg) / "classifiers" / f"{cache_key_}.extractor.pt"
    if not extractor_file.is_file():
        save_torch(extractor_file, {"state": {k: v.cpu() for k, v in net.state_dict().items()}, "num_outputs": outputs,
                                    "image_size": size})
    return net, info, extractor_file


def classify(net: torch.nn.Module, images_u8: torch.Tensor) -> np.ndarray:
    return predict_logits(net, to_float(images_u8.clone())).argmax(1).numpy()
