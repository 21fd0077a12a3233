"""How long a committed command's training would take with ``jobs=2`` under the old run order, under longest-first, and
under longest-first with the judge shared.

A simulation, not a measurement: it replays the training seconds that each committed folder's ``provenance.json``
records (per run, and the judge members' when the command trained them) on two processes, under three rules:

- ``protocol order`` (starbench before the probe): the protocol's process trains its judges, then the first run in
  the protocol's order that nobody has started; the helper takes the last one nobody has started;
- ``longest first`` (``evaluate.parallel.Schedule``): the helper first spends ``--probe`` seconds timing the runs'
  steps, then both take the run with the most training left; the estimates are taken as exact here (on RaFD on the
  AMD EPYC the probe estimated 870, 491, 391, 175 s for runs that took 901, 487, 417, 177 s);
- ``judge shared`` (tried on 2026-12-07 and not kept, ``benchmarks/results/schedule/README.md``): as longest first,
  but after its probe the helper trains the last of the judge's members (of 3, one), and the protocol's process the
  others.

Scoring (translation, metrics, learning-curve points) runs in the protocol's process, a run's once it is finished, at
one cost per run read off the folder (see ``work_of``); while the protocol waits for a helper's run it scores that
run's kept points. The lower bound is max(longest run and its scoring, half of all work). Data loading and start-up
are left out, so the figures fall short of a command's wall time by a minute or so.

    python benchmarks/schedule_simulation.py FOLDER ... [--probe 40] [--trained-only] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Optional


def work_of(folder: Path, trained_only: bool = False) -> tuple[list[tuple[str, float]], list[float], float, str]:
    """The runs (name, training seconds) in the protocol's order, the judge's members' training seconds (those the
    command trained), a run's scoring seconds (the median over runs of its step's wall time less its training, or the
    whole step where a helper trained it), the CPU."""
    prov = json.loads((folder / "provenance.json").read_text())
    runs = [(name, float(info["train_seconds"])) for name, info in prov["runs"].items()
            if "train_seconds" in info and not (trained_only and info.get("reused"))]
    judge = prov.get("classifier") or {}
    members = judge.get("members") or [judge]
    judges = [float(m.get("train_seconds") or 0) for m in members if not m.get("cached")]
    steps = prov.get("wall_seconds_per_step", {})
    scoring = []
    for name, train in runs:
        wall = [v for k, v in steps.items() if k.startswith(f"method {name}:")]
        if wall:
            scoring.append(wall[0] - train if wall[0] >= train else wall[0])
    return runs, judges, statistics.median(scoring) if scoring else 0.0, prov.get("numerical_path", {}).get("cpu", "?")


def simulate(runs: list[tuple[str, float]], judges: list[float], score: float, rule: str, probe: float) -> float:
    """When every run is trained and scored: two processes, the helper training only, the protocol training the
    judge's members (all, or under ``judge shared`` all but the helper's share) and scoring (each run once it is
    finished; while it waits for a helper's run it scores that run's kept learning-curve points, all but a tenth of
    the scoring)."""
    unstarted = list(range(len(runs)))
    shared = sum(judges[len(judges) - len(judges) // 2:]) if rule == "judge shared" else 0.0  # 2 processes
    helper_free = probe + shared if rule != "protocol order" else 0.0
    helper_runs: list[tuple[float, int]] = []  # (finish time, run) of the helper's runs
    t, scored = sum(judges) - shared, 0

    def take(who: str) -> int:  # before the probe has answered, the protocol goes in its own order
        estimated = rule != "protocol order" and (who == "helper" or t >= probe)
        i = (max(unstarted, key=lambda k: (runs[k][1], -k)) if estimated
             else unstarted[0] if who == "protocol" else unstarted[-1])
        unstarted.remove(i)
        return i

    while scored < len(runs):
        while unstarted and helper_free <= t:  # the helper takes its next run whenever it is free before now
            i = take("helper")
            helper_free += runs[i][1]
            helper_runs.append((helper_free, i))
        done = sorted(f for f, _ in helper_runs if f <= t)
        if done:  # a helper's finished run: score it
            helper_runs.remove(next(r for r in helper_runs if r[0] == done[0]))
            t, scored = t + score, scored + 1
        elif unstarted:  # train the next run here, then score it
            i = take("protocol")
            t, scored = t + runs[i][1] + score, scored + 1
        else:  # wait for the helper's next run, scoring its kept points meanwhile
            finish = min(f for f, _ in helper_runs)
            t = max(finish, t) + (0.1 * score if finish - t >= 0.9 * score else score - (finish - t))
            helper_runs.remove(next(r for r in helper_runs if r[0] == finish))
            scored += 1
    return t


def lower_bound(runs: list[tuple[str, float]], judges: list[float], score: float) -> float:
    """No schedule on two processes ends sooner: half of all the work, the longest run with its scoring, the longest
    judge member."""
    total = sum(judges) + sum(t for _, t in runs) + score * len(runs)
    return max(total / 2, max(t for _, t in runs) + score, max(judges, default=0.0))


def emit(lines: list[str], out: Optional[Path]) -> None:
    """A report's Markdown lines to standard output, and to ``out`` when given."""
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if out:
        out.write_text(text)


def minutes(s: float) -> str:
    m, sec = divmod(int(round(s)), 60)
    return f"{m // 60} h {m % 60} min" if m >= 60 else f"{m} min {sec} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--probe", type=float, default=40.0, help="seconds the probe takes before the helper trains")
    ap.add_argument("--judges", type=float, help="the judges' training seconds instead of the folder's (which are 0 "
                    "where the command found them cached)")
    ap.add_argument("--trained-only", action="store_true", help="leave out the runs the command found finished "
                    "(without it every run counts, as a command from an empty cache would train it)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    lines = ["| folder | CPU | runs | judges s | scoring s a run | all work s | lower bound | protocol order | "
             "longest first | judge shared | saved (shared against longest first) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for folder in a.folders:
        runs, judges, score, cpu = work_of(folder, a.trained_only)
        if a.judges is not None:  # three members of equal cost
            judges = [a.judges / 3] * 3
        total = sum(judges) + sum(t for _, t in runs) + score * len(runs)
        bound = lower_bound(runs, judges, score)
        old, new, shared = (simulate(runs, judges, score, rule, a.probe)
                            for rule in ("protocol order", "longest first", "judge shared"))
        saved = minutes(new - shared) if shared <= new else "-" + minutes(shared - new)
        lines.append(f"| `{folder}` | {cpu} | {len(runs)} | {sum(judges):.0f} | {score:.0f} | {total:.0f} | "
                     f"{minutes(bound)} | {minutes(old)} | {minutes(new)} | {minutes(shared)} | {saved} |")
    emit(lines, a.out)


if __name__ == "__main__":
    main()
