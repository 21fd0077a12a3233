"""Does a rerun reproduce a results folder? ``starbench compare committed=DIR new=DIR``.

A researcher reruns a protocol (on a fresh clone, another machine, their own copy of the data with the same config)
and asks whether the new folder says what the old one did. The check, for two folders a protocol wrote:

- the file sets (none deleted, none added);
- per row of every table CSV, the error (classification error, CelebA's target error): the new value inside the old
  one's stated 95% interval (one run: Clopper-Pearson, the test set's sampling error; a seed study's table: its
  t-interval over seeds), and the old value inside the new one's;
- the other numbers side by side, with the interval each table states: classifier KID x1000 (± the sd over its
  random subsets), and with none stated (L1, SSIM, classifier Fréchet, precision, recall) the relative change, for
  the reader to weigh;
- the ``converged`` column;
- every CSV cell by cell (curves, per-seed and per-target rows included): which columns differ, and in how many
  rows; wall-time columns (``train s``, ``train seconds``) are expected to;
- when both folders are seed studies (``per_seed.csv``), per method Welch's t-test and the exact permutation test
  of their mean errors, with the smallest p the seed counts can reach;
- with ``seed_study=DIR`` (a seed study of the same protocol and config): each single run's error, old and new,
  against the 95% prediction interval for one more run that the seed study's per-seed errors give (mean ± t sd
  sqrt(1 + 1/n)). Another machine is another draw of training as well as of arithmetic, and this interval, not
  Clopper-Pearson's, says whether a run lies within the training seed's noise; it is reported beside the checks,
  not in their place.

The files are data: read as CSV text, never executed.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from math import comb
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from starbench.errors import StarbenchError

ERRORS = ("classification error", "target error")  # RaFD and joint tables; CelebA's (100 - target %)
SEED_INTERVAL = "95% CI over seeds (t)"
INTERVAL = re.compile(r"^\s*(-?[\d.]+)\s*\[\s*(-?[\d.]+),\s*(-?[\d.]+)\]")
PLUS_MINUS = re.compile(r"^\s*(-?[\d.]+)\s*±\s*([\d.]+)")
SIDE_BY_SIDE = ("classifier Frechet (not FID)", "classifier precision", "classifier recall", "L1 to ground truth",
                "SSIM")
TIME_COLUMNS = ("train s", "train seconds")


def name_column(df: pd.DataFrame) -> str:
    """The column naming each row: the method (Table 3, CelebA) or model (the joint table), else the first column
    that is not the seed."""
    return next((c for c in ("method", "model") if c in df.columns), next(c for c in df.columns if c != "seed"))


def with_key(df: pd.DataFrame) -> pd.DataFrame:
    """The frame with a ``key`` column naming each row (``name_column``), with its seed where the file has one row
    per seed."""
    name = name_column(df)
    key = df[name] if "seed" not in df.columns else df[name] + " (seed " + df["seed"] + ")"
    return df.assign(key=key)


def matched(old: pd.DataFrame, new: pd.DataFrame) -> Iterator[tuple[str, pd.Series, pd.Series | None]]:
    """Each committed row with the new table's row of the same key (None where the new table lacks it)."""
    old, new = with_key(old), with_key(new)
    for _, o in old.iterrows():
        match = new[new["key"] == o["key"]]
        yield o["key"], o, match.iloc[0] if len(match) else None


def number(cell: str) -> float | None:
    try:
        return float(str(cell).split()[0])
    except (ValueError, IndexError):
        return None


def error_columns(df: pd.DataFrame) -> tuple[str | None, str | None]:
    """The table's error column with its pooled 95% interval (one seed), and its mean over seeds (several)."""
    found = [f"{e} % [95% CI]" for e in ERRORS if f"{e} % [95% CI]" in df.columns]
    means = [f"{e} % (mean ± sd)" for e in ERRORS if f"{e} % (mean ± sd)" in df.columns]
    return (found[0] if found else None), (means[0] if means else None)


def error_rows(name: str, old: pd.DataFrame, new: pd.DataFrame) -> tuple[list[dict], list[str]]:
    """Each row's error against the other folder's 95% interval."""
    rows, problems = [], []
    error, seed_mean = error_columns(old)
    for key, o, n in matched(old, new):
        if n is None:
            problems.append(f"{name}: row {key!r} is missing from the new table")
            continue
        if error is not None:
            cell_o, cell_n = str(o[error]), str(n[error])
        elif seed_mean is not None and SEED_INTERVAL in old.columns:  # a seed study's: the mean and its t-interval
            cell_o = f"{str(o[seed_mean]).split()[0]} {o[SEED_INTERVAL]}"
            cell_n = f"{str(n[seed_mean]).split()[0]} {n[SEED_INTERVAL]}"
        else:
            continue
        mo, mn = INTERVAL.match(cell_o), INTERVAL.match(cell_n)
        if not (mo and mn):
            continue
        vo, lo, hi = (float(x) for x in mo.groups())
        vn, lo_n, hi_n = (float(x) for x in mn.groups())
        inside, back = lo <= vn <= hi, lo_n <= vo <= hi_n
        if not inside:
            problems.append(f"{name}, {key}: the new error {vn:.2f} lies outside the committed {cell_o}")
        rows.append({"table": name, "row": key, "committed": cell_o, "new": cell_n,
                     "new inside committed": "yes" if inside else "NO",
                     "committed inside new": "yes" if back else "NO",
                     "converged (committed / new)": f"{o.get('converged', '-')} / {n.get('converged', '-')}"})
    extra = set(with_key(new)["key"]) - set(with_key(old)["key"])
    problems += [f"{name}: row {r!r} is new" for r in sorted(extra)]
    return rows, problems


def other_rows(name: str, old: pd.DataFrame, new: pd.DataFrame) -> list[dict]:
    """KID with its stated ± (overlap of mean ± 2 sd), the rest as a relative change."""
    rows = []
    for key, o, n in matched(old, new):
        if n is None:
            continue
        row = {"table": name, "row": key}
        if "classifier KID x1000" in old.columns:
            ko, kn = PLUS_MINUS.match(str(o["classifier KID x1000"])), PLUS_MINUS.match(str(n["classifier KID x1000"]))
            if ko and kn:
                (a, sa), (b, sb) = ((float(x) for x in m.groups()) for m in (ko, kn))
                row["classifier KID x1000 (committed / new; within 2 sd)"] = (
                    f"{a:.0f} / {b:.0f} ({'yes' if abs(a - b) <= 2 * max(sa, sb) else 'NO'})")
        for col in SIDE_BY_SIDE:
            if col in old.columns and col in new.columns:
                a, b = number(o[col]), number(n[col])
                if a is not None and b is not None:
                    change = f"{100 * (b - a) / abs(a):+.1f}%" if a else "-"
                    row[col + " (committed / new)"] = f"{o[col]} / {n[col]} ({change})"
        if len(row) > 2:
            rows.append(row)
    return rows


def cell_rows(name: str, old: pd.DataFrame, new: pd.DataFrame) -> tuple[dict, list[str]]:
    """Cell by cell: the columns whose values differ, with how many rows; a wall-time column is expected to."""
    if list(old.columns) != list(new.columns) or len(old) != len(new):
        return ({"file": name, "rows": f"{len(old)} / {len(new)}", "identical": "NO",
                 "columns that differ (rows)": "the shape differs"}, [f"{name}: another shape (columns or rows)"])
    differ = {c: int((old[c] != new[c]).sum()) for c in old.columns}
    differ = {c: n for c, n in differ.items() if n}
    unexpected = [c for c in differ if c not in TIME_COLUMNS]
    row = {"file": name, "rows": len(old), "identical": "yes" if not differ else
           ("all but wall time" if not unexpected else "NO"),
           "columns that differ (rows)": ", ".join(f"{c} ({n})" for c, n in differ.items()) or "-"}
    return row, [f"{name}: {c} differs in {differ[c]} row(s)" for c in unexpected]


def prediction_interval(values: list[float]) -> tuple[float, float]:
    """The 95% interval in which one more draw from the seeds' distribution falls (normal, sd estimated)."""
    n = len(values)
    mean, sd = float(pd.Series(values).mean()), float(pd.Series(values).std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd * (1 + 1 / n) ** 0.5
    return mean - half, mean + half


def per_seed_error_column(name: str, error: str | None, per_seed: pd.DataFrame) -> str | None:
    """The per-seed file's column holding this table's error: the same name, or, where a protocol writes several
    tables into one per-seed file (CelebA's Tables 1 and 2), the name prefixed with its table ("Table 1: ...", for
    ``table1.csv``)."""
    table = re.fullmatch(r"table(\d+)\.csv", name)
    named = f"Table {table.group(1)}: {error}" if table and error else None
    if named in per_seed.columns:
        return named
    return error_columns(per_seed)[0]


def seed_spread_rows(name: str, old: pd.DataFrame, new: pd.DataFrame, per_seed: pd.DataFrame) -> list[dict]:
    """Each method's single-run error, committed and new, against the seed study's prediction interval for one run."""
    error, _ = error_columns(old)
    seed_error = per_seed_error_column(name, error, per_seed)
    if error is None or seed_error is None:
        return []
    name_col = name_column(per_seed)
    rows = []
    for key, o, n in matched(old, new):
        errors = [number(v) for v in per_seed.loc[per_seed[name_col] == key, seed_error]]
        errors = [e for e in errors if e is not None]
        if n is None or len(errors) < 2:
            continue
        lo, hi = prediction_interval(errors)
        vo, vn = number(o[error]), number(n[error])
        rows.append({"table": name, "row": key, "seeds": len(errors),
                     "seed study: mean ± sd": f"{pd.Series(errors).mean():.2f} ± {pd.Series(errors).std(ddof=1):.2f}",
                     "one run's 95% prediction interval": f"[{max(lo, 0.0):.2f}, {hi:.2f}]",
                     "committed run": f"{vo:.2f} ({'inside' if lo <= vo <= hi else 'OUTSIDE'})",
                     "new run": f"{vn:.2f} ({'inside' if lo <= vn <= hi else 'OUTSIDE'})"})
    return rows


def mean_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return a.mean(axis=axis) - b.mean(axis=axis)


def machine_rows(old: pd.DataFrame, new: pd.DataFrame) -> list[dict]:
    """Two seed studies' per-seed errors (two machines, the same preset), per table and method: do their means
    differ by more than the seeds do? Welch's t-test, and the exact permutation test of the difference in means
    with the smallest p its seed counts can reach (3 seeds a side: 0.1, so it cannot reject at 0.05)."""
    columns = [c for c in old.columns if c.endswith("error % [95% CI]") and c in new.columns]
    name = name_column(old)
    rows = []
    for column in columns:
        for key in dict.fromkeys(old[name]):
            a = np.array([v for v in (number(x) for x in old.loc[old[name] == key, column]) if v is not None])
            b = np.array([v for v in (number(x) for x in new.loc[new[name] == key, column]) if v is not None])
            if len(a) < 2 or len(b) < 2:
                continue
            welch = stats.ttest_ind(a, b, equal_var=False).pvalue
            exact = stats.permutation_test((a, b), mean_difference, permutation_type="independent",
                                           n_resamples=np.inf, vectorized=True).pvalue
            rows.append({"error": column.removesuffix(" [95% CI]"), "row": key,
                         "committed: mean ± sd (seeds)": f"{a.mean():.2f} ± {a.std(ddof=1):.2f} ({len(a)})",
                         "new: mean ± sd (seeds)": f"{b.mean():.2f} ± {b.std(ddof=1):.2f} ({len(b)})",
                         "difference": f"{b.mean() - a.mean():+.2f}", "Welch p": f"{welch:.2g}",
                         "permutation p (exact)": f"{exact:.2g}",
                         "smallest p it can reach": f"{2 / comb(len(a) + len(b), len(a)):.2g}"})
    return rows


@dataclass(frozen=True)
class Comparison:
    """The Markdown report and the checks that failed (none: the new folder reproduces the old one)."""

    report: str
    problems: list[str]


def read_csv(path: Path) -> pd.DataFrame:
    """A results CSV as text cells (numbers are compared as the tables print them)."""
    try:
        return pd.read_csv(path, keep_default_na=False, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise StarbenchError(f"{path}: not a results table ({type(exc).__name__}: {exc})") from None


def results_folder(path: Path, what: str) -> set[str]:
    """The file names in a results folder, or an error naming the key and the path."""
    if not path.is_dir():
        raise StarbenchError(f"{what}={path}: no such folder (expected a results folder a protocol wrote)")
    files = {p.name for p in path.iterdir() if p.is_file()}
    if not any(f.endswith(".csv") for f in files):
        raise StarbenchError(f"{what}={path}: no .csv table in it (expected a results folder a protocol wrote)")
    return files


def compare_folders(committed: Path | str, new: Path | str, seed_study: Path | str | None = None) -> Comparison:
    """Compare the folder ``new`` with ``committed`` (see the module docstring)."""
    committed, new = Path(committed), Path(new)
    seed_study = None if seed_study is None else Path(seed_study)
    old_files, new_files = results_folder(committed, "committed"), results_folder(new, "new")
    if seed_study is not None and not (seed_study / "per_seed.csv").is_file():
        raise StarbenchError(f"seed_study={seed_study}: no per_seed.csv in it (expected a folder that a run with "
                             f"seeds=[...] wrote)")
    problems = [f"deleted: {f}" for f in sorted(old_files - new_files)]
    problems += [f"added: {f}" for f in sorted(new_files - old_files)]
    parts = [f"Files: committed {len(old_files)}, new {len(new_files)}; "
             + ("the same set." if old_files == new_files else "they differ (below).")]
    errors, others, cells, differences, spread = [], [], [], [], []
    per_seed = (read_csv(seed_study / "per_seed.csv")
                if seed_study is not None else None)
    for csv in sorted(f for f in old_files & new_files if f.endswith(".csv")):
        old = read_csv(committed / csv)
        fresh = read_csv(new / csv)
        row, found = cell_rows(csv, old, fresh)
        cells.append(row)
        differences += found
        if error_columns(old) == (None, None):
            continue
        rows, found = error_rows(csv, old, fresh)
        errors += rows
        problems += found
        others += other_rows(csv, old, fresh)
        if per_seed is not None:
            spread += seed_spread_rows(csv, old, fresh, per_seed)
    parts.append("**Every CSV, cell by cell**\n\n" + pd.DataFrame(cells).to_markdown(index=False)
                 + ("\n\nValues that differ (not a failure where they lie inside the stated intervals below):\n"
                    + "\n".join(f"- {d}" for d in differences) if differences else ""))
    if errors:
        parts.append("**Classification error: each folder's value against the other's 95% interval** (one run: "
                     "Clopper-Pearson; a seed study's table: its mean over seeds and t-interval)\n\n"
                     + pd.DataFrame(errors).to_markdown(index=False))
    if others:
        parts.append("**Other numbers, committed / new** (KID: the tables' ± is the sd over random subsets; the "
                     "rest state no interval, so the relative change is given)\n\n"
                     + pd.DataFrame(others).to_markdown(index=False))
    if (committed / "per_seed.csv").exists() and (new / "per_seed.csv").exists():
        machine = machine_rows(read_csv(committed / "per_seed.csv"), read_csv(new / "per_seed.csv"))
        if machine:
            parts.append("**Two seed studies: do the means differ by more than the seeds do?** (each method's "
                         "per-seed errors, committed against new: Welch's t-test and the exact permutation test of "
                         "the difference in means; a p the seed counts cannot push below 0.05 can only say 'no "
                         "difference detected')\n\n"
                         + pd.DataFrame(machine).to_markdown(index=False, disable_numparse=True))
    if spread:
        parts.append(f"**Single runs against the training seed's spread** (the seed study `{seed_study.name}`'s "
                     "per-seed errors: the 95% interval for one more run, mean ± t sd sqrt(1 + 1/n), clipped at 0; "
                     "reported beside the checks above, not in their place)\n\n"
                     + pd.DataFrame(spread).to_markdown(index=False))
    verdict = ("The file sets and every error's interval: all checks hold." if not problems else
               "Checks that fail:\n" + "\n".join(f"- {p}" for p in problems))
    if differences:
        verdict += (f"\n\n{len(differences)} column(s) beside wall time differ (listed above); where no interval is "
                    "stated for them, weigh the change yourself.")
    parts.append(verdict)
    return Comparison("\n\n".join(parts) + "\n", problems)
