"""Layers shared by StarGAN and the baselines."""
from __future__ import annotations

from torch import nn


def instance_norm(channels: int) -> nn.InstanceNorm2d:
    """InstanceNorm2d(affine=True, track_running_stats=True), as in the public StarGAN code."""
    return nn.InstanceNorm2d(channels, affine=True, track_running_stats=True)


class ResidualBlock(nn.Module):
    """[conv3x3, IN, ReLU, conv3x3, IN] + identity, zero padding, no conv bias (the paper's appendix)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False), instance_norm(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False), instance_norm(channels))

    def forward(self, x):
        return x + self.main(x)


def patch_trunk(conv_dim: int = 64, layers: int = 6) -> tuple[nn.Sequential, int]:
    """StarGAN's discriminator body and its output channels.

    ``layers`` conv 4x4 s2 p1 (with bias) + LeakyReLU(0.01), channels doubling from ``conv_dim``:
    shared by StarGAN (with a class head) and the two-domain baselines (without one).
    """
    mods: list[nn.Module] = [nn.Conv2d(3, conv_dim, 4, 2, 1), nn.LeakyReLU(0.01)]
    dim = conv_dim
    for _ in range(1, layers):
        mods += [nn.Conv2d(dim, dim * 2, 4, 2, 1), nn.LeakyReLU(0.01)]
        dim *= 2
    return nn.Sequential(*mods), dim
