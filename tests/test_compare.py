"""``starbench compare``: does a rerun reproduce a results folder? Real folders in the shape protocols write."""
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from starbench.cli import cli
from starbench.evaluate.compare import compare_folders

ERROR = "classification error % [95% CI]"


def table(folder: Path, rows: dict[str, str], extra: tuple[str, ...] = ()) -> Path:
    """A Table 3 CSV (method, error with its interval, L1), plus empty files named in ``extra``."""
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"method": list(rows), ERROR: list(rows.values()), "converged": "yes",
                  "L1 to ground truth": "0.0520"}).to_csv(folder / "table3.csv", index=False)
    for name in extra:
        (folder / name).write_text("")
    return folder


def per_seed(folder: Path, errors: dict[str, list[float]]) -> Path:
    """A seed study's per_seed.csv: one row per (seed, method)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"seed": str(s), "method": m, ERROR: f"{e:.2f} [0.00, 99.00]"} for m, es in errors.items()
            for s, e in enumerate(es)]
    pd.DataFrame(rows).to_csv(folder / "per_seed.csv", index=False)
    return folder


def run(*args):
    return CliRunner().invoke(cli, ["compare", *args])


def test_a_folder_compared_with_itself_holds(tmp_path):
    old = table(tmp_path / "old", {"stargan": "7.48 [5.21, 10.35]", "diat": "12.24 [9.33, 15.67]"})
    res = run(f"committed={old}", f"new={old}")
    assert res.exit_code == 0, res.output
    assert "all checks hold" in res.output and "the same set" in res.output


def test_an_error_outside_the_interval_and_changed_files_fail(tmp_path):
    old = table(tmp_path / "old", {"stargan": "7.48 [5.21, 10.35]", "diat": "12.24 [9.33, 15.67]"},
                extra=("curve.png",))
    new = table(tmp_path / "new", {"stargan": "2.49 [1.25, 4.42]", "diat": "14.74 [11.56, 18.40]"},
                extra=("check.md",))
    result = compare_folders(old, new)
    assert "deleted: curve.png" in result.problems and "added: check.md" in result.problems
    assert any("stargan" in p and "2.49 lies outside the committed 7.48" in p for p in result.problems)
    assert not any("diat" in p for p in result.problems)  # 14.74 inside [9.33, 15.67]
    res = run(f"committed={old}", f"new={new}", f"out={tmp_path / 'report.md'}")
    assert res.exit_code == 1
    assert (tmp_path / "report.md").read_text() == result.report


def test_two_seed_studies_get_a_test_of_their_means(tmp_path):
    old = per_seed(tmp_path / "old", {"stargan": [2.0, 2.2, 2.4], "diat": [12.0, 12.5, 13.0]})
    new = per_seed(tmp_path / "new", {"stargan": [2.1, 2.3, 2.5], "diat": [20.0, 20.5, 21.0]})
    report = compare_folders(old, new).report
    assert "Two seed studies" in report
    rows = {line.split("|")[2].strip(): [c.strip() for c in line.split("|")[1:-1]]
            for line in report.splitlines() if line.startswith("| classification error %")}
    # three seeds a side: the exact permutation test cannot go below 2 / C(6, 3) = 0.1, even for DIAT's 8 points
    assert rows["diat"][-1] == "0.1" and rows["diat"][-2] == "0.1" and float(rows["diat"][-3]) < 0.001
    assert float(rows["stargan"][-3]) > 0.3


def test_single_runs_against_a_seed_study(tmp_path):
    old = table(tmp_path / "old", {"stargan": "7.48 [5.21, 10.35]"})
    new = table(tmp_path / "new", {"stargan": "30.00 [25.00, 35.00]"})
    study = per_seed(tmp_path / "seeds", {"stargan": [7.48, 2.04, 5.90, 0.68, 1.81]})
    report = compare_folders(old, new, study).report
    line = next(x for x in report.splitlines() if x.startswith("| table3.csv") and "prediction" not in x
                and "inside" in x and "OUTSIDE" in x)
    assert "7.48 (inside)" in line and "30.00 (OUTSIDE)" in line


def test_unreadable_input_is_an_error_that_names_it(tmp_path):
    good = table(tmp_path / "good", {"stargan": "7.48 [5.21, 10.35]"})
    res = run(f"committed={tmp_path / 'missing'}", f"new={good}")
    assert res.exit_code == 2 and "committed=" in res.output and "no such folder" in res.output
    (tmp_path / "empty").mkdir()
    res = run(f"committed={good}", f"new={tmp_path / 'empty'}")
    assert res.exit_code == 2 and "no .csv table" in res.output
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "table3.csv").write_bytes(b'method,"x\n\xff\xfe,"')
    res = run(f"committed={good}", f"new={broken}")
    assert res.exit_code == 2 and "table3.csv" in res.output and "not a results table" in res.output
    res = run(f"committed={good}", f"new={good}", f"seed_study={good}")
    assert res.exit_code == 2 and "no per_seed.csv" in res.output
    res = run(f"committed={good}")
    assert res.exit_code == 2 and "missing new=..." in res.output
