"""Decoding and preprocessing of one image (as the paper and its code do): read as RGB, crop, then resize.

``read_rgb`` is the one place an image file is opened (data folders, ``translations=[DIR]``, ``starbench
translate input=``). A file is either read correctly or refused with a ``StarbenchError`` naming it and the
problem, never a traceback:

- read correctly, each conversion reported (``Decoded.notes``) so that a command can say so once: palette,
  grey, grey + alpha and 1-bit images (expanded to RGB), RGBA (alpha dropped), CMYK and YCbCr (converted),
  16-bit images (scaled to 8 bits: Pillow's own conversion of 16-bit grey clips at 255), EXIF-rotated JPEGs
  (the orientation applied, as a photo viewer shows them);
- refused: a missing or empty file, a file that is not an image, a truncated or corrupt PNG/JPEG, an image
  smaller than ``MIN_SIDE`` pixels, and one larger than Pillow's decompression-bomb limit
  (``Image.MAX_IMAGE_PIXELS``).

The crop is a pixel box (left, top, width, height), an int (a centre square of that side, as
torchvision's ``CenterCrop`` places it: the public StarGAN test path's 178 for CelebA), or, when
absent, the centre square of the shorter side (CelebA's 178x218 -> 178x178, an already face-cropped
RaFD image -> itself). Horizontal flips are not done here: they are applied to tensors at batch time.
"""
from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from starbench.errors import StarbenchError

Crop = Union[tuple[int, int, int, int], int, None]
MIN_SIDE = 8  # pixels: the smallest network input starbench accepts (config: data.image_size >= 8)
EXIF_ORIENTATION = 0x0112
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
CONVERSIONS = {"P": "palette image expanded to RGB", "PA": "palette image expanded to RGB (alpha dropped)",
               "L": "grey image expanded to RGB", "LA": "grey image expanded to RGB (alpha dropped)",
               "1": "1-bit image expanded to RGB", "RGBA": "alpha channel dropped", "RGBX": "padding channel dropped",
               "CMYK": "CMYK converted to RGB", "YCbCr": "YCbCr converted to RGB", "LAB": "Lab converted to RGB",
               "HSV": "HSV converted to RGB"}


@dataclass
class Decoded:
    """An image read as 8-bit RGB, and what was done to get there (empty: it was 8-bit RGB already)."""

    image: Image.Image
    notes: list[str] = field(default_factory=list)


def _refuse(path: Path, problem: str) -> StarbenchError:
    return StarbenchError(f"{path}: {problem}")


def _sixteen_bit_to_rgb(im: Image.Image) -> Image.Image:
    """A 16-bit (or 32-bit integer / float) grey image as 8-bit RGB, its full range kept (65535 -> 255)."""
    arr = np.asarray(im).astype(np.float64)
    top = 65535.0 if im.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
    grey = np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(grey[..., None], 3, axis=2), "RGB")


def _to_rgb(im: Image.Image) -> tuple[Image.Image, list[str]]:
    notes = []
    if im.getexif().get(EXIF_ORIENTATION, 1) not in (1, None):
        im = ImageOps.exif_transpose(im)
        notes.append("EXIF orientation applied")
    if im.mode == "RGB":
        return im, notes
    if im.mode in SIXTEEN_BIT:
        return _sixteen_bit_to_rgb(im), notes + ["16-bit image scaled to 8 bits"]
    notes.append(CONVERSIONS.get(im.mode, f"{im.mode} image converted to RGB"))
    with warnings.catch_warnings():  # palette transparency: the alpha is dropped either way
        warnings.simplefilter("ignore", UserWarning)
        return im.convert("RGB"), notes


def read_rgb(path: str | Path) -> Decoded:
    """The image at ``path`` as 8-bit RGB (see the module docstring for what is converted and what is refused)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise _refuse(path, "image listed but missing") from None
    except OSError as exc:
        raise _refuse(path, f"cannot be read ({exc.strerror})") from None
    if size == 0:
        raise _refuse(path, "empty file (0 bytes); expected a PNG or JPEG image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
                if min(width, height) < MIN_SIDE:
                    raise _refuse(path, f"image of {width}x{height} px is too small (at least {MIN_SIDE}x{MIN_SIDE})")
                deep = any(";16" in str(tile[-1]) for tile in im.tile)  # Pillow reads 16-bit RGB as 8-bit RGB
                im.load()
                rgb, notes = _to_rgb(im)
                if deep and im.mode == "RGB":
                    notes.append("16-bit image scaled to 8 bits")
                rgb.load()
                return Decoded(rgb, notes)
    except StarbenchError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _refuse(path, f"possible decompression bomb, refused ({exc})") from None
    except UnidentifiedImageError:
        raise _refuse(path, "not an image that can be read (expected a PNG or JPEG)") from None
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError... for truncated or corrupt data
        raise _refuse(path, f"truncated or corrupt image ({type(exc).__name__}: {exc})") from None


def summarize_notes(notes: Iterable[str]) -> list[str]:
    """'3 images: EXIF orientation applied' lines from the notes of many images, most frequent first."""
    counts = Counter(notes)
    return [f"{n} image{'s' if n > 1 else ''}: {note}" for note, n in counts.most_common()]


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


def preprocess(rgb: Image.Image, size: int, crop: Crop = None, path: str | Path = "") -> np.ndarray:
    """Crop and resize an RGB image to a uint8 array of shape (3, size, size)."""
    try:
        box = crop_box(rgb.width, rgb.height, crop)
    except StarbenchError as exc:
        raise StarbenchError(f"{path}: {exc}") from None
    if isinstance(crop, int):  # torchvision's CenterCrop then Resize, exactly: the resize sees only the crop
        out = rgb.crop(box).resize((size, size), Image.BILINEAR)
    else:  # the cache's preprocessing: the resize filter may read pixels just outside the box
        out = rgb.resize((size, size), Image.BILINEAR, box=box, reducing_gap=None)
    return np.ascontiguousarray(np.asarray(out, dtype=np.uint8).transpose(2, 0, 1))


def load_image(path: str | Path, size: int, crop: Crop = None) -> np.ndarray:
    """Decode, crop and resize one file to a uint8 array of shape (3, size, size)."""
    return preprocess(read_rgb(path).image, size, crop, path)
