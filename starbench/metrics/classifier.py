"""ResNet-18 classifiers trained from scratch on a split of the decoded cache.

Used for the expression / attribute classifiers of the protocols (the paper's Table 3 judge: a ResNet-18 on the
90/10 split) and for DIAT's identity feature extractor (trained on subject ids). Trained networks
are cached under ``<cache>/classifiers/<key>.pt``, the key being a hash of everything that decides
the result (data fingerprint, labels, split, recipe), so a rerun loads instead of training.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from starbench.data.batches import to_float
from starbench.errors import StarbenchError
from starbench.files import load_torch, save_torch
from starbench.locks import exclusive
from starbench.progress import progress_bar
from starbench.train.adam import BlockedAdamW
from starbench.train.speed import FastPath


@dataclass
class ClassifierRecipe:
    """How a classifier is trained; part of its cache key."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0


class OneTapConv2d(nn.Conv2d):
    """A convolution that, on a 1x1 map, convolves with the one kernel tap that sees the map: the same sum, as a 1x1
    convolution.

    At 32 px the ResNet-18's last stage works on 1x1 maps, where eight of a padded 3x3 convolution's nine taps see
    only the padding's zeros; torch's CPU convolution is slow on such a map (about 36 ms forward and backward for
    one 512-channel layer at batch 64 in bf16 on one thread, against 10 ms for the tap alone): more than a third of
    a judge's training step, for three layers. Leaving out products that are exactly zero changes no sum: the
    outputs and both gradients came out bit for bit the full convolution's in bf16 and fp32, at 1 and 2 threads, with
    channels_last weights (``benchmarks/small_map_conv.py``), so no cached judge changes. Other maps and layouts, and
    other devices, go to ``nn.Conv2d`` unchanged."""

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        tap = self.tap_seeing_1x1(tuple(input.shape[-2:]))
        # only where the one tap was found bit for bit the full convolution's: channels_last weights on the CPU (how
        # starbench trains there); in the default layout torch's fp32 1x1 convolution takes another kernel, which
        # rounds differently (differences of 5e-5), so the judge's fp32 verdicts keep the full convolution
        if tap is None or input.device.type != "cpu" or not weight.is_contiguous(memory_format=torch.channels_last):
            return super()._conv_forward(input, weight, bias)
        r, c = tap
        return F.conv2d(input, weight[:, :, r:r + 1, c:c + 1], bias, 1, 0, 1, self.groups)

    def tap_seeing_1x1(self, size: tuple[int, ...]) -> tuple[int, int] | None:
        """The kernel tap (row, column) that alone sees an input of this size, when it is 1x1 and the output is too
        (zero padding, no dilation); None otherwise."""
        if (size != (1, 1) or self.kernel_size == (1, 1) or self.padding_mode != "zeros"
                or isinstance(self.padding, str) or self.dilation != (1, 1)):
            return None
        tap = []
        for k, s, p in zip(self.kernel_size, self.stride, self.padding):
            if not (0 <= p < k and 0 <= 1 + 2 * p - k < s):  # the tap inside the kernel, one output position
                return None
            tap.append(p)
        return tap[0], tap[1]


def resnet18(num_outputs: int) -> nn.Module:
    """torchvision ResNet-18, randomly initialised (no pretrained weights are downloaded), its convolutions
    ``OneTapConv2d`` (the same weights, initialisation and state dict; faster on 1x1 maps)."""
    net = torchvision.models.resnet18(weights=None, num_classes=num_outputs)
    for module in net.modules():
        if type(module) is nn.Conv2d:
            module.__class__ = OneTapConv2d
    return net


def convs_seeing(image_size: int, wanted: Callable[[OneTapConv2d, tuple[int, int]], bool]) -> list[str]:
    """The ResNet-18's convolutions ``wanted`` picks, given each one and the size of the map it sees at this image
    size. Found by running the network's shapes on the meta device, not by arithmetic on the layer list."""
    with torch.device("meta"):
        net = resnet18(2)
    found: list[str] = []

    def look(name: str):
        def hook(conv: OneTapConv2d, inputs: tuple[torch.Tensor, ...]) -> None:
            if wanted(conv, tuple(inputs[0].shape[-2:])):
                found.append(name)
        return hook

    for name, module in net.named_modules():
        if isinstance(module, OneTapConv2d):
            module.register_forward_pre_hook(look(name))
    net.eval()(torch.empty(1, 3, image_size, image_size, device="meta"))
    return found


def strided_convs_on_1x1(image_size: int) -> list[str]:
    """The ResNet-18's padded stride-2 convolutions that would see a 1x1 map at this image size (16 px and below:
    ``layer4.0.conv1``). torch's bf16 CPU convolution gives such a layer nondeterministic and now and then
    non-finite weight gradients (``benchmarks/bf16_strided_conv.py``), so a network that has one trains in fp32."""
    return convs_seeing(image_size, lambda conv, size: conv.stride != (1, 1) and any(conv.padding) and size == (1, 1))


def one_tap_convs(image_size: int) -> list[str]:
    """The ResNet-18's convolutions that run as one tap at this image size (32 px: the last stage's three 3x3
    convolutions on 1x1 maps)."""
    return convs_seeing(image_size, lambda conv, size: conv.tap_seeing_1x1(size) is not None)


def resnet_fast_path(fast: FastPath, image_size: int) -> FastPath:
    """The device's fast path for a ResNet-18 on images of this size: bf16 autocast dropped where the network has a
    layer torch's bf16 convolution trains wrongly (``strided_convs_on_1x1``), channels_last kept. Decided before the
    cache key is made, so the key says the arithmetic the network was really trained with."""
    if fast.autocast_dtype is not None and strided_convs_on_1x1(image_size):
        return FastPath(None, fast.channels_last)
    return fast


def features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The 512-d pooled features of a torchvision ResNet (the input of its ``fc`` layer)."""
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
    return torch.flatten(net.avgpool(x), 1)


def loss_fn(logits: torch.Tensor, targets: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "onehot":
        return F.cross_entropy(logits, targets.argmax(1))
    return F.binary_cross_entropy_with_logits(logits, targets)


def train_classifier(images: np.ndarray, targets: np.ndarray, rows: np.ndarray, kind: str, recipe: ClassifierRecipe,
                     device: torch.device, description: str = "classifier", show_progress: bool = True,
                     amp: bool = False, channels_last: bool = False) -> nn.Module:
    """Train a ResNet-18 on ``images[rows]`` with ``targets[rows]`` (one-hot or multi-label); ``amp``: bf16 autocast
    (the loss in fp32), ``channels_last``: that memory format.

    A network that could only judge at random is refused, not returned: no rows to learn from (a batch of none gives
    NaN batch statistics, and every later verdict and feature is NaN), or a loss that stops being finite."""
    if len(rows) < 2:  # batch norm needs two images a batch
        raise StarbenchError(f"{description}: {len(rows)} training image(s); expected at least 2 (is the train "
                             f"split empty? see data.test_fraction and data.max_images)")
    g = torch.Generator().manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    layout = torch.channels_last if channels_last else torch.preserve_format
    net = resnet18(targets.shape[1]).to(device, memory_format=layout)
    # on the CPU the same AdamW block by block: bit for bit torch's, its step memory-bound on 11M weights otherwise
    adamw = BlockedAdamW if device.type == "cpu" else torch.optim.AdamW
    opt = adamw(net.parameters(), recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = max(1, len(rows) // recipe.batch_size)
    total = recipe.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, recipe.lr, total_steps=total)
    net.train()
    with progress_bar(description, total=total, enabled=show_progress) as advance:
        for epoch in range(recipe.epochs):
            perm = torch.randperm(len(rows), generator=g).numpy()
            for k in range(steps_per_epoch):
                idx = np.sort(rows[perm[k * recipe.batch_size:(k + 1) * recipe.batch_size]])
                x = to_float(torch.from_numpy(images[idx]))
                flip = torch.rand(len(idx), generator=g) < 0.5
                x[flip] = x[flip].flip(-1)
                y = torch.from_numpy(targets[idx])
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    logits = net(x.to(device, memory_format=layout))
                loss = loss_fn(logits.float(), y.to(device), kind)
                if not torch.isfinite(loss):
                    raise StarbenchError(f"{description}: the training loss is {loss.item()} at step "
                                         f"{epoch * steps_per_epoch + k + 1} of {total}; expected a finite loss "
                                         f"(a lower classifier.lr?)")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                advance(1)
    return net.eval()


class Ensemble(nn.Module):
    """Several classifiers judging as one: the mean of their probabilities (softmax over one-of-K labels, a sigmoid
    per attribute), returned as logits again, so that code reading one network's logits (argmax, ``> 0``) reads the
    ensemble's verdict unchanged. Averaging damps what one network's seed decides on images off its training
    distribution, such as translations."""

    def __init__(self, members: list[nn.Module], kind: str) -> None:
        super().__init__()
        if kind not in ("onehot", "multilabel"):
            raise ValueError(f"kind must be onehot or multilabel, got {kind!r}")
        self.members = nn.ModuleList(members)
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.stack([m(x).float() for m in self.members])
        if self.kind == "onehot":
            return torch.log(torch.softmax(logits, dim=-1).mean(0))
        p = torch.sigmoid(logits).mean(0).clamp(1e-7, 1 - 1e-7)
        return torch.log(p) - torch.log1p(-p)


@torch.no_grad()
def predict_logits(net: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Logits for float images in [-1, 1] (any device; returned on the CPU)."""
    device = next(net.parameters()).device
    net.eval()
    return torch.cat([net(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)])


def cache_key(**parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def cached_classifier(cache_root: Path, key: str, num_outputs: int, device: torch.device,
                      train: Any) -> tuple[nn.Module, dict[str, Any]]:
    """Load the classifier stored under ``key`` or call ``train()`` (-> (net, info)) and store it.

    A freshly trained network is returned exactly as a cached one is (rebuilt from its saved weights, in the
    default memory format), so the first run of a protocol and every re-run judge with the very same network:
    a channels_last network and a contiguous one give slightly different numbers."""
    path = Path(cache_root) / "classifiers" / f"{key}.pt"
    fresh = False
    if not path.is_file():
        with exclusive(path.with_name(f".{key}.lock"), f"the classifier {key} being trained"):
            if not path.is_file():  # else another process trained it while this one waited
                start = time.perf_counter()
                net, info = train()
                info = {**info, "train_seconds": round(time.perf_counter() - start, 2)}
                save_torch(path, {"state": {k: v.cpu() for k, v in net.state_dict().items()}, "info": info})
                fresh = True
    blob = load_torch(path, "classifier cache")
    broken = [k for k, v in blob["state"].items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise StarbenchError(f"{path}: the cached classifier's {', '.join(broken[:3])}"
                             f"{' ...' if len(broken) > 3 else ''} hold NaN or infinite values; expected a trained "
                             f"network (delete the file to train it again)")
    net = resnet18(num_outputs)
    net.load_state_dict(blob["state"])
    return net.to(device).eval(), {**blob["info"], "cached": not fresh}
