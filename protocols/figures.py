"""The protocols' figures: the paper's Figures 4 and 5 (per method a block of rows, each an input and its
translations), drawn from a run record's arrays."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw


def grid_image(inputs: torch.Tensor, fakes: dict[str, torch.Tensor], targets: list[str], rows: int) -> Image.Image:
    """The paper's Figures 4 and 5: per method a block of rows, each an input then its translations."""
    rows = min(rows, inputs.size(0))
    s = inputs.size(-1)
    scale = max(1, 64 // s)
    cell = s * scale + 4
    label_h, left = 16, 8 + 6 * max(len(m) for m in fakes)
    cols = 1 + len(targets)
    height = label_h + len(fakes) * (rows * cell + 6)
    canvas = Image.new("RGB", (left + cols * cell, height), "white")
    draw = ImageDraw.Draw(canvas)
    for c, name in enumerate(["input"] + targets):
        draw.text((left + c * cell + 2, 2), name[:10], fill="black")
    y = label_h
    for method, fake in fakes.items():
        draw.text((4, y + rows * cell // 2 - 6), method, fill="black")
        for r in range(rows):
            tiles = [inputs[r]] + [fake[r, t] for t in range(len(targets))]
            for c, tile in enumerate(tiles):
                img = Image.fromarray(tile.permute(1, 2, 0).numpy()).resize((s * scale, s * scale), Image.NEAREST)
                canvas.paste(img, (left + c * cell + 2, y + r * cell + 2))
        y += rows * cell + 6
    return canvas


def save_grid_figure(arrays: dict[str, np.ndarray], columns: list[str], folder: Path) -> None:
    """translations.png from a run record's arrays: ``inputs`` and one ``fake:<method>`` block per method."""
    fakes = {k.split(":", 1)[1]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("fake:")}
    grid_image(torch.from_numpy(arrays["inputs"]), fakes, columns, len(arrays["inputs"])).save(
        folder / "translations.png")


def figure_arrays(results: list) -> dict[str, np.ndarray]:
    """translations.png's blocks: one per method (its first seed), none for a method that diverged."""
    out: dict[str, np.ndarray] = {}
    for r in results:
        if not r.diverged and f"fake:{r.name}" not in out:
            out[f"fake:{r.name}"] = r.grid
    return out
