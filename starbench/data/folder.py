"""Folder loader for users' own data: each sub-folder of ``root`` is a domain (one-hot labels); the scan of
``<root>/<domain>/<image>`` folders is shared with RaFD's train/test layout.

``root/<domain>/*.jpg``: a seeded ``data.test_fraction`` of each domain's images is held out.
``root/train/<domain>/`` + ``root/test/<domain>/``: the split is the folders'.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from starbench.data.domains import DomainSpec
from starbench.data.index import DatasetIndex, ImageRecord, Problem, is_image, require_dir
from starbench.data.splits import split_groups
from starbench.errors import StarbenchError
from starbench.registry import register_dataset


def scan_domain_folders(root: Path) -> tuple[dict[str, list[Path]], list[Problem]]:
    """Images of each sub-folder of ``root``, sorted; an empty sub-folder is a problem."""
    found: dict[str, list[Path]] = {}
    problems: list[Problem] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = sorted(p for p in sub.iterdir() if p.is_file() and is_image(p))
        if not images:
            problems.append(Problem(str(sub), "empty domain folder: expected at least one .jpg/.png image"))
            continue
        found[sub.name] = images
    return found, problems


def has_split_layout(root: Path) -> bool:
    return (root / "train").is_dir() and (root / "test").is_dir()


@register_dataset("folder", "your own images: one sub-folder per domain")
def load_folder(root: Path, cfg: Any) -> DatasetIndex:
    root = require_dir(Path(root), "image")
    problems: list[Problem] = []
    per_split: dict[str, dict[str, list[Path]]] = {}
    if has_split_layout(root):
        for split in ("train", "test"):
            per_split[split], found_problems = scan_domain_folders(root / split)
            problems.extend(found_problems)
        notes = ["split: given by the train/ and test/ folders"]
    else:
        per_split["all"], problems = scan_domain_folders(root)
        notes = [f"split: seeded ({cfg.split_seed}) {cfg.test_fraction:.0%} of each domain's images held out"]
    names = sorted({d for folders in per_split.values() for d in folders})
    if len(names) + len(problems) < 2:
        raise StarbenchError(f"image folder {root}: expected at least two domain sub-folders with images "
                             f"(root/<domain>/*.jpg), found {len(names)}")
    domains = DomainSpec.onehot(names)
    records: list[ImageRecord] = []
    for split, folders in per_split.items():
        for domain, paths in folders.items():
            splits = split_groups([str(p) for p in paths], cfg.test_fraction, cfg.split_seed) if split == "all" \
                else [split] * len(paths)
            label = tuple(domains.label(domain).tolist())
            records.extend(ImageRecord(str(p), label, s, {"domain": domain}) for p, s in zip(paths, splits))
    return DatasetIndex("folder", root, domains, records, "one sub-folder per domain", problems,
                        tuple(cfg.crop) if cfg.crop else None, notes)  # type: ignore[arg-type]
