"""Steps shared by the protocols: step timing, run keys, training-or-loading a method, image rows, figures."""
from __future__ import annotations

import hashlib
import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image, ImageDraw

from starbench.data import LoadedData
from starbench.data.batches import to_float, to_uint8
from starbench.errors import StarbenchError
from starbench.metrics import fid as fidm
from starbench.metrics import paired
from starbench.metrics.classifier import predict_logits
from starbench.progress import console
from starbench.train.trainer import Trainer

# Settings that do not change what a trained model is (left out of run keys).
NOT_IN_RUN_KEY = ("protocol", "models", "results_dir", "run_dir", "classifier", "fid", "grid_inputs", "device",
                  "cache_dir")


class Steps:
    """Announces each step and records its wall time (for provenance)."""

    def __init__(self, total: int) -> None:
        self.total, self.n, self.times = total, 0, {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.n += 1
        console.print(f"[bold cyan][{self.n}/{self.total}][/] {name}", highlight=False)
        start = time.perf_counter()
        yield
        self.times[name] = round(time.perf_counter() - start, 2)


def run_key(cfg: Any, model: str, fingerprint: str) -> str:
    """Hash of everything that decides a trained model (config without reporting keys, data fingerprint)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    for k in NOT_IN_RUN_KEY:
        c.pop(k, None)
    c["train"].pop("progress", None)
    c["model"] = model
    c["data_fingerprint"] = fingerprint
    return hashlib.sha256(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:12]


def data_fingerprint(data: LoadedData) -> str:
    from starbench.data.cache import fingerprint
    return fingerprint(data.index, int(data.images.shape[-1]))


def uint8_rows(data: LoadedData, rows: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(data.images[np.sort(rows)]))[np.argsort(np.argsort(rows))]


def classify(net: torch.nn.Module, images_u8: torch.Tensor) -> np.ndarray:
    return predict_logits(net, to_float(images_u8.clone())).argmax(1).numpy()


def train_method(cfg: Any, model: str, fp: str, show: bool) -> tuple[Any, Path, dict]:
    """Train ``model`` with ``cfg`` through the Trainer, or load it when its run is complete.

    Runs live in ``run_dir/models/<model>-<data>-<key>``: protocols that need the same model trained
    the same way on the same data share it.
    """
    key = run_key(cfg, model, fp)
    run_dir = Path(cfg.run_dir) / "models" / f"{model.replace(':', '_')}-{cfg.data.name}-{key}"
    mcfg = OmegaConf.merge(cfg, {"model": model, "train": {"resume": True}})
    res = Trainer(mcfg, run_dir, show_progress=show).fit()
    if res.interrupted:
        raise StarbenchError(f"interrupted while training {model}; its checkpoint is in {run_dir}: run the protocol "
                             f"again to continue")
    return res.model, run_dir, {"run_dir": str(run_dir), "key": key, "steps": res.step,
                                "reused": res.reused, "train_seconds": res.train_seconds}


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


class PairedTruth:
    """RaFD's real photo of each input's subject, gaze and angle in each target expression.

    Built once per protocol run; ``scores`` gives L1, PSNR and SSIM of any method's translations
    (N inputs x T targets) against the photos that exist.
    """

    def __init__(self, data: LoadedData, input_rows: np.ndarray, targets: list[str]) -> None:
        meta = [r.meta for r in data.index.records]
        where = {(m.get("subject"), m.get("gaze"), m.get("angle"), m.get("expression")): i
                 for i, m in enumerate(meta) if m.get("subject") is not None}
        rows = np.array([[where.get((meta[n].get("subject"), meta[n].get("gaze"), meta[n].get("angle"), t), -1)
                          for t in targets] for n in input_rows])
        self.have = rows >= 0
        self.n = int(self.have.sum())
        self.photos = uint8_rows(data, rows[self.have]) if self.n else None

    def scores(self, fakes: torch.Tensor) -> tuple[float, float, float]:
        """Mean (L1, PSNR dB, SSIM) over the pairs; NaN when the data has no ground truth."""
        if self.photos is None:
            return float("nan"), float("nan"), float("nan")
        gen = fakes[torch.from_numpy(self.have)]
        return tuple(float(f(gen, self.photos).mean()) for f in (paired.l1, paired.psnr, paired.ssim))  # type: ignore


def inception_weights(cfg: Any) -> "fidm.InceptionWeights":
    """Resolve the FID weights before any work: a wrong file, or none with fid.required=true, fails here."""
    weights = fidm.resolve_inception_weights(cfg.fid)
    if not weights.available and cfg.fid.required:
        raise StarbenchError(f"fid.required=true but {weights.problem}")
    return weights


@torch.no_grad()
def translate_grid(model: Any, inputs_u8: torch.Tensor, source: np.ndarray, targets: list[np.ndarray],
                   batch: int = 64) -> torch.Tensor:
    """(N inputs, T targets, 3, S, S) uint8: every input, labelled ``source``, translated to every target label."""
    out = torch.empty((inputs_u8.size(0), len(targets)) + tuple(inputs_u8.shape[1:]), dtype=torch.uint8)
    src = torch.from_numpy(np.asarray(source, dtype=np.float32)).to(model.device)
    for t, target in enumerate(targets):
        tgt = torch.from_numpy(np.asarray(target, dtype=np.float32)).to(model.device)
        for i in range(0, inputs_u8.size(0), batch):
            x = to_float(inputs_u8[i:i + batch].clone()).to(model.device)
            n = x.size(0)
            out[i:i + n, t] = to_uint8(model.translate(x, src.expand(n, -1), tgt.expand(n, -1))).cpu()
    return out


def save_grid_figure(arrays: dict[str, np.ndarray], columns: list[str], folder: Path) -> None:
    """translations.png from a run record's arrays: ``inputs`` and one ``fake:<method>`` block per method."""
    fakes = {k.split(":", 1)[1]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("fake:")}
    grid_image(torch.from_numpy(arrays["inputs"]), fakes, columns, len(arrays["inputs"])).save(
        folder / "translations.png")


def fmt(x: Optional[float], digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}f}"


