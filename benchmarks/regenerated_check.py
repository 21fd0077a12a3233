"""Does a README command regenerate what is committed? Compare a freshly written results folder with the committed one.

The converged-comparison contract: on a fresh clone, ``starbench run protocol=P`` rewrites ``results/P/`` with the same
set of files (none deleted, none added) and every number within its stated interval. This script checks a folder
that a command wrote (in a fresh clone, from an empty cache) against the committed folder:

- the file sets;
- per method (every table CSV in the folder), the classification error: the new value inside the committed 95%
  Clopper-Pearson interval (the test set's sampling error of one run), and the committed value inside the new one;
- the other numbers side by side, with the interval each table states: classifier KID x1000 (± the sd over its
  random subsets), and with none stated (L1, SSIM, classifier Fréchet, precision, recall) the relative change, for
  the reader to weigh;
- the ``converged`` column.

It writes a Markdown report (``--out``) and prints it. Usage, in a fresh clone after the README's command:

  python benchmarks/regenerated_check.py --committed /path/to/main/results/rafd_expression \\
      --new results/rafd_expression --out benchmarks/results/regenerated_rafd_expression.md
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

ERROR = "classification error % [95% CI]"
INTERVAL = re.compile(r"^\s*(-?[\d.]+)\s*\[\s*(-?[\d.]+),\s*(-?[\d.]+)\]")
PLUS_MINUS = re.compile(r"^\s*(-?[\d.]+)\s*±\s*([\d.]+)")
SIDE_BY_SIDE = ("classifier Frechet (not FID)", "classifier precision", "classifier recall", "L1 to ground truth",
                "SSIM")


def key_column(df: pd.DataFrame) -> str:
    """The column naming a row: ``method`` (Table 3) or ``model`` (the joint table)."""
    return "method" if "method" in df.columns else df.columns[0]


def number(cell: str) -> float | None:
    try:
        return float(str(cell).split()[0])
    except (ValueError, IndexError):
        return None


def error_rows(name: str, old: pd.DataFrame, new: pd.DataFrame) -> tuple[list[dict], list[str]]:
    """Each row's error against the other folder's 95% interval."""
    key, rows, problems = key_column(old), [], []
    for _, o in old.iterrows():
        match = new[new[key] == o[key]]
        if not len(match):
            problems.append(f"{name}: row {o[key]!r} is missing from the new table")
            continue
        n = match.iloc[0]
        mo, mn = INTERVAL.match(str(o[ERROR])), INTERVAL.match(str(n[ERROR]))
        if not (mo and mn):
            continue
        vo, lo, hi = (float(x) for x in mo.groups())
        vn, lo_n, hi_n = (float(x) for x in mn.groups())
        inside, back = lo <= vn <= hi, lo_n <= vo <= hi_n
        if not inside:
            problems.append(f"{name}, {o[key]}: the new error {vn:.2f} lies outside the committed {o[ERROR]}")
        rows.append({"table": name, "row": o[key], "committed": o[ERROR], "new": n[ERROR],
                     "new inside committed": "yes" if inside else "NO",
                     "committed inside new": "yes" if back else "NO",
                     "converged (committed / new)": f"{o.get('converged', '-')} / {n.get('converged', '-')}"})
    extra = set(new[key]) - set(old[key])
    problems += [f"{name}: row {r!r} is new" for r in sorted(extra)]
    return rows, problems


def other_rows(name: str, old: pd.DataFrame, new: pd.DataFrame) -> list[dict]:
    """KID with its stated ± (overlap of mean ± 2 sd), the rest as a relative change."""
    key, rows = key_column(old), []
    for _, o in old.iterrows():
        match = new[new[key] == o[key]]
        if not len(match):
            continue
        n, row = match.iloc[0], {"table": name, "row": o[key]}
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


def check(committed: Path, new: Path) -> tuple[str, list[str]]:
    old_files = {p.name for p in committed.iterdir() if p.is_file()}
    new_files = {p.name for p in new.iterdir() if p.is_file()}
    problems = [f"deleted: {f}" for f in sorted(old_files - new_files)]
    problems += [f"added: {f}" for f in sorted(new_files - old_files)]
    parts = [f"Files: committed {len(old_files)}, new {len(new_files)}; "
             + ("the same set." if old_files == new_files else "they differ (below).")]
    errors, others = [], []
    for csv in sorted(old_files & new_files):
        if not csv.endswith(".csv") or csv in ("curve.csv", "per_seed.csv", "per_target.csv", "per_edit.csv"):
            continue
        old = pd.read_csv(committed / csv, keep_default_na=False, dtype=str)
        fresh = pd.read_csv(new / csv, keep_default_na=False, dtype=str)
        if ERROR not in old.columns:
            continue
        rows, found = error_rows(csv, old, fresh)
        errors += rows
        problems += found
        others += other_rows(csv, old, fresh)
    if errors:
        parts.append("**Classification error: each folder's value against the other's 95% interval**\n\n"
                     + pd.DataFrame(errors).to_markdown(index=False))
    if others:
        parts.append("**Other numbers, committed / new** (KID: the tables' ± is the sd over random subsets; the "
                     "rest state no interval, so the relative change is given)\n\n"
                     + pd.DataFrame(others).to_markdown(index=False))
    parts.append("All checks hold." if not problems else "Checks that fail:\n" + "\n".join(f"- {p}" for p in problems))
    return "\n\n".join(parts) + "\n", problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--committed", type=Path, required=True, help="the committed results folder")
    ap.add_argument("--new", type=Path, required=True, help="the folder the command wrote")
    ap.add_argument("--out", type=Path, help="write the report here as well")
    ap.add_argument("--title", default="", help="a heading and the how-it-was-made lines for the report")
    args = ap.parse_args()
    text, _ = check(args.committed, args.new)
    text = (args.title + "\n\n" if args.title else "") + text
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
