"""Seeded train/test splits shared by the RaFD and folder loaders."""
from __future__ import annotations

from typing import Hashable, Sequence

import numpy as np


def split_groups(groups: Sequence[Hashable], test_fraction: float, seed: int) -> list[str]:
    """'train'/'test' per item, holding out a seeded ``test_fraction`` of the distinct groups.

    With one group per item this is a plain image split; with subject ids as groups no subject
    appears in both splits. At least one group is held out and at least one kept.
    """
    distinct = sorted(set(groups), key=str)
    if len(distinct) < 2:
        return ["train"] * len(groups)
    n_test = min(len(distinct) - 1, max(1, round(len(distinct) * test_fraction)))
    order = np.random.default_rng(seed).permutation(len(distinct))
    test = {distinct[i] for i in order[:n_test]}
    return ["test" if g in test else "train" for g in groups]
