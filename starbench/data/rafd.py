"""RaFD loader (Langner et al. 2010's release): raw RaFD file names, or the public code's ``train|test/<expression>/``.

Raw layout: every image directly in ``root``, named
``Rafd{angle}_{subject}_{Caucasian|Moroccan|Kid}_{male|female}_{expression}_{left|frontal|right}.jpg``.
Only the configured camera angles are kept (default 045/090/135, the paper's 4,824 images), and the
90/10 split is seeded, by subject by default (``data.split_by=subject``) so that no face is seen in
both splits; ``data.split_by=image`` splits images instead (the paper does not say which it used).

Split layout: ``root/train/<expression>/`` and ``root/test/<expression>/``; the split is the
folders'. Files there keep their RaFD metadata when their names parse.

Every record keeps subject, ethnicity, gender, expression, gaze and angle: a neutral test image
and the same subject's photo in another expression at the same gaze and angle form a pair with
real ground truth.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

from starbench.data.domains import DomainSpec
from starbench.data.folder import has_split_layout, scan_domain_folders
from starbench.data.index import DatasetIndex, ImageRecord, Problem, is_image, require_dir
from starbench.data.splits import split_groups
from starbench.data.synth import RAFD_EXPRESSIONS
from starbench.errors import StarbenchError
from starbench.registry import register_dataset

RAFD_NAME = re.compile(
    r"^Rafd(?P<angle>\d{3})_(?P<subject>\d+)_(?P<ethnicity>Caucasian|Moroccan|Kid)_(?P<gender>male|female)_"
    r"(?P<expression>" + "|".join(RAFD_EXPRESSIONS) + r")_(?P<gaze>left|frontal|right)$", re.IGNORECASE)
EXPECTED_NAME = ("Rafd{angle}_{subject}_{Caucasian|Moroccan|Kid}_{male|female}_{expression}_{left|frontal|right}"
                 ".jpg")


def rafd_domains() -> DomainSpec:
    """The 8 expressions in alphabetical order, as ImageFolder numbers them (angry=0 ... surprised=7)."""
    return DomainSpec.onehot(RAFD_EXPRESSIONS)


def parse_rafd_name(path: Path) -> Optional[dict[str, Any]]:
    """Subject, ethnicity, gender, expression, gaze and angle from a RaFD file name, or None."""
    m = RAFD_NAME.match(path.stem)
    if not m:
        return None
    lowered = ("expression", "gaze", "gender")
    meta: dict[str, Any] = {k: v.lower() if k in lowered else v for k, v in m.groupdict().items()}
    meta["subject"] = int(meta["subject"])
    return meta


@register_dataset("rafd", "Radboud Faces: 8 expressions, raw RaFD names or train|test/<expression>/")
def load_rafd(root: Path, cfg: Any) -> DatasetIndex:
    root = require_dir(Path(root), "RaFD data")
    domains = rafd_domains()
    crop = tuple(cfg.crop) if cfg.crop else None
    if has_split_layout(root):
        records, problems, notes = _load_split_layout(root, domains)
        layout = "train|test/<expression>/"
    else:
        records, problems, notes = _load_raw_layout(root, domains, cfg)
        layout = "raw RaFD file names"
    return DatasetIndex("rafd", root, domains, records, layout, problems, crop, notes)  # type: ignore[arg-type]


def _load_raw_layout(root: Path, domains: DomainSpec, cfg: Any):
    angles = {str(a).zfill(3) for a in cfg.angles}
    problems: list[Problem] = []
    found: list[tuple[Path, dict[str, Any]]] = []
    other_angles = 0
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    for path in files:
        if not is_image(path):
            continue
        meta = parse_rafd_name(path)
        if meta is None:
            problems.append(Problem(str(path), f"file name does not parse as RaFD; expected {EXPECTED_NAME}"))
        elif meta["angle"] not in angles:
            other_angles += 1
        else:
            found.append((path, meta))
    if not found and not problems:
        raise StarbenchError(
            f"RaFD data in {root}: found no RaFD images; expected files named {EXPECTED_NAME} directly in it, "
            f"or the folders train/<expression>/ and test/<expression>/")
    groups = [m["subject"] if cfg.split_by == "subject" else str(p) for p, m in found]
    if cfg.split_by not in ("subject", "image"):
        raise StarbenchError(f"config key 'data.split_by': '{cfg.split_by}' is not one of subject, image")
    splits = split_groups(groups, cfg.test_fraction, cfg.split_seed)
    records = [ImageRecord(str(p), tuple(domains.label(m["expression"]).tolist()), s, m)
               for (p, m), s in zip(found, splits)]
    notes = [f"kept camera angles {', '.join(sorted(angles))}; {other_angles} file(s) at other angles left out",
             f"split: seeded ({cfg.split_seed}) {cfg.test_fraction:.0%} of {cfg.split_by}s held out for test"]
    return records, problems, notes


def _load_split_layout(root: Path, domains: DomainSpec):
    records: list[ImageRecord] = []
    problems: list[Problem] = []
    notes = ["split: given by the train/ and test/ folders"]
    for split in ("train", "test"):
        folders, folder_problems = scan_domain_folders(root / split)
        problems.extend(folder_problems)
        for expression, paths in folders.items():
            if expression not in domains.names:
                problems.append(Problem(str(root / split / expression),
                                        f"unknown expression folder; expected one of {', '.join(domains.names)}"))
                continue
            for path in paths:
                meta = parse_rafd_name(path) or {"expression": expression}
                if meta["expression"] != expression:
                    problems.append(Problem(str(path), f"file name says '{meta['expression']}' but it is in the "
                                                       f"'{expression}' folder"))
                    continue
                records.append(ImageRecord(str(path), tuple(domains.label(expression).tolist()), split, meta))
        missing = [e for e in domains.names if e not in folders]
        if missing:
            notes.append(f"{split}/ has no folder for: {', '.join(missing)}")
    return records, problems, notes
