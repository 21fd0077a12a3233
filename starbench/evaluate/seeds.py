"""Numbers over training seeds: mean ± sample sd, intervals over seeds, pooled paired tests, who ranks first.

In GANs the spread between training seeds is usually larger than a test set's confidence interval,
so with ``seeds=[...]`` every table gives, per method, the mean and sample standard deviation over
seeds of each metric; the classification error also gets a t-interval over the per-seed errors beside
the Clopper-Pearson interval of all seeds' translations pooled. Sources not trained here (folders,
weight files) have one value, shown without a spread.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import numpy as np
from scipy import stats

from starbench.evaluate.score import Scores
from starbench.metrics.stats import McNemar, error_rate, mcnemar


def finite(values: Sequence[Optional[float]]) -> list[float]:
    return [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def mean_sd(values: Sequence[Optional[float]], digits: int = 2, scale: float = 1.0) -> str:
    """'19.73 ± 1.20' (sample sd, n - 1), one value alone as '19.73', none as 'n/a'."""
    vals = [scale * v for v in finite(values)]
    if not vals:
        return "n/a"
    if any(math.isinf(v) for v in vals):
        return "inf"
    mean = float(np.mean(vals))
    if len(vals) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {float(np.std(vals, ddof=1)):.{digits}f}"


def t_interval(values: Sequence[float], confidence: float = 0.95,
               bounds: tuple[float, float] = (-math.inf, math.inf)) -> tuple[float, float]:
    """Student-t interval of the mean of per-seed values, clipped to ``bounds`` (a percentage: 0 to 100);
    NaN with fewer than two seeds."""
    vals = finite(values)
    if len(vals) < 2:
        return float("nan"), float("nan")
    sem = float(np.std(vals, ddof=1)) / math.sqrt(len(vals))
    if sem == 0:
        return float(np.mean(vals)), float(np.mean(vals))
    low, high = stats.t.interval(confidence, len(vals) - 1, loc=float(np.mean(vals)), scale=sem)
    return max(float(low), bounds[0]), min(float(high), bounds[1])


def by_method(results: Sequence[Scores]) -> dict[str, list[Scores]]:
    """Scores grouped by table row, in the order the rows first appear."""
    out: dict[str, list[Scores]] = {}
    for r in results:
        out.setdefault(r.name, []).append(r)
    return out


def paired_over_seeds(ref: Sequence[Scores], other: Sequence[Scores], outcome: Callable[[Scores], np.ndarray]
                      ) -> Optional[McNemar]:
    """McNemar's exact test on (seed, cell) pairs: each seed of ``other`` against ``ref``'s same seed (a source
    with no seed against every seed of ``ref``). None when no pair exists."""
    ref_by_seed = {r.seed: r for r in ref if not r.diverged}
    a, b = [], []
    for o in other:
        if o.diverged:
            continue
        partners = list(ref_by_seed.values()) if o.seed is None else [ref_by_seed.get(o.seed)]
        for r in partners:
            if r is not None and r is not o:
                a.append(outcome(r))
                b.append(outcome(o))
    if not a:
        return None
    return mcnemar(np.concatenate(a), np.concatenate(b))


def firsts(groups: dict[str, list[Scores]], value: Callable[[Scores], float], lower_is_better: bool = True
           ) -> dict[str, str]:
    """'k/n': in how many of the n seeds each method ranked first (ties count for every tied method); a source
    with no seed competes in every seed with its one value."""
    seeds = sorted({r.seed for rs in groups.values() for r in rs if r.seed is not None})
    wins = {name: 0 for name in groups}
    for seed in seeds:
        scores = {}
        for name, rs in groups.items():
            pick = [r for r in rs if r.seed == seed] or [r for r in rs if r.seed is None]
            if pick and not pick[0].diverged:
                scores[name] = value(pick[0])
        if scores:
            best = (min if lower_is_better else max)(scores.values())
            for name, v in scores.items():
                wins[name] += v == best
    return {name: f"{wins[name]}/{len(seeds)}" for name in groups}


def mean_of(values: Sequence[Optional[float]]) -> Optional[float]:
    """The mean of the values that exist (None when none do)."""
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def error_cells(rs: Sequence[Scores], wrong: Callable[[Scores], np.ndarray]) -> dict[str, str]:
    """The classification error of one row over seeds: mean ± sd, the t-interval over seeds, the pooled interval."""
    ok = [r for r in rs if not r.diverged]
    errs = [100 * float(wrong(r).mean()) for r in ok]
    lo, hi = t_interval(errs, bounds=(0.0, 100.0))
    pooled = error_rate(np.concatenate([wrong(r) for r in ok])) if ok else None
    return {"classification error % (mean ± sd)": mean_sd(errs) if ok else str(rs[0].status),
            "95% CI over seeds (t)": f"[{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) else "n/a",
            "pooled 95% CI (Clopper-Pearson)": (f"[{100 * pooled.low:.2f}, {100 * pooled.high:.2f}]" if pooled
                                                else "n/a")}


def distance_cells(rs: Sequence[Scores], valid: np.ndarray) -> dict[str, str]:
    """FID, classifier Fréchet and the ground-truth distances of one row over seeds (mean ± sd)."""
    ok = [r for r in rs if not r.diverged]
    return {"FID (mean of 7 targets)": mean_sd([mean_of(r.fid) for r in ok]),
            "classifier Frechet (not FID)": mean_sd([mean_of(r.frechet) for r in ok], 3),
            "L1 to ground truth": mean_sd([r.truth_mean("l1", valid) for r in ok], 4),
            "PSNR dB": mean_sd([r.truth_mean("psnr", valid) for r in ok]),
            "SSIM": mean_sd([r.truth_mean("ssim", valid) for r in ok], 3)}
