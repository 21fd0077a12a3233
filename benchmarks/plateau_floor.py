"""How short could each method's budget be and still pass the plateau test, and how long would the main command take
then: the floor of its wall time with every method converged at the demo preset's sizes.

A reading of committed results, no training. For each trained method of a seed study (``curve.csv``: a curve point
per method, seed and step) it takes the seed-mean error curve and, at every curve step T, applies the plateau test
of ``starbench.evaluate.curves`` to the points up to T with the half-width of the pooled 95% Clopper-Pearson interval
of the seed-mean error at T over all seeds' translations (as the seed study's table applies it at its last step).
The shortest budget is the first T from which the test passes at T and at every later curve step (a curve can
pass once by chance on its way down).

Then, for each main-command folder given (``provenance.json``: each run's training seconds and steps, the judges'
seconds, a run's scoring seconds, the CPU), every run's seconds are scaled to its shortest budget (a step costs the
same all through a run) and ``schedule_simulation.simulate`` replays the command's two processes, longest first, at
the preset's budgets and at the shortest ones. The judges and every run count as trained, as from an empty cache,
also where the folder's command found them cached (their recorded seconds are from the command that trained them).

Read the shortest budgets as estimates: the presets train at a constant learning rate, so a run stopped at T follows
the same trajectory as the first T steps of a longer one, but its last point would be scored with the weight
average over its own last 10% (the study's points before its last step are the raw weights); and the simulation
leaves out data loading and start-up, so it falls a minute or less short of a measured command.

    python benchmarks/plateau_floor.py results/seeds/rafd_expression \\
        benchmarks/results/schedule/longest_first benchmarks/results/cross_machine/intel_amx_bf16_icgan64 \\
        [--probe 40] [--out FILE]
    python benchmarks/plateau_floor.py results/seeds/celeba_attributes results/celeba_attributes
    python benchmarks/plateau_floor.py results/seeds/joint_training results/joint_training
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from schedule_simulation import emit, lower_bound, minutes, simulate, work_of

from starbench.evaluate.curves import plateau
from starbench.metrics.stats import error_rate


def pooled_halfwidth(error: float, n: int) -> float:
    """Half-width, in points, of the 95% Clopper-Pearson interval of an error of ``error`` % over ``n`` outcomes."""
    k = round(error * n / 100)
    ci = error_rate(np.array([True] * k + [False] * (n - k)))
    return 100 * (ci.high - ci.low) / 2


def seed_mean_curves(study: Path) -> dict[str, pd.Series]:
    """Per method, its error % averaged over seeds at every step that all of its seeds scored."""
    curve = pd.read_csv(study / "curve.csv")
    out = {}
    for method, rows in curve.groupby("method", sort=False):
        table = rows.pivot(index="step", columns="seed", values="error %").dropna()
        out[str(method)] = table.mean(axis=1)
    return out


def translations(study: Path) -> dict[str, int]:
    """Per method, how many translations its seed-mean final error pools (all seeds' targets on RaFD, all seeds'
    edits on CelebA); empty where the record has no such rows (joint training: see ``--translations``)."""
    record = json.loads((study / "record.json").read_text())
    n: dict[str, int] = {}
    for row in record.get("per_target", record.get("per_edit", [])):
        n[row["method"]] = n.get(row["method"], 0) + int(row.get("n generated", row.get("n", 0)))
    return n


def judges_of(prov: dict) -> list[float]:
    """The judge's members' training seconds (a folder's provenance), cached or not: a command from an empty cache
    trains them all."""
    judge = prov.get("classifier") or {}
    return [float(m.get("train_seconds") or 0) for m in judge.get("members") or [judge]]


def shortest_budget(mean: pd.Series, n: int) -> tuple[int | None, list[tuple[int, str]]]:
    """The first curve step from which the plateau test passes at every later step, and the verdict at each step."""
    points = [(int(s), float(e)) for s, e in mean.items()]
    verdicts = []
    for i in range(len(points)):
        upto = points[: i + 1]
        verdicts.append((upto[-1][0], plateau(upto, pooled_halfwidth(upto[-1][1], n)).text()))
    passing = [v == "yes" for _, v in verdicts]
    first = next((i for i in range(len(passing)) if all(passing[i:])), None)
    return (verdicts[first][0] if first is not None else None), verdicts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study", type=Path, help="a seed study's results folder (curve.csv, record.json)")
    ap.add_argument("commands", nargs="+", type=Path, help="main-command folders (provenance.json), one per CPU")
    ap.add_argument("--probe", type=float, default=40.0, help="seconds the probe takes before the helper trains")
    ap.add_argument("--translations", type=int, default=441, help="translations per seed where the record does not "
                    "count them (joint training: 63 inputs x 7 targets)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()

    means, counts = seed_mean_curves(a.study), translations(a.study)
    seeds = pd.read_csv(a.study / "curve.csv").groupby("method")["seed"].nunique()
    counts = {m: counts.get(m) or a.translations * int(seeds[m]) for m in means}
    lines = [f"Seed study `{a.study}`: the plateau test on each method's seed-mean curve cut at each curve step.", "",
             "| method | seeds | preset steps | seed-mean error % at the preset | shortest passing budget | "
             "error % there | verdict at each curve step |", "|---|---|---|---|---|---|---|"]
    shortest: dict[str, int] = {}
    for method, mean in means.items():
        first, verdicts = shortest_budget(mean, counts[method])
        last = int(mean.index[-1])
        shortest[method] = first if first is not None else last
        there = (str(first), f"{mean[first]:.2f}") if first is not None else ("none", "-")
        trail = "; ".join(f"{s}: {v.split(' (')[0]}" for s, v in verdicts)
        lines.append(f"| {method} | {seeds[method]} | {last} | {mean.iloc[-1]:.2f} | {there[0]} | {there[1]} | "
                     f"{trail} |")

    lines += ["", "The main command (jobs=2: two processes of one thread, longest first), simulated on each folder's "
              "measured seconds:", "",
              "| folder | CPU | judges s | runs' training s at the preset | at the shortest budgets | "
              "preset: simulated | shortest: simulated | shortest: lower bound |",
              "|---|---|---|---|---|---|---|---|"]
    for folder in a.commands:
        runs, _, score, cpu = work_of(folder)
        prov = json.loads((folder / "provenance.json").read_text())
        judges = judges_of(prov)
        steps = {name: int(info["steps"]) for name, info in prov["runs"].items() if "steps" in info}
        cut = [(name, sec * shortest.get(name, steps[name]) / steps[name]) for name, sec in runs]
        bound = lower_bound(cut, judges, score)
        preset, floor = (simulate(r, judges, score, "longest first", a.probe) for r in (runs, cut))
        lines.append(f"| `{folder}` | {cpu} | {sum(judges):.0f} | "
                     + ", ".join(f"{n} {t:.0f}" for n, t in runs) + " | "
                     + ", ".join(f"{n} {t:.0f}" for n, t in cut)
                     + f" | {minutes(preset)} | {minutes(floor)} | {minutes(bound)} |")
    emit(lines, a.out)


if __name__ == "__main__":
    main()
