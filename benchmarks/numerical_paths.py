"""Agreement across numerical paths: the stand-in for "another machine".

Two machines differ in the arithmetic they run (bf16 or fp32 kernels, how many threads split a reduction), so the
same config and seed give other bits, and after thousands of GAN steps, other models. A result holds on another
machine when it holds on every path one machine can offer. This script runs the committed configuration of
``rafd_expression`` with several training seeds on each path:

- ``fp32-2t``: fp32, 2 threads;
- ``fp32-1t``: fp32, 1 thread (another reduction order in every convolution);
- ``bf16-2t``: bf16 autocast, 2 threads (on a CPU without native bf16 it is emulated, slowly, but it is the
  arithmetic of the machines that have it);
- ``bf16-1t``: bf16 autocast, 1 thread: what the README's commands run on a 2-core CPU with native bf16 (``jobs``
  left unset trains two runs at a time, one thread each).

Each path trains everything anew (its own run folder, its own classifier) in its own process, so paths may run
side by side. Then, per method, the mean error over seeds on each path must lie inside every other path's
t-interval over seeds, and every ranking the reference path declares (two methods' t-intervals disjoint) must
hold on every path (the two means in that order there; whether their t-intervals are disjoint there too is reported
beside it). Every path is compared on the same seeds as the reference (five at this preset: three understated
StarGAN's spread, ``benchmarks/results/numerical_paths/stargan_seeds_3_4``).

That agreement rule fails often when the path changes nothing (two paths' means differ by the noise of both, an
interval covers the noise of one): ``report`` states how often for the seed and path counts at hand, and tests
the question itself per method, a permutation test of the one-way F statistic across paths (Holm-adjusted over
the methods), with the smallest one-path shift the design would detect, so that "no path effect found" says how
large an effect could hide in it.

The committed seed study (``results/seeds/rafd_expression``, made by the README's seed-study command) is one
path already (its ``provenance.json`` names it); ``adopt`` takes its per-seed rows instead of training it a second
time, after checking that the folder was made on that path. The same command run on another machine is the real
thing this script stands in for: ``adopt --name`` files its folder as a path of its own, and ``report`` checks it
like the others.

Usage:
  python benchmarks/numerical_paths.py adopt --path bf16-1t --folder results/seeds/rafd_expression
  python benchmarks/numerical_paths.py adopt --path bf16-1t --folder OTHER/results/seeds/rafd_expression \
      --name xeon-amx-bf16-1t          # the same path on another machine: a row of its own, named for the machine
  python benchmarks/numerical_paths.py run --path fp32-1t --set jobs=2   # one path (seeds 0-4), 2 runs at a time
  python benchmarks/numerical_paths.py run --path fp32-1t --set jobs=2 "models=[diat,cyclegan]" --merge
                                       # the methods a path has not run yet, beside its filed rows
  python benchmarks/numerical_paths.py run --path fp32-1t --seeds 3,4 --set jobs=2 --merge
                                       # more seeds for a path, beside its filed ones (the same judge)
  python benchmarks/numerical_paths.py report --reference bf16-1t            # table, figure and the checks

A 1-thread path on a 2-core machine trains two runs at a time with ``--set jobs=2`` (``starbench.evaluate.parallel``:
every process, the protocol's and the helper's, keeps the path's thread count; refused where it would not).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import optimize, stats

from starbench.config import resolve
from starbench.devices import cpu_label
from starbench.evaluate.parallel import jobs_for, side_by_side, threads_per_job
from starbench.registry import PROTOCOLS
from starbench.report import plt as pyplot
from starbench.train import speed

OUT = Path(__file__).parent / "results" / "numerical_paths"
PATHS = {"fp32-2t": (False, 2), "fp32-1t": (False, 1), "bf16-2t": (True, 2), "bf16-1t": (True, 1)}


def run(args: argparse.Namespace) -> None:
    bf16, threads = PATHS[args.path]
    torch.set_num_threads(threads)
    native_bf16 = speed.cpu_has_bf16()
    if bf16 and not native_bf16:  # the bf16 path on any CPU: autocast is asked for, not refused where it is emulated
        speed.cpu_has_bf16 = lambda: True
    work = Path(args.work) / args.path
    overrides = ["protocol=rafd_expression", "jobs=1", f"seeds=[{args.seeds}]", "train.progress=false",
                 "fid.download=false",
                 f"train.amp={'true' if bf16 else 'false'}", f"run_dir={work / 'runs'}",
                 f"results_dir={work / 'results'}", *args.set]
    cfg = resolve(overrides)
    jobs = jobs_for(cfg)  # 1 unless --set jobs=N
    if jobs > 1 and bf16 and not native_bf16:
        raise SystemExit("the bf16 path on a CPU without native bf16 runs in one process: its switch is set in this "
                         "process only")
    if jobs > 1 and threads_per_job(jobs) != threads:
        raise SystemExit(f"jobs={jobs} gives {threads_per_job(jobs)} thread(s) per process on this machine; "
                         f"the {args.path} path is {threads}")
    start = time.perf_counter()
    protocol = PROTOCOLS.get("rafd_expression")
    with side_by_side(cfg, protocol):  # --set jobs=2: the runs two at a time (1-thread paths on 2 cores)
        result = protocol(cfg)
    OUT.mkdir(parents=True, exist_ok=True)
    per_seed = pd.read_csv(result.folder / "per_seed.csv", keep_default_na=False, dtype=str)
    prov = json.loads((result.folder / "provenance.json").read_text())
    meta = {"path": args.path, "bf16": bf16, "threads": threads, "seeds": args.seeds, "overrides": args.set,
            "cpu": cpu_label(), "torch": torch.__version__,
            "seconds": round(time.perf_counter() - start), "real_error": prov["classifier"]["real_test_error"],
            "judge": prov["classifier"].get("judge_key")}
    if args.merge and (OUT / f"{args.path}.csv").is_file():
        per_seed, meta = merged(args.path, per_seed, meta)
    per_seed.to_csv(OUT / f"{args.path}.csv", index=False)
    (OUT / f"{args.path}.json").write_text(json.dumps(meta, indent=2) + "\n")


def merged(path: str, new_rows: pd.DataFrame, meta: dict) -> tuple[pd.DataFrame, dict]:
    """``run --merge``: the path's filed rows that this run did not make (other methods, or other seeds), then this
    run's rows; the metadata lists each run (``parts``) and the union of the seeds. Both runs must be judged by the
    same classifier (its cache key; in files filed before the key was recorded, its real-image error), else the rows
    were not judged alike and are not merged. A merged path keeps only seeds every method has: a method missing a
    seed would make its mean over other seeds than the others'."""
    old_rows, old_meta = per_seed(path), json.loads((OUT / f"{path}.json").read_text())
    same_judge = (old_meta["judge"] == meta["judge"] if old_meta.get("judge") and meta.get("judge")
                  else abs(old_meta["real_error"] - meta["real_error"]) < 1e-12)
    if not same_judge:
        raise SystemExit(f"--merge: the filed {path} rows were judged by a classifier with real-image error "
                         f"{old_meta['real_error']} (key {old_meta.get('judge')}); this run's has "
                         f"{meta['real_error']} (key {meta.get('judge')}): not judged alike, not merged")
    made = set(zip(new_rows["method"], new_rows["seed"]))
    kept = old_rows[[(m, s) not in made for m, s in zip(old_rows["method"], old_rows["seed"])]]
    rows = pd.concat([kept[kept["method"] != "real images"], new_rows[new_rows["method"] != "real images"]],
                     ignore_index=True)
    seeds = sorted({int(s) for s in rows["seed"]})
    methods = set(rows["method"])
    missing = [f"{m} seed {s}" for m in sorted(methods) for s in seeds
               if not ((rows["method"] == m) & (rows["seed"] == str(s))).any()]
    if missing:
        raise SystemExit(f"--merge: the merged {path} rows would lack {', '.join(missing)}; run those too")
    rows = rows.sort_values("seed", key=lambda seed: seed.astype(int), kind="stable")
    parts = [{"seeds": old_meta["seeds"], **part} for part in old_meta.get("parts") or [old_meta]]
    parts = [{k: part[k] for k in ("seeds", "overrides", "cpu", "seconds")} for part in parts]
    parts.append({k: meta[k] for k in ("seeds", "overrides", "cpu", "seconds")})
    return rows, {**meta, "seeds": ",".join(str(s) for s in seeds),
                  "overrides": [o for part in parts for o in part["overrides"]],
                  "seconds": sum(part["seconds"] for part in parts), "parts": parts}


def made_cpu_label(made: dict) -> str:
    """``devices.cpu_label`` of the CPU a folder was made on, from its provenance (older ones: bf16 or not only)."""
    units = made.get("cpu_bf16_units")
    if units is None:
        units = ["native bf16"] if made["cpu_native_bf16"] else []
    return cpu_label(made["cpu"], units)


def adopt(args: argparse.Namespace) -> None:
    """A committed multi-seed ``rafd_expression`` folder as one path's rows (it was made on that path)."""
    folder = Path(args.folder)
    prov = json.loads((folder / "provenance.json").read_text())
    bf16, threads = PATHS[args.path]
    made = prov.get("numerical_path")  # what the folder says it was made with (older folders: the config only)
    made_bf16 = made["training"] != "fp32" if made else bool(prov["config"]["train"].get("amp"))
    if made_bf16 != bf16 or (made and made["threads_per_process"] != threads):
        raise SystemExit(f"{folder} was not made on the {args.path} path ({made or 'train.amp unset'})")
    OUT.mkdir(parents=True, exist_ok=True)
    name = args.name or args.path
    per_seed = pd.read_csv(folder / "per_seed.csv", keep_default_na=False, dtype=str)
    per_seed.to_csv(OUT / f"{name}.csv", index=False)
    (OUT / f"{name}.json").write_text(json.dumps({
        "path": name, "bf16": bf16, "threads": threads,
        "seeds": ",".join(str(s) for s in prov["config"]["seeds"]), "overrides": [],
        "cpu": args.cpu or (made_cpu_label(made) if made else "unknown"),
        "torch": prov["packages"].get("torch", "?"), "seconds": round(prov["wall_seconds"]),
        "real_error": prov["classifier"]["real_test_error"], "source": str(folder), "created": prov["created"]},
        indent=2) + "\n")



ERROR = "classification error % [95% CI]"
METRICS = {ERROR: "classification error %", "L1 to ground truth": "L1 to ground truth"}  # both: lower is better


def per_seed(path: str) -> pd.DataFrame:
    """The path's per-seed rows (``run`` or ``adopt`` wrote them)."""
    return pd.read_csv(OUT / f"{path}.csv", keep_default_na=False, dtype=str)


def values(df: pd.DataFrame, column: str) -> dict[str, list[float]]:
    """Per method, the seeds' values of ``column`` (a diverged seed's "n/a" is left out)."""
    out: dict[str, list[float]] = {}
    for method, cell in zip(df["method"], df[column]):
        try:
            out.setdefault(method, []).append(float(cell.split()[0]))
        except ValueError:
            out.setdefault(method, [])
    return out


def converged(df: pd.DataFrame) -> dict[str, str]:
    """Per method, how many seeds the table marks converged ("2/3")."""
    return {m: f"{int((g['converged'] == 'yes').sum())}/{len(g)}" for m, g in df.groupby("method", sort=False)}


def interval(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return float("nan"), float("nan")
    sem = float(np.std(values, ddof=1)) / math.sqrt(len(values))
    if sem == 0:
        return float(np.mean(values)), float(np.mean(values))
    return tuple(stats.t.interval(0.95, len(values) - 1, loc=float(np.mean(values)), scale=sem))  # type: ignore


def cell(v: list[float], digits: int) -> str:
    if len(v) < 2:
        return "n/a"
    lo, hi = interval(v)
    return f"{np.mean(v):.{digits}f} ± {np.std(v, ddof=1):.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def check(data: dict[str, dict[str, list[float]]], label: str, ref: str, digits: int
          ) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The agreement table (method x path), the reference path's declared rankings, and what fails."""
    paths = list(data)
    methods = list(dict.fromkeys(m for p in paths for m in data[p]))
    rows, rankings, problems = [], [], []
    for m in methods:
        row = {"method": m, **{p: cell(data[p].get(m, []), digits) for p in paths}}
        ran = [p for p in paths if len(data[p].get(m, []))]
        agree = all(interval(data[q][m])[0] <= np.mean(data[p][m]) <= interval(data[q][m])[1]
                    for p in ran for q in ran if p != q)
        row["means inside every other path's t-interval"] = ("yes" if agree else "NO") if len(ran) > 1 else \
            "- (one path ran it)"
        if not agree:
            problems.append(f"{label}, {m}: the per-path means do not all lie inside the other paths' t-intervals")
        rows.append(row)
    for a in methods:
        for b in methods:
            ia, ib = interval(data[ref].get(a, [])), interval(data[ref].get(b, []))
            if a != b and ia[1] < ib[0]:  # the reference path declares a below b
                both = [p for p in paths if data[p].get(a) and data[p].get(b)]  # a path may run a subset
                held = [p for p in both if np.mean(data[p][a]) < np.mean(data[p][b])]
                disjoint = [p for p in both if interval(data[p][a])[1] < interval(data[p][b])[0]]
                rankings.append({"declared on " + ref: f"{a} < {b}", "holds on (means in that order)": ", ".join(held),
                                 "all paths": ("yes" if len(held) == len(both) else "NO")
                                 + ("" if len(both) == len(paths) else f" (of the {len(both)} that ran both)"),
                                 "t-intervals disjoint there too": ", ".join(disjoint) or "-"})
                if len(held) < len(both):
                    problems.append(f"{label}: {a} < {b} (declared on {ref}) fails on {set(both) - set(held)}")
    return pd.DataFrame(rows), pd.DataFrame(rankings), problems


def rule_false_alarm(seeds: int, paths: int, draws: int = 100_000) -> float:
    """How often ``check``'s agreement rule (each path's mean inside every other path's 95% t-interval) fails for one
    method when every path draws its seeds from one normal distribution, i.e. when the path changes nothing. The
    rule is scale-free, so this is one number per seed and path count (Monte Carlo, a fixed generator)."""
    x = np.random.default_rng(0).standard_normal((draws, paths, seeds))
    mean, half = x.mean(2), stats.t.ppf(0.975, seeds - 1) * x.std(2, ddof=1) / math.sqrt(seeds)
    fails = np.zeros(draws, dtype=bool)
    for p in range(paths):
        for q in range(paths):
            if p != q:
                fails |= np.abs(mean[:, p] - mean[:, q]) > half[:, q]
    return float(fails.mean())


def detectable_shift(seeds: int, paths: int, power: float = 0.8, alpha: float = 0.05) -> float:
    """The shift of one path's mean, in within-path sd, that a one-way ANOVA over ``paths`` paths of ``seeds`` seeds
    detects with ``power`` at level ``alpha`` (noncentral F; one path moved, the others equal: noncentrality
    seeds * shift^2 * (paths - 1) / paths)."""
    df1, df2 = paths - 1, paths * (seeds - 1)
    crit = stats.f.ppf(1 - alpha, df1, df2)
    nc = optimize.brentq(lambda lam: stats.ncf.sf(crit, df1, df2, lam) - power, 1e-6, 1e4)
    return math.sqrt(nc * paths / (seeds * (paths - 1)))


def path_effect(data: dict[str, dict[str, list[float]]], label: str, digits: int
                ) -> tuple[pd.DataFrame, list[str]]:
    """Per method, does the numerical path move the result? A permutation test of the one-way F statistic (the
    seeds' values shuffled across paths: no normality assumed, and StarGAN's seeds are skewed), Holm-adjusted over
    the methods, with the smallest one-path shift this design detects (80% power, from the pooled within-path sd),
    so that "no effect found" says how large an effect could have hidden."""
    paths = list(data)
    methods = [m for m in dict.fromkeys(m for p in paths for m in data[p])
               if all(len(data[p].get(m, [])) >= 2 for p in paths)]
    groups_of = {m: [np.asarray(data[p][m], dtype=float) for p in paths] for m in methods}
    raw = []
    for groups in groups_of.values():
        if np.ptp(np.concatenate(groups)) == 0:  # every seed on every path the same: nothing to shuffle
            raw.append(1.0)
        else:
            raw.append(float(stats.permutation_test(
                groups, lambda *g, axis=-1: stats.f_oneway(*g, axis=axis).statistic, permutation_type="independent",
                n_resamples=20_000, vectorized=True, alternative="greater", random_state=0).pvalue))
    rows, problems = [], []
    for (m, groups), p_raw, p_adj in zip(groups_of.items(), raw, holm(raw)):
        pooled = math.sqrt(sum(((g - g.mean()) ** 2).sum() for g in groups) / sum(len(g) - 1 for g in groups))
        shift = detectable_shift(min(len(g) for g in groups), len(groups)) * pooled
        rows.append({"method": m, "p (permutation F)": f"{p_raw:.3f}", "Holm-adjusted": f"{p_adj:.3f}",
                     "pooled sd over seeds": f"{pooled:.{digits}f}",
                     "one-path shift detected (80% power)": f"{shift:.{digits}f}",
                     "path effect": "NONE FOUND" if p_adj >= 0.05 else "YES"})
        if p_adj < 0.05:
            problems.append(f"{label}, {m}: the path moves the result (permutation F test, Holm-adjusted p = "
                            f"{p_adj:.3f})")
    return pd.DataFrame(rows), problems


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment (a family of tests, one per method, at one level)."""
    order = np.argsort(p_values)
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def figure(data: dict[str, dict[str, list[float]]], file: Path) -> None:
    """Per method, each path's seeds (dots) and its mean with the 95% t-interval (bar): overlap at a glance."""
    plt = pyplot()
    paths = list(data)
    methods = list(dict.fromkeys(m for p in paths for m in data[p]))
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(methods), 3.6))
    width = 0.7 / max(len(paths), 1)
    for j, p in enumerate(paths):
        for i, m in enumerate(methods):
            v = data[p].get(m, [])
            if not v:
                continue
            x = i - 0.35 + width * (j + 0.5)
            lo, hi = interval(v)
            ax.errorbar([x], [np.mean(v)], yerr=[[np.mean(v) - lo], [hi - np.mean(v)]], fmt="s", color=f"C{j}",
                        capsize=3, label=p if i == 0 else None)
            ax.scatter([x] * len(v), v, s=12, color=f"C{j}", alpha=0.5, zorder=3)
    ax.set_xticks(range(len(methods)), methods)
    ax.set_ylabel("error % (dots: seeds; mean, 95% t)")
    ax.set_ylim(bottom=0)
    ax.legend(title="numerical path", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(file, dpi=120)
    plt.close(fig)


def main_command_check(folder: Path, frames: dict[str, pd.DataFrame]) -> tuple[str, list[str]]:
    """The README's main command is one seed (0): does seed 0 on each path land inside the committed table's 95%
    interval (the pooled binomial interval of that one run's error)?"""
    table = pd.read_csv(folder / "table3.csv", keep_default_na=False, dtype=str)
    rows, outside = [], []
    for method, cell_ in zip(table["method"], table[ERROR]):
        lo, hi = (float(x) for x in cell_.split("[", 1)[1].rstrip("]").split(","))
        row = {"method": method, f"committed ({folder})": cell_}
        for p, df in frames.items():
            got = df[(df["method"] == method) & (df["seed"] == "0")][ERROR]
            if method == "real images":  # the judge on real photos: per path, not per seed
                v = 100 * json.loads((OUT / f"{p}.json").read_text())["real_error"]
            elif not len(got):  # the path did not run this method
                row[f"{p} seed 0"] = "-"
                continue
            else:
                v = float(got.iloc[0].split()[0])
            row[f"{p} seed 0"] = f"{v:.2f} ({'inside' if lo <= v <= hi else 'OUTSIDE'})"
            if not lo <= v <= hi:
                outside.append(f"main command, {method}: seed 0 on {p} gives {v:.2f}, outside the committed "
                               f"{cell_}")
        rows.append(row)
    return ("**The main command (seed 0) on each path against the committed single-seed table's 95% interval**\n\n"
            + pd.DataFrame(rows).to_markdown(index=False)), outside


def report(args: argparse.Namespace) -> None:
    filed = sorted(p.stem for p in OUT.glob("*.json"))  # this machine's paths, then other machines' (adopt --name)
    paths = [p for p in PATHS if p in filed] + [p for p in filed if p not in PATHS]
    ref = args.reference if args.reference in paths else paths[0]
    paths = [ref] + [p for p in paths if p != ref]
    frames = {p: per_seed(p) for p in paths}
    parts, problems = [], []
    seeds = {p: sorted(set(frames[p]["seed"].astype(int))) for p in paths}
    problems += [f"{p} has seeds {seeds[p]}, the reference {ref} {seeds[ref]}: not compared like for like"
                 for p in paths if seeds[p] != seeds[ref]]
    n_seeds = len(seeds[ref])
    alarm = rule_false_alarm(n_seeds, len(paths))  # the same for every metric
    for column, label in METRICS.items():
        data = {p: values(frames[p], column) for p in paths}
        digits = 2 if column == ERROR else 4
        table, rankings, failed = check(data, label, ref, digits)
        effect, moved = path_effect(data, label, digits)
        problems += failed + moved
        n_methods = len(effect)
        parts.append(f"**{label} per method and numerical path (mean ± sd over seeds [95% t-interval])**\n\n"
                     + table.to_markdown(index=False)
                     + f"\n\nWith {n_seeds} seeds on {len(paths)} paths the rule of the last column fails for one "
                     f"method in {alarm:.0%} of draws where the path changes nothing (every path's seeds from one "
                     f"normal distribution; Monte Carlo), and for at least one of {n_methods} methods in "
                     f"{1 - (1 - alarm) ** n_methods:.0%}: a NO there is not by itself evidence that the path "
                     f"moves the result. The test of that:\n\n"
                     f"**{label}: does the path move the result?**\n\n"
                     + effect.to_markdown(index=False, disable_numparse=True)
                     + f"\n\n**{label}: rankings with disjoint t-intervals on "
                     + ref + "**\n\n" + (rankings.to_markdown(index=False) if len(rankings) else "(none)"))
        if column == ERROR:
            figure(data, OUT / "errors.png")
    if args.main:
        text, outside = main_command_check(Path(args.main), frames)
        parts.append(text)
        problems += outside
    counts = {p: converged(frames[p]) for p in paths}
    conv = pd.DataFrame([{"method": m, **{p: counts[p].get(m, "-") for p in paths}}
                         for m in dict.fromkeys(m for p in paths for m in counts[p])])
    parts.append("**Seeds whose table marks the method converged (the plateau rule), per path**\n\n"
                 + conv.to_markdown(index=False))
    meta = [json.loads((OUT / f"{p}.json").read_text()) for p in paths]
    parts.append("\n".join(
        f"- {m['path']}: {m['threads']} thread(s), {'bf16' if m['bf16'] else 'fp32'}, seeds {m['seeds']}, "
        + (f"{m['seconds']} s of training and scoring" if not m.get("source") else
           f"its folder's command {m['seconds']} s (the runs it found trained not counted)")
        + f", classifier real error {100 * m['real_error']:.2f}%, {m['cpu']}, torch {m['torch']}"
        + (f"; adopted from {m['source']} ({m['created']})" if m.get("source") else "") for m in meta))
    parts.append("All checks hold." if not problems else "Checks that fail:\n" + "\n".join(f"- {p}" for p in problems))
    text = "\n\n".join(parts) + "\n"
    (OUT / "summary.md").write_text(text)
    print(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--path", choices=list(PATHS), required=True)
    r.add_argument("--seeds", default="0,1,2,3,4", help="the committed seed study's seeds")
    r.add_argument("--work", default="runs/paths", help="where each path's runs and results go (not committed)")
    r.add_argument("--set", nargs="*", default=[], help="KEY=VALUE settings beside the committed configuration")
    r.add_argument("--merge", action="store_true", help="keep the path's filed rows this run does not make: other "
                   "methods (a path run for some methods first, the others later) or other seeds; the same judge")
    a = sub.add_parser("adopt")
    a.add_argument("--path", choices=list(PATHS), required=True)
    a.add_argument("--folder", required=True, help="a committed rafd_expression folder with per_seed.csv")
    a.add_argument("--cpu", help="the CPU it was made on (default: what its provenance names)")
    a.add_argument("--name", help="file it under this name (default: --path): the same path on another machine")
    rep = sub.add_parser("report")
    rep.add_argument("--reference", default="bf16-1t", help="the committed seed study's path")
    rep.add_argument("--main", default="results/rafd_expression", help="the committed main-command folder ('' to skip)")
    args = ap.parse_args()
    {"run": run, "adopt": adopt, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
