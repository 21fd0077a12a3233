"""Convergence study: how many steps, and how many seconds, each method needs before its learning curve flattens.

``run`` trains one method or several (one variant of their demo settings) for a long budget through a protocol
(``rafd_expression``; ``celeba_attributes`` or ``joint_training`` with ``--protocol``) with a learning curve, so
every kept checkpoint is scored by the protocol's own metrics: classification error (CelebA: target error,
100 - target %), classifier Fréchet distance, KID, L1 to the ground-truth photo (RaFD), against training step and
training wall time. Each trained row's curve goes to ``benchmarks/results/convergence/<prefix><row>-<variant>.csv``
(prefix ``celeba-`` for CelebA, ``joint-`` for joint training, whose rows are StarGAN's two variants, SNG and JNT)
with a ``.json`` beside it (the overrides, the machine, the threads, the seconds, the protocol's own plateau verdict
at the last step). ``report`` draws every saved curve (error against step and against seconds, one figure per
protocol) and applies the plateau rule of ``starbench.evaluate.curves`` to each.

Runs share ``runs/study`` (not committed): a run already trained is only re-scored. Several methods in one ``run``
share the judge and train two at a time (``jobs``, as the protocol does).

Usage:
  python benchmarks/convergence.py run --method stargan --variant preset --steps 4000 --every 250
  python benchmarks/convergence.py run --method stargan --variant ncritic1 --steps 2000 --every 125 \\
      --set stargan.n_critic=1
  python benchmarks/convergence.py run --protocol celeba_attributes --method stargan,diat,cyclegan,icgan \\
      --variant x3 --steps 6000,960,720,18000 --runs runs     # the protocol's curve points and run folders
  python benchmarks/convergence.py run --protocol joint_training --method stargan --variant x2 --steps 12000 \\
      --runs runs                                             # StarGAN-SNG and StarGAN-JNT, 12,000 steps each
  python benchmarks/convergence.py run --method stargan,icgan --variant x2 --steps 12000 --runs runs \\
      --set "seeds=[0,1,2]"                                   # a curve per method and seed (suffix -seedN)
  python benchmarks/convergence.py report
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from starbench.config import resolve
from starbench.devices import cpu_label
from starbench.evaluate.curves import learned_verdict, plateau
from starbench.evaluate.parallel import side_by_side
from starbench.metrics.stats import error_rate
from starbench.protocols.rafd_expression import NOT_LEARNED
from starbench.registry import PROTOCOLS
from starbench.report import plt

OUT = Path(__file__).parent / "results" / "convergence"
RUNS = Path("runs") / "study"
STUDY = ["train.progress=false", "fid.download=false", "curve_distances=true", "train.tensorboard=false"]



# per protocol: the prefix of its curve files, the record's table whose rows carry the converged column, that
# table's column naming the row, and whether it takes models=[...] (joint_training trains one model, StarGAN, as
# its two variants, SNG and JNT)
STUDIED = {"rafd_expression": ("", "table3", "method", True),
           "celeba_attributes": ("celeba-", "table1", "method", True),
           "joint_training": ("joint-", "table", "model", False)}


def run(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = args.method.split(",")
    steps = _per_method(args.steps, methods, "--steps")
    every = _per_method(args.every, methods, "--every") if args.every else {}
    runs, out = Path(args.runs), Path(args.out)
    prefix, table, row_key, takes_models = STUDIED[args.protocol]
    name = f"{prefix}{'+'.join(methods)}-{args.variant}"
    chosen = [f"models=[{','.join(methods)}]"] if takes_models else []
    overrides = [f"protocol={args.protocol}", *chosen,
                 *[f"train.model_steps.{m}={steps[m]}" for m in methods],
                 *[f"curve_model_every.{m}={every[m]}" for m in every], *STUDY, f"run_dir={runs}",
                 f"results_dir={runs / 'results' / name}", *args.set]
    if args.threads:  # one process at that many threads
        overrides.append("jobs=1")
    cfg, protocol = resolve(overrides), PROTOCOLS.get(args.protocol)
    start = time.perf_counter()
    with side_by_side(cfg, protocol):  # as `starbench run` does: `jobs` processes (2 on 2 cores), 1 thread each
        result = protocol(cfg)
    seconds = time.perf_counter() - start
    curve = pd.read_csv(result.folder / "curve.csv")
    prov = json.loads((result.folder / "provenance.json").read_text())
    record = json.loads((result.folder / "record.json").read_text())
    several = curve["seed"].nunique() > 1  # several seeds (--set "seeds=[0,1,2]"): a curve per row and seed
    # seeds named on the command line: a -seedN file even for one seed, so that a study split over processes
    # ("seeds=[0,2]" in one, "seeds=[1]" in another) gives one variant's files
    named = several or any(s.replace(" ", "").startswith("seeds=") for s in args.set)
    verdicts = {(row[row_key], int(row["seed"]) if several else None): row.get("converged")
                for row in (record["per_seed"] if several else record[table])}
    out.mkdir(parents=True, exist_ok=True)
    for (m, seed), mine in curve.groupby(["method", "seed"], sort=False):  # a curve per trained row (and seed)
        seed = int(seed) if several else None
        suffix = f"-seed{int(mine['seed'].iloc[0])}" if named else ""
        stem = out / f"{prefix}{m.lower()}-{args.variant}{suffix}"
        mine = mine.dropna(axis=1, how="all")
        mine.to_csv(stem.with_suffix(".csv"), index=False)
        run_info = prov["runs"][m if seed is None else f"{m} (seed {seed})"]
        meta = {"method": m, "variant": args.variant, "protocol": args.protocol, "overrides": args.set,
                "seed": int(mine["seed"].iloc[0]), "steps": run_info["steps"], "every": every.get(m),
                "threads": prov["numerical_path"]["threads_per_process"],
                "jobs": prov["numerical_path"].get("jobs"), "cpu": cpu_label(),
                "torch": torch.__version__, "train_seconds": run_info.get("train_seconds"),
                "reused": run_info.get("reused"), "protocol_seconds": round(seconds, 1),
                "classifier_real_error": judge_real_error(prov["classifier"]),
                "converged": verdicts.get((m, seed)), "curve_n": translations_scored(record, m, seed)}
        stem.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
        print(mine.to_string(index=False))
        print(json.dumps(meta))


def judge_real_error(judge: dict) -> float | None:
    """The judge's error on real test images: RaFD's expression error, CelebA's share not right on every attribute
    (None where the protocol does not record it: joint training reuses rafd_expression's judge)."""
    if "real_test_error" in judge:
        return judge["real_test_error"]
    return 1 - judge["real_all_correct"] if "real_all_correct" in judge else None


def _per_method(text: str, methods: list[str], flag: str) -> dict[str, int]:
    """One integer for every method, or one per method in the order of ``--method``."""
    values = [int(v) for v in text.split(",")]
    if len(values) == 1:
        values *= len(methods)
    if len(values) != len(methods):
        raise SystemExit(f"{flag} {text}: give one value, or one per method ({len(methods)})")
    return dict(zip(methods, values))


def time_to_plateau(df: pd.DataFrame, halfwidth: float) -> tuple[int, float]:
    """The first curve point from which every later point stays within ``halfwidth`` of the final error: its step
    and its training seconds."""
    errors, steps, seconds = df["error %"].tolist(), df["step"].tolist(), df["train seconds"].tolist()
    final = errors[-1]
    for i in range(len(errors)):
        if all(abs(e - final) <= halfwidth for e in errors[i:]):
            return int(steps[i]), float(seconds[i])
    return int(steps[-1]), float(seconds[-1])


def translations_scored(record: dict, method: str, seed: int | None = None) -> int | None:
    """How many translations the method's final error is over (the plateau test's interval is that error's): the
    protocol's per-target (RaFD) or per-edit (CelebA) counts, of one seed where a study has several."""
    rows = [r for r in record.get("per_target", record.get("per_edit", []))
            if r["method"] == method and (seed is None or int(r.get("seed", seed)) == seed)]
    n = sum(int(r.get("n generated", r.get("n", 0))) for r in rows)
    return n or None


def halfwidth_of(meta: dict, final: float) -> float:
    """The half-width of the final error's 95% Clopper-Pearson interval, as the protocol's plateau test takes it: over
    the translations the run recorded (``curve_n``), else (older RaFD curves) 441 (63 inputs x 7 targets)."""
    n = int(meta.get("curve_n") or 441)
    k = round(final * n / 100)
    ci = error_rate(np.array([True] * k + [False] * (n - k)))
    return 100 * (ci.high - ci.low) / 2


def learned(protocol: str, final: float, verdict: str) -> str:
    """The verdict as the protocol's table words it: the RaFD expression protocols' no-learning level applies,
    CelebA has none."""
    return learned_verdict(verdict, final, None if protocol == "celeba_attributes" else 100 * NOT_LEARNED)


def report(args: argparse.Namespace) -> None:
    curves = []
    for path in sorted(OUT.glob("*.csv")):
        meta = json.loads(path.with_suffix(".json").read_text())
        meta.setdefault("protocol", "rafd_expression")
        curves.append((path.stem, meta, pd.read_csv(path)))
    if not curves:
        raise SystemExit(f"no curves in {OUT}: run some first")
    rows = []
    for stem, meta, df in curves:
        final = df["error %"].iloc[-1]
        half = halfwidth_of(meta, final)
        step, seconds = time_to_plateau(df, half)
        l1 = df["L1 to ground truth"].iloc[-1] if "L1 to ground truth" in df else None
        rows.append({"curve": stem, "protocol": meta["protocol"], "steps": int(df["step"].iloc[-1]),
                     "final error %": round(final, 1), "±": round(half, 1),
                     "converged": learned(meta["protocol"], final, meta.get("converged")
                                          or plateau(list(zip(df["step"], df["error %"])), half).text()),
                     "plateau from step": step, "seconds to plateau": round(seconds),
                     "threads": meta["threads"], "cpu": meta.get("cpu", "?"),
                     "L1 final": "-" if l1 is None else round(float(l1), 4)})
    table = pd.DataFrame(rows)
    means = seed_mean_table(curves)
    text = (table.to_markdown(index=False) + "\n\n**Seed means** (variants trained with several seeds on the same "
            "steps: the plateau rule on the seed-mean curve, with the pooled interval over every seed's translations, "
            "as a seed study's table applies it; seconds: the seeds' mean training seconds)\n\n"
            + means.to_markdown(index=False) + "\n")
    (OUT / "summary.md").write_text(text)
    print(text)
    for protocol in sorted({meta["protocol"] for _, meta, _ in curves}):
        name = "curves.png" if protocol == "rafd_expression" else f"curves_{protocol}.png"
        figure([(stem, meta, df) for stem, meta, df in curves if meta["protocol"] == protocol], protocol, OUT / name)
        print(f"wrote {OUT / name}")


def seed_mean_table(curves: list[tuple[str, dict, pd.DataFrame]]) -> pd.DataFrame:
    """One row per variant with several seeds on the same steps (``...-seedN`` files): its seed-mean curve's final
    error, the plateau rule on it with the pooled interval (N: every seed's translations), the step and the seeds'
    mean training seconds from which the mean stays within that interval of its final value."""
    groups: dict[str, list[tuple[dict, pd.DataFrame]]] = {}
    for stem, meta, df in curves:
        if "-seed" in stem:
            groups.setdefault(stem.rsplit("-seed", 1)[0], []).append((meta, df))
    rows = []
    for variant, members in sorted(groups.items()):
        dfs = [df for _, df in members]
        mean = seed_mean(dfs)
        if mean is None:
            continue
        n = sum(int(meta.get("curve_n") or 441) for meta, _ in members)
        final = float(mean["error %"].iloc[-1])
        half = halfwidth_of({"curve_n": n}, final)
        step, seconds = time_to_plateau(mean, half)
        l1 = [df["L1 to ground truth"].iloc[-1] for df in dfs if "L1 to ground truth" in df]
        rows.append({"variant": variant, "protocol": members[0][0]["protocol"], "seeds": len(dfs),
                     "steps": int(mean["step"].iloc[-1]), "seed-mean error %": round(final, 2),
                     "± (pooled)": round(half, 2),
                     "converged (seed mean)": learned(members[0][0]["protocol"], final,
                                                      plateau(list(zip(mean["step"], mean["error %"])), half).text()),
                     "plateau from step": step, "seconds to plateau": round(seconds),
                     "seconds in all": round(float(mean["train seconds"].iloc[-1])),
                     "L1 final (seed mean)": round(float(np.mean(l1)), 4) if l1 else "-",
                     "cpu": members[0][0].get("cpu", "?")})
    return pd.DataFrame(rows)


def seed_mean(dfs: list[pd.DataFrame]) -> pd.DataFrame | None:
    """The mean over seeds of a variant's curves (step, error %, train seconds), when there are several on the
    same steps; else None."""
    if len(dfs) < 2 or not all(df["step"].equals(dfs[0]["step"]) for df in dfs):
        return None
    return pd.DataFrame({"step": dfs[0]["step"],
                         **{k: pd.concat([df[k] for df in dfs], axis=1).mean(axis=1)
                            for k in ("error %", "train seconds")}})


def seed_groups(own: list[tuple[str, dict, pd.DataFrame]], label_of) -> dict[str, list[pd.DataFrame]]:
    """Curves of one variant and several seeds (``...-seedN``) under the variant's label; other curves alone."""
    groups: dict[str, list[pd.DataFrame]] = {}
    for stem, _, df in own:
        label = label_of(stem)
        groups.setdefault(label.rsplit("-seed", 1)[0] if "-seed" in label else label, []).append(df)
    return groups


def figure(mine: list[tuple[str, dict, pd.DataFrame]], protocol: str, file: Path) -> None:
    """One column per method (its budgets differ by 40x between methods): error against steps, against training
    seconds, and the plateau region enlarged with each variant's seed mean (several seeds) drawn thick over its
    seeds; each curve in a colour of its own, labelled by its file name less the method."""
    pyplot = plt()
    prefix = STUDIED[protocol][0]
    by_method: dict[str, list[tuple[str, dict, pd.DataFrame]]] = {}
    for curve in mine:  # the file name starts with the method: stargan-x2-seed0, joint-stargan-jnt-x2
        by_method.setdefault(curve[0].removeprefix(prefix).split("-")[0], []).append(curve)
    fig, axes = pyplot.subplots(3, len(by_method), figsize=(3.4 * len(by_method) + 0.6, 9.4), squeeze=False)
    what = "target error %" if protocol == "celeba_attributes" else "classification error %"
    for col, (method, own) in enumerate(by_method.items()):
        top, middle, bottom = axes[0][col], axes[1][col], axes[2][col]

        def label_of(stem: str) -> str:
            return stem.removeprefix(prefix).removeprefix(method + "-") or stem

        for i, (stem, meta, df) in enumerate(own):
            style = {"marker": "o", "ms": 2, "lw": 1, "color": f"C{i % 10}", "label": label_of(stem)}
            top.plot(df["step"], df["error %"], **style)
            if df["train seconds"].notna().all():
                middle.plot(df["train seconds"], df["error %"], **style)
        # the plateau region: every curve's second half, each variant's seed mean where it has several seeds
        late = [df[df["step"] >= df["step"].max() / 2]["error %"] for _, _, df in own]
        bottom.set_ylim(0, max(5.0, 1.15 * max(float(v.max()) for v in late)))
        for i, (variant, dfs) in enumerate(seed_groups(own, label_of).items()):
            colour = f"C{i % 10}"
            for df in dfs:
                bottom.plot(df["step"], df["error %"], lw=0.6, alpha=0.35, color=colour)
            mean = seed_mean(dfs)
            if mean is not None:
                bottom.plot(mean["step"], mean["error %"], lw=2, color=colour, marker="o", ms=2.5,
                            label=f"{variant}: mean of {len(dfs)} seeds")
            else:
                bottom.plot(dfs[0]["step"], dfs[0]["error %"], lw=1.2, color=colour, label=variant)
        top.set_title(method, fontsize=9)
        top.set_xlabel("training step", fontsize=8)
        middle.set_xlabel(f"training seconds ({own[0][1]['threads']} thread(s))", fontsize=8)
        bottom.set_xlabel("training step (the plateau region; thin: single seeds)", fontsize=8)
        for ax in (top, middle):
            ax.set_ylim(0, 60)  # the first points (near chance) are cut off: the plateau is what is read here
        for ax in (top, middle, bottom):
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
        top.legend(fontsize=6)
        bottom.legend(fontsize=6)
    for row in axes:
        row[0].set_ylabel(what, fontsize=8)
    fig.suptitle(f"{protocol}: error against training (top two: y cut at 60%)", fontsize=9)
    fig.tight_layout()
    fig.savefig(file, dpi=110)
    pyplot.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--protocol", default="rafd_expression", choices=sorted(STUDIED))
    r.add_argument("--method", required=True, help="a method, or several separated by commas")
    r.add_argument("--variant", required=True, help="a name for these settings (the file name)")
    r.add_argument("--steps", required=True, help="training steps (one, or one per method)")
    r.add_argument("--every", help="a curve point every N steps (one, or one per method); absent: the protocol's own "
                   "curve points (curve_points), so that its command finds these runs again")
    r.add_argument("--set", nargs="*", default=[], help="KEY=VALUE overrides of the demo settings")
    r.add_argument("--threads", type=int, default=0, help="one process at this many torch threads (0: as `starbench "
                   "run`, `jobs` processes of 1 thread each on a CPU with 2 or more cores)")
    r.add_argument("--runs", default=str(RUNS), help="run folder of the study's trainings (shared, not committed)")
    r.add_argument("--out", default=str(OUT), help="where the curve files go")
    sub.add_parser("report")
    args = ap.parse_args()
    {"run": run, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
