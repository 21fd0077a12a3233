"""Distances between a translation and the real photo of the same subject in the target domain.

RaFD photographs every subject in every expression at the same gaze and camera angle, so a
neutral -> e translation has a ground truth: the subject's photo with expression e, same gaze and
angle. L1 (mean absolute difference on [0, 1]), PSNR (dB, peak 1) and SSIM (Wang et al. 2004:
Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, averaged over channels and valid positions).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] or float [-1, 1] images -> float64 in [0, 1]."""
    if x.dtype == torch.uint8:
        return x.double() / 255.0
    return (x.double().clamp(-1, 1) + 1) / 2


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image mean absolute difference on [0, 1]."""
    return (_unit(a) - _unit(b)).abs().flatten(1).mean(1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB (peak 1); identical images give +inf."""
    mse = ((_unit(a) - _unit(b)) ** 2).flatten(1).mean(1)
    return torch.where(mse > 0, 10 * torch.log10(1.0 / mse), torch.full_like(mse, math.inf))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM (mean over channels and the valid window positions)."""
    x, y = _unit(a), _unit(b)
    c = x.size(1)
    size = min(window, x.size(-1), x.size(-2))
    w = _gaussian_window(size, sigma).to(x.device).expand(c, 1, size, size).contiguous()

    def filt(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=c)

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mx, my = filt(x), filt(y)
    sxx = filt(x * x) - mx ** 2
    syy = filt(y * y) - my ** 2
    sxy = filt(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)
