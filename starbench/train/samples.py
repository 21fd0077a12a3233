"""Sample grids: each input followed by its translation to every target domain."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from starbench.data.batches import to_uint8
from starbench.files import atomic_write


def save_grid(path: Path, rows: Sequence[Sequence[torch.Tensor]]) -> np.ndarray:
    """Write rows of [-1, 1] image tensors (3, S, S) as one PNG, atomically; returns the (H, W, 3) picture."""
    tiles = [[to_uint8(img).permute(1, 2, 0).cpu().numpy() for img in row] for row in rows]
    s = tiles[0][0].shape[0]
    cols = max(len(r) for r in tiles)
    canvas = np.full((len(tiles) * (s + 2), cols * (s + 2), 3), 255, dtype=np.uint8)
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            canvas[r * (s + 2):r * (s + 2) + s, c * (s + 2):c * (s + 2) + s] = tile
    write_png(path, canvas)
    return canvas


def save_image(path: Path, image: torch.Tensor) -> None:
    """Write one [-1, 1] image tensor (3, S, S) as a PNG, atomically."""
    write_png(path, to_uint8(image).permute(1, 2, 0).cpu().numpy())


def write_png(path: Path, array: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 array as a PNG, atomically (``starbench.files``)."""
    atomic_write(path, lambda f: Image.fromarray(array).save(f, format="PNG"))


@torch.no_grad()
def translation_grid(model, batch, device) -> list[list[torch.Tensor]]:
    """Rows: the input, then its translation to each target domain."""
    x = batch.x.to(device)
    label = batch.label.to(device)
    outs = [model.translate(x, label, t) for _, t in model.sample_targets(label, batch.dataset)]
    return [[x[i]] + [o[i] for o in outs] for i in range(x.size(0))]
