"""The table's converged column (``protocols.tables.Method.budget``): the plateau test on the seed-mean curve, and a
method at chance marked as not having learned, since a curve flat at chance passes the plateau test."""
from types import SimpleNamespace

import numpy as np

from starbench.protocols.tables import Method

N = 441  # translations per seed, as the demo's RaFD table


def run(seed: int, error: float, curve: list[float]) -> SimpleNamespace:
    """A trained seed whose final translations are wrong at ``error`` and whose curve has ``curve`` every 500."""
    wrong = np.zeros(N, dtype=bool)
    wrong[: round(error * N)] = True
    points = [{"step": 500 * (k + 1), "error %": e} for k, e in enumerate(curve)]
    info = {"kind": "trained", "steps": 500 * len(curve), "generator_updates": 100 * len(curve), "train_seconds": 60.0}
    return SimpleNamespace(name="m", seed=seed, diverged=None, info=info, curve=points, wrong=wrong)


def converged(runs: list, not_learned=None) -> str:
    return Method("m", runs, seeded=True).budget(lambda r: r.wrong, not_learned)["converged"]


def test_flat_at_chance_is_not_a_result():
    at_chance = [run(s, 0.876, [85.5, 85.7, 86.0, 85.6, 85.9, 87.4, 87.7, 87.6]) for s in range(4)]
    assert converged(at_chance) == "yes"  # the plateau test alone: flat
    cell = converged(at_chance, not_learned=75.0)
    assert cell.startswith("did not learn (87.5% error); plateau test: yes"), cell


def test_learned_methods_keep_the_plateau_verdict():
    flat = [run(s, 0.05, [60, 30, 15, 8, 6, 5.2, 4.9, 5.0]) for s in range(4)]
    falling = [run(s, 0.05, [80, 70, 60, 50, 40, 30, 15, 5.0]) for s in range(4)]
    assert converged(flat, not_learned=75.0) == "yes"
    assert converged(falling, not_learned=75.0).startswith("NO (trend")
    assert converged([run(0, 0.80, [85, 84, 83, 82, 81, 81, 80, 80])], not_learned=75.0).startswith("did not learn")
