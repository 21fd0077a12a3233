"""Decoding and preprocessing of one image (REFERENCE §2): crop, then resize.

The crop is a pixel box (left, top, width, height), an int (a centre square of that side, as
torchvision's ``CenterCrop`` places it: the public StarGAN test path's 178 for CelebA), or, when
absent, the centre square of the shorter side (CelebA's 178x218 -> 178x178, an already face-cropped
RaFD image -> itself).
Horizontal flips are not done here: they are applied to tensors at batch time.
"""
from __future__ import annotations

from typing import Union

import numpy as np
from PIL import Image

from starbench.errors import StarbenchError


Crop = Union[tuple[int, int, int, int], int, None]


def crop_box(width: int, height: int, crop: Crop) -> tuple[int, int, int, int]:
    """PIL box (left, upper, right, lower) for an image of the given size."""
    if crop is None:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        return left, top, left + side, top + side
    if isinstance(crop, int):
        if crop > width or crop > height:
            raise StarbenchError(f"a {width}x{height} image is smaller than the {crop}x{crop} centre crop")
        left, top = int(round((width - crop) / 2.0)), int(round((height - crop) / 2.0))
        return left, top, left + crop, top + crop
    left, top, w, h = crop
    if left < 0 or top < 0 or left + w > width or top + h > height or w <= 0 or h <= 0:
        raise StarbenchError(f"crop box {list(crop)} does not fit inside a {width}x{height} image")
    return left, top, left + w, top + h


def load_image(path: str, size: int, crop: Crop = None) -> np.ndarray:
    """Decode, crop and resize one file to a uint8 array of shape (3, size, size)."""
    try:
        with Image.open(path) as im:
            im.load()
            rgb = im.convert("RGB")
    except FileNotFoundError:
        raise StarbenchError(f"{path}: image listed but missing") from None
    except Exception as exc:  # PIL raises many types for corrupt data
        raise StarbenchError(f"{path}: cannot decode image ({exc}); expected a readable JPEG or PNG") from exc
    try:
        box = crop_box(rgb.width, rgb.height, crop)
    except StarbenchError as exc:
        raise StarbenchError(f"{path}: {exc}") from None
    if isinstance(crop, int):  # torchvision's CenterCrop then Resize, exactly: the resize sees only the crop
        out = rgb.crop(box).resize((size, size), Image.BILINEAR)
    else:  # the cache's preprocessing: the resize filter may read pixels just outside the box
        out = rgb.resize((size, size), Image.BILINEAR, box=box, reducing_gap=None)
    return np.ascontiguousarray(np.asarray(out, dtype=np.uint8).transpose(2, 0, 1))
