"""Networks and helpers shared by the two-domain baselines (CycleGAN, DIAT).

The generator is the CycleGAN ResNet generator (pytorch-CycleGAN-and-pix2pix's ``resnet_6blocks``:
reflection padding, InstanceNorm without affine, conv biases): 7,837,699 parameters at 64 filters
and 6 blocks. The discriminator is StarGAN's PatchGAN body with only the real/fake head: 44,721,088
parameters at 128 px. Together 52,558,787 = the paper's "52.6M" per direction (Table 3).
"""
from __future__ import annotations

import random

import torch
from torch import nn

from starbench.baselines.packed import packed_forward
from starbench.models.blocks import patch_trunk


class ResnetBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim))

    def forward(self, x):
        return x + self.block(x)

    @staticmethod
    def packed_forward(blocks, x):
        return x + packed_forward([b.block for b in blocks], x)


class ResnetGenerator(nn.Module):
    """c7s1-64, d128, d256, ``blocks`` x R256, u128, u64, c7s1-3 + tanh (widths scale with ``ngf``)."""

    def __init__(self, ngf: int = 64, blocks: int = 6) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        dim = ngf
        for _ in range(2):
            layers += [nn.Conv2d(dim, dim * 2, 3, 2, 1), nn.InstanceNorm2d(dim * 2), nn.ReLU(True)]
            dim *= 2
        layers += [ResnetBlock(dim) for _ in range(blocks)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(dim, dim // 2, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(dim // 2),
                       nn.ReLU(True)]
            dim //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(dim, 3, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)

    @staticmethod
    def packed_forward(generators, x):
        return packed_forward([g.model for g in generators], x)


class PatchDiscriminator(nn.Module):
    """StarGAN's discriminator without the domain-classification head."""

    def __init__(self, conv_dim: int = 64, repeat_num: int = 6) -> None:
        super().__init__()
        self.main, dim = patch_trunk(conv_dim, repeat_num)
        self.conv1 = nn.Conv2d(dim, 1, 3, 1, 1, bias=False)

    def forward(self, x):
        return self.conv1(self.main(x))

    @staticmethod
    def packed_forward(critics, x):
        return packed_forward([d.conv1 for d in critics], packed_forward([d.main for d in critics], x))


def lsgan_loss(pred: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss: mean (D(x) - 1)^2 for real targets, D(x)^2 for fake ones."""
    pred = pred.float()
    return ((pred - 1) ** 2).mean() if real else (pred ** 2).mean()


class ImagePool:
    """History of generated images shown to D (CycleGAN): half the time an older fake is returned.

    Randomness comes from Python's ``random`` (checkpointed with the other RNG states).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for img in images.detach():
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif random.random() > 0.5:
                k = random.randrange(self.size)
                out.append(self.images[k].clone())
                self.images[k] = img.clone()
            else:
                out.append(img)
        return torch.stack(out)

    def state(self) -> list[torch.Tensor]:
        return [t.cpu() for t in self.images]

    def load(self, images: list[torch.Tensor], device: torch.device) -> None:
        self.images = [t.to(device) for t in images]


def adam(params, lr: float, beta1: float, beta2: float, device: torch.device) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr, (beta1, beta2), fused=device.type == "cuda")
