"""CelebA loader (Liu et al. 2015's release): ``img_align_celeba/``, ``list_attr_celeba.txt``,
``list_eval_partition.txt``.

Labels are the selected attributes (``data.attributes``, default the paper's five) as 0/1 flags.
``data.split=standard`` uses the partition file (0 train, 1 val, 2 test); ``data.split=stargan``
reproduces the public StarGAN code: the attribute lines shuffled with ``random.seed(1234)``, the
first 1,999 as test and the rest as train (the partition file is then not needed).
"""
from __future__ import annotations

import difflib
import random
from pathlib import Path
from typing import Any

from starbench.data.domains import DomainSpec
from starbench.data.index import DatasetIndex, ImageRecord, Problem, require_dir
from starbench.errors import StarbenchError
from starbench.registry import register_dataset

PARTITION_SPLITS = {"0": "train", "1": "val", "2": "test"}
STARGAN_TEST_IMAGES = 1999


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise StarbenchError(f"CelebA file {path} does not exist")
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read().splitlines()


def read_attribute_header(path: Path, lines: list[str]) -> tuple[int, list[str]]:
    if len(lines) < 2:
        raise StarbenchError(f"{path}: expected an image count on line 1 and attribute names on line 2")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise StarbenchError(f"{path}, line 1: expected the number of images, got '{lines[0][:40]}'") from None
    names = lines[1].split()
    if not names:
        raise StarbenchError(f"{path}, line 2: expected the attribute names")
    return count, names


def select_columns(path: Path, names: list[str], wanted: list[str]) -> list[int]:
    cols = []
    for attr in wanted:
        if attr not in names:
            close = difflib.get_close_matches(attr, names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise StarbenchError(f"{path}: no attribute '{attr}' (data.attributes){hint} "
                                 f"The file has: {' '.join(names)}")
        cols.append(names.index(attr))
    return cols


@register_dataset("celeba", "CelebA aligned faces: selected binary attributes (default hair colour, gender, age)")
def load_celeba(root: Path, cfg: Any) -> DatasetIndex:
    root = require_dir(Path(root), "CelebA data")
    images = require_dir(root / "img_align_celeba", "CelebA image")
    attr_path = root / "list_attr_celeba.txt"
    lines = _read_lines(attr_path)
    count, names = read_attribute_header(attr_path, lines)
    wanted = list(cfg.attributes)
    cols = select_columns(attr_path, names, wanted)
    domains = DomainSpec.multilabel(wanted)
    problems: list[Problem] = []
    notes: list[str] = []
    rows: list[tuple[int, str, tuple[float, ...]]] = []  # (line number, file name, label)
    for lineno, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1:
            problems.append(Problem(str(attr_path), f"expected a file name and {len(names)} values of 1/-1, "
                                                    f"found {len(parts) - 1} values", lineno))
            continue
        values = parts[1:]
        if any(v not in ("1", "-1", "0") for v in values):
            bad = next(v for v in values if v not in ("1", "-1", "0"))
            problems.append(Problem(str(attr_path), f"attribute value '{bad}' is not 1 or -1", lineno))
            continue
        rows.append((lineno, parts[0], tuple(1.0 if values[c] == "1" else 0.0 for c in cols)))
    listed = sum(1 for line in lines[2:] if line.strip())
    if count != listed:
        notes.append(f"line 1 announces {count} images; the file lists {listed}")

    if cfg.split == "standard":
        splits = _partition(root / "list_eval_partition.txt", problems)
    elif cfg.split == "stargan":
        order = list(range(len(lines) - 2))  # the public code shuffles every line after the header
        random.Random(1234).shuffle(order)
        test_lines = {i + 3 for i in order[:STARGAN_TEST_IMAGES]}
        splits = {name: ("test" if ln in test_lines else "train") for ln, name, _ in rows}
        notes.append("split: public StarGAN code (random.seed(1234) shuffle, first 1,999 lines test)")
    else:
        raise StarbenchError(f"config key 'data.split': '{cfg.split}' is not one of standard, stargan")

    records: list[ImageRecord] = []
    for lineno, name, label in rows:
        path = images / name
        if not path.is_file():
            problems.append(Problem(str(path), f"image listed on line {lineno} of {attr_path.name} but missing"))
            continue
        split = splits.get(name)
        if split is None:
            problems.append(Problem(str(root / "list_eval_partition.txt"), f"no partition entry for {name}"))
            continue
        records.append(ImageRecord(str(path), label, split, {"line": lineno}))
    return DatasetIndex("celeba", root, domains, records, "CelebA aligned", problems,
                        tuple(cfg.crop) if cfg.crop else None, notes)  # type: ignore[arg-type]


def _partition(path: Path, problems: list[Problem]) -> dict[str, str]:
    out: dict[str, str] = {}
    for lineno, line in enumerate(_read_lines(path), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in PARTITION_SPLITS:
            problems.append(Problem(str(path), "expected '<file name> <0|1|2>'", lineno))
            continue
        out[parts[0]] = PARTITION_SPLITS[parts[1]]
    return out
