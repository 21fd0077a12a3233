"""Apply a trained model to image files: ``starbench translate``.

Any weights file starbench reads (``starbench.loading``): a starbench ``checkpoint.pt`` (the model is
rebuilt from the file alone: its config and domain names travel inside it; inputs are preprocessed
exactly as in training) or the public StarGAN release's bare generator (``200000-G.ckpt``: names from
the label size or ``domains=[...]``, the public test path's centre crop, then ``image_size``, default
128). Every input is read before anything is written; outputs are PNG, one per input and target.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch

from starbench.data.batches import to_float
from starbench.data.domains import DomainSpec
from starbench.data.images import preprocess, read_rgb, summarize_notes
from starbench.data.index import is_image
from starbench.devices import resolve_device
from starbench.errors import StarbenchError
from starbench.loading import open_weights
from starbench.progress import console
from starbench.train.samples import save_image


def target_vectors(domains: DomainSpec, names: Sequence[str]) -> list[tuple[str, torch.Tensor]]:
    """Target label vectors for ``target=...``.

    One-hot domains: one output per name. Multi-label domains (CelebA): the names together form one
    target, those attributes on and the rest off. Joint: names from one dataset's part, mask set.
    """
    def check(spec: DomainSpec, name: str) -> None:
        if name not in spec.names:
            raise StarbenchError(f"unknown target '{name}'; valid targets: {', '.join(spec.names)}")

    if domains.is_joint:
        for dataset in domains.dataset_names:
            part = domains.part(dataset)
            if all(n in part.names for n in names):
                return [(label, torch.from_numpy(domains.embed(dataset, vec[None].numpy())[0]))
                        for label, vec in target_vectors(part, names)]
        valid = ", ".join(n for n in domains.names if not n.startswith("mask:"))
        raise StarbenchError(f"targets {', '.join(names)} are not all from one dataset; valid targets: {valid}")
    for n in names:
        check(domains, n)
    if domains.kind == "onehot":
        return [(n, torch.from_numpy(domains.label(n))) for n in names]
    return [("+".join(names), torch.from_numpy(domains.label(list(names))))]


def list_inputs(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and is_image(p))
        if not files:
            raise StarbenchError(f"input folder {path} holds no .jpg/.png images")
        return files
    raise StarbenchError(f"input {path} does not exist")


@torch.no_grad()
def translate_files(checkpoint: Path | str, inputs: Path | str, targets: Sequence[str], out: Path | str,
                    source: Sequence[str] = (), device: str = "cpu", batch_size: int = 16,
                    domains: Sequence[str] = (), image_size: Optional[int] = None) -> list[Path]:
    """Translate every input image to every target; returns the written PNG paths."""
    loaded = open_weights(checkpoint, names=domains, image_size=image_size)
    model = loaded.model
    model.to(resolve_device(device))
    tvecs = target_vectors(model.domains, targets)
    src = torch.zeros(model.domains.label_dim)
    if source:
        src = target_vectors(model.domains, source)[0][1]
    files = list_inputs(Path(inputs))
    images, bad, notes = [], [], []
    for p in files:  # every input is read before anything is written: a bad file leaves out/ untouched
        try:
            decoded = read_rgb(p)
            images.append(torch.from_numpy(preprocess(decoded.image, loaded.image_size, loaded.crop, p)))
            notes += decoded.notes
        except StarbenchError as exc:
            bad.append(str(exc))
    if bad:
        raise StarbenchError(f"{len(bad)} input image(s) cannot be used (nothing was written):\n  " + "\n  ".join(bad))
    for line in summarize_notes(notes):
        console.print(f"note: input {line}", highlight=False)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        x = to_float(torch.stack(images[start:start + batch_size])).to(model.device)
        s = src.expand(len(chunk), -1).to(model.device)
        for name, t in tvecs:
            y = model.translate(x, s, t.expand(len(chunk), -1).to(model.device))
            for p, img in zip(chunk, y):
                dest = out / f"{p.stem}_{name}.png"
                save_image(dest, img)
                written.append(dest)
    return written

