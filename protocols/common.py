"""Steps shared by the protocols: step timing, run keys, training-or-loading a method, figures."""
from __future__ import annotations

import hashlib
import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf
from PIL import Image, ImageDraw

from starbench.config import cache_dir
from starbench.data import LoadedData
from starbench.data.batches import to_float
from starbench.errors import StarbenchError
from starbench.metrics import fid as fidm
from starbench.metrics.classifier import (ClassifierRecipe, cache_key, cached_classifier, predict_logits,
                                          train_classifier)
from starbench.progress import console
from starbench.report import plt
from starbench.files import save_torch
from starbench.train.speed import fast_path, precision_key
from starbench.train.trainer import Trainer

# Settings that do not change what a trained model is (left out of run keys).
NOT_IN_RUN_KEY = ("protocol", "models", "translations", "seeds", "curve_every", "curve_model_every", "results_dir",
                  "run_dir", "classifier", "fid", "grid_inputs", "device", "cache_dir")
TRAIN_KEYS_NOT_IN_RUN_KEY = ("progress", "tensorboard", "lock_timeout", "pack")


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
    for k in TRAIN_KEYS_NOT_IN_RUN_KEY:
        c["train"].pop(k, None)
    if c["train"].get("keep_every") is None:  # runs that keep no checkpoints hash as before the key existed
        c["train"].pop("keep_every", None)
    c["model"] = model
    c["data_fingerprint"] = fingerprint
    return hashlib.sha256(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:12]


def index_fingerprint(cfg: Any) -> str:
    """``data_fingerprint`` of the data ``cfg`` names, from its file list alone (nothing decoded: ``starbench plan``)."""
    from starbench.data import load_subset
    from starbench.data.cache import fingerprint
    return fingerprint(load_subset(cfg, show_progress=False), int(cfg.data.image_size))


def method_jobs(cfg: Any) -> list:
    """The trained sources of ``models=[...]`` (every seed) on the configured data: what ``starbench plan`` lists."""
    from starbench.evaluate.sources import TrainedSource, sources_from_config
    return [s for s in sources_from_config(cfg, index_fingerprint(cfg), torch.device("cpu"))
            if isinstance(s, TrainedSource)]


def data_fingerprint(data: LoadedData) -> str:
    from starbench.data.cache import fingerprint
    return fingerprint(data.index, int(data.images.shape[-1]))


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


def run_folder(cfg: Any, model: str, fp: str) -> Path:
    """``run_dir/models/<model>-<data>-<key>``: where ``model`` trained with ``cfg`` on data ``fp`` lives."""
    return Path(cfg.run_dir) / "models" / f"{model.replace(':', '_')}-{cfg.data.name}-{run_key(cfg, model, fp)}"


def train_method(cfg: Any, model: str, fp: str, show: bool) -> tuple[Any, Path, dict]:
    """Train ``model`` with ``cfg`` through the Trainer, or load it when its run is complete.

    Runs live in ``run_dir/models/<model>-<data>-<key>``: protocols that need the same model trained
    the same way on the same data share it.
    """
    run_dir = run_folder(cfg, model, fp)
    key = run_dir.name.rsplit("-", 1)[1]
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


def inception_weights(cfg: Any) -> "fidm.InceptionWeights":
    """Resolve the FID weights before any work: a wrong file, or none with fid.required=true, fails here."""
    weights = fidm.resolve_inception_weights(cfg.fid)
    if not weights.available and cfg.fid.required:
        raise StarbenchError(f"fid.required=true but {weights.problem}")
    return weights


def save_grid_figure(arrays: dict[str, np.ndarray], columns: list[str], folder: Path) -> None:
    """translations.png from a run record's arrays: ``inputs`` and one ``fake:<method>`` block per method."""
    fakes = {k.split(":", 1)[1]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("fake:")}
    grid_image(torch.from_numpy(arrays["inputs"]), fakes, columns, len(arrays["inputs"])).save(
        folder / "translations.png")


def fmt(x: Optional[float], digits: int = 2) -> str:
    """A table number: 'n/a' for missing or NaN, 'inf' for infinity (identical images' PSNR), no '-0.000'."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "n/a"
    if isinstance(x, float) and np.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = f"{x:.{digits}f}"
    return text.lstrip("-") if float(text) == 0 else text




def failed_row(r: Any, columns: list[str], status_column: str, **known: str) -> dict[str, str]:
    """A table row for a method with no metrics: its name (first column), 'diverged at step N' in
    ``status_column``, the ``known`` cells, n/a elsewhere."""
    row = {c: "n/a" for c in columns}
    row.update({columns[0]: r.name, status_column: r.status, **known})
    return row


def budget_note(results: list, end: str = ".") -> list[str]:
    """'Training budget per method: ...' for the sources trained here (none: no note); over seeds, the total."""
    trained: dict[str, list[dict]] = {}
    for r in results:
        if r.info["kind"] == "trained" and not r.diverged:
            trained.setdefault(r.name, []).append(r.info)
    if not trained:
        return []

    def budget(m: str, runs: list[dict]) -> str:
        if len(runs) == 1:
            return f"{m} {runs[0]['steps']} steps, {runs[0]['train_seconds']:.0f} s"
        return f"{m} {runs[0]['steps']} steps x {len(runs)} seeds, {sum(r['train_seconds'] for r in runs):.0f} s in all"
    return ["Training budget per method: " + "; ".join(budget(m, runs) for m, runs in trained.items()) + end]


def runs_provenance(results: list) -> dict[str, dict]:
    """Each source's provenance by row name (and seed, when a row has several)."""
    names = [r.name for r in results]
    return {(f"{r.name} (seed {r.seed})" if names.count(r.name) > 1 else r.name): r.info for r in results}


def figure_arrays(results: list) -> dict[str, np.ndarray]:
    """translations.png's blocks: one per method (its first seed), none for a method that diverged."""
    out: dict[str, np.ndarray] = {}
    for r in results:
        if not r.diverged and f"fake:{r.name}" not in out:
            out[f"fake:{r.name}"] = r.grid
    return out


def seed_records(per_seed: Optional[list], results: list) -> dict[str, Any]:
    """What a record adds for seeds and learning curves (nothing in a single-seed run without a curve)."""
    out: dict[str, Any] = {}
    if per_seed is not None:
        out["per_seed"] = per_seed
    curve = [{"method": r.name, "seed": "-" if r.seed is None else r.seed, **point}
             for r in results for point in r.curve]
    if curve:
        out["curve"] = curve
    return out


def seeds_notes(cfg: Any, first: str) -> list[str]:
    """How a table over training seeds was made (``first``: what ranking first means in this protocol)."""
    seeds = ", ".join(str(s) for s in cfg.seeds)
    return [
        f"Training seeds {seeds}: every trained method was trained once per seed (its run key includes the seed, so "
        f"runs are shared with single-seed runs of the same seed). Cells give the mean ± sample sd over seeds; "
        f"per_seed.csv holds every seed's own rows. The classifier (classifier.seed={cfg.classifier.seed}) and the "
        f"real-images row do not depend on the training seed. Sources not trained here have one value.",
        "95% CI over seeds (t): Student-t interval of the per-seed errors (clipped to 0-100), i.e. how far training "
        "luck moves a method; "
        "pooled 95% CI: Clopper-Pearson on all seeds' translations together, the test-set sampling error alone.",
        "McNemar p (pooled over seeds): exact McNemar test on (seed, input, target) triples, each seed's translations "
        "paired with StarGAN's of the same seed on the same inputs (a source not trained here against every StarGAN "
        "seed). It pools seeds as more paired data and so tests the difference on these inputs for these training "
        "runs; it does not treat the seed as the unit of replication: where the t-intervals over seeds overlap, read "
        "the difference as within training-seed noise.",
        f"first: in how many seeds the method had {first}.",
    ]


CURVE_METRICS = ("error %", "classifier Frechet", "FID")


def render_curve(record: dict[str, Any], folder: Path) -> None:
    """per_seed.csv, and curve.csv + curve.png (metric vs training step, a line per method, a band of ± sd over
    seeds), when the record has them."""
    if record.get("per_seed"):
        pd.DataFrame(record["per_seed"]).to_csv(folder / "per_seed.csv", index=False)
    if not record.get("curve"):
        return
    df = pd.DataFrame(record["curve"])
    df.to_csv(folder / "curve.csv", index=False)
    metrics = [m for m in CURVE_METRICS if m in df and df[m].notna().any()]
    pyplot = plt()
    fig, axes = pyplot.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for method, sub in df.groupby("method", sort=False):
            stats_ = sub.groupby("step")[metric].agg(["mean", "std", "count"]).reset_index()
            line, = ax.plot(stats_["step"], stats_["mean"], marker="o", ms=3, label=method)
            if (stats_["count"] > 1).any():
                sd = stats_["std"].fillna(0)
                ax.fill_between(stats_["step"], stats_["mean"] - sd, stats_["mean"] + sd, color=line.get_color(),
                                alpha=0.2, lw=0)
        ax.set_xlabel("training step")
        ax.set_title(f"{metric} (lower is better)", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    n_seeds = df.groupby("method")["seed"].nunique().max()
    fig.suptitle(f"{record.get('protocol', '')}: learning curves (the table is taken at each line's last point"
                 + (f"; bands: ± sd over {n_seeds} seeds)" if n_seeds > 1 else ")"), fontsize=9)
    fig.tight_layout()
    fig.savefig(folder / "curve.png", dpi=120)
    pyplot.close(fig)


def origin_notes(results: list) -> list[str]:
    """Where each source that was not trained here came from, and what it noted (resized images)."""
    notes = []
    for r in results:
        if r.info["kind"] == "checkpoint":
            nets = ", ".join(r.info.get("networks") or []) or "none"
            notes.append(f"{r.name}: weights from {r.info['file']} ({r.info['format']}), not trained here; its "
                         f"parameters count the networks it holds ({nets}).")
        elif r.info["kind"] == "translator":
            notes.append(f"{r.name}: a translate-only model, evaluated as it is (not trained here).")
        elif r.info["kind"] == "folder":
            notes.append(f"{r.name}: {r.info['images']} translations read from the folder {r.info['folder']} "
                         f"(made outside starbench).")
        notes += r.notes
    return notes
