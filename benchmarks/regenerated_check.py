"""Does a README command regenerate what is committed? ``starbench compare`` with the options the reports here used.

The checks are ``starbench.evaluate.compare`` (the ``starbench compare committed=DIR new=DIR [seed_study=DIR]``
command): the file sets, each error against the other folder's 95% interval, the other numbers side by side, every
CSV cell by cell, a test of two seed studies' means, and with ``--seed-study`` each single run against the seed
study's prediction interval for one more run. This script adds ``--title`` (the heading and how-it-was-made lines
of the reports in ``benchmarks/results/cross_machine/``). Usage, in a fresh clone after the README's command:

  python benchmarks/regenerated_check.py --committed /path/to/main/results/rafd_expression \\
      --new results/rafd_expression --out benchmarks/results/regenerated_rafd_expression.md \\
      --seed-study /path/to/main/results/seeds/rafd_expression
"""
from __future__ import annotations

import argparse
from pathlib import Path

from starbench.evaluate.compare import compare_folders


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--committed", type=Path, required=True, help="the committed results folder")
    ap.add_argument("--new", type=Path, required=True, help="the folder the command wrote")
    ap.add_argument("--out", type=Path, help="write the report here as well")
    ap.add_argument("--seed-study", type=Path, help="the committed seed study of the same protocol (its "
                    "per_seed.csv): each single run against the seed spread of one run as well")
    ap.add_argument("--title", default="", help="a heading and the how-it-was-made lines for the report")
    args = ap.parse_args()
    text = compare_folders(args.committed, args.new, args.seed_study).report
    text = (args.title + "\n\n" if args.title else "") + text
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
