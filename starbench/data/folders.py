"""Scanning ``<root>/<domain>/<image>`` folders (RaFD's train/test layout and users' own folders)."""
from __future__ import annotations

from pathlib import Path

from starbench.data.index import Problem, is_image


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
