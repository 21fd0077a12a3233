"""CelebA attribute protocol at smoke scale: the paper's rows and columns, bad input, re-rendering."""
import pandas as pd
import pytest

from starbench.config import resolve
from starbench.errors import StarbenchError
from starbench.registry import PROTOCOLS
from starbench.report import rerender

FAST = ["data=celeba", "scale=smoke", "fid.download=false", "train.progress=false", "data.synth_celeba_images=200",
        "train.steps=6", "classifier.epochs=1"]


def run(tmp_path, *extra):
    cfg = resolve(FAST + [f"run_dir={tmp_path / 'runs'}", f"results_dir={tmp_path / 'results'}", *extra])
    return PROTOCOLS.get("celeba_attributes")(cfg)


def test_smoke_tables_have_the_paper_rows_and_columns(tmp_path):
    run(tmp_path)
    out = tmp_path / "results" / "celeba_attributes"
    t1 = pd.read_csv(out / "table1.csv", keep_default_na=False)
    t2 = pd.read_csv(out / "table2.csv", keep_default_na=False)
    assert list(t1["method"]) == ["stargan", "diat", "cyclegan", "icgan"] == list(t2["method"])
    for group in ("hair colour", "gender", "aged"):
        for col in ("target %", "kept %", "FID", "classifier Frechet", "classifier KID x1000", "L1 to input",
                    "paper votes % (human study)"):
            assert f"{group}: {col}" in t1.columns
    for group in ("H+G", "H+A", "G+A", "H+G+A"):
        assert f"{group}: paper votes % (human study)" in t2.columns
    by1, by2 = t1.set_index("method"), t2.set_index("method")
    assert by1.loc["stargan", "gender: paper votes % (human study)"] == "39.1"  # checked number
    assert by2.loc["icgan", "G+A: paper votes % (human study)"] == "20.3"
    assert by1.loc["diat", "hair colour: paper votes % (human study)"] == "9.3 (recalled)"
    assert all(0 <= float(v) <= 100 for v in by1["aged: target %"])
    per_edit = pd.read_csv(out / "per_edit.csv", keep_default_na=False)
    assert set(per_edit["edit"]) == {"hair->black", "hair->blond", "hair->brown", "gender", "aged", "H+G", "H+A",
                                     "G+A", "H+G+A"}
    # the target error over each table's edits is 100 - their target %, pooled over translations, with its interval
    for table, groups in ((t1, ("hair colour", "gender", "aged")), (t2, ("H+G", "H+A", "G+A", "H+G+A"))):
        for _, row in table.iterrows():
            mine = per_edit[(per_edit["method"] == row["method"]) & per_edit["group"].isin(groups)]
            hit = (mine["n"] * mine["target %"].astype(float) / 100).sum()
            value, interval = row["target error % [95% CI]"].split(" ", 1)
            assert float(value) == pytest.approx(100 * (1 - hit / mine["n"].sum()), abs=0.006)
            low, high = (float(v) for v in interval.strip("[]").split(","))
            assert low <= float(value) <= high
        mcnemar = table.set_index("method")["McNemar p vs stargan"]
        assert mcnemar["stargan"] == "-" and all(0 <= float(mcnemar[m]) <= 1 for m in ("diat", "cyclegan", "icgan"))
    assert "human study" in (out / "table1.md").read_text()
    files = ["table1.csv", "table1.md", "table1.tex", "table2.md", "per_edit.csv", "translations.png"]
    before = {f: (out / f).read_bytes() for f in files}
    rerender(tmp_path / "results", "celeba_attributes", PROTOCOLS.get("celeba_attributes").render)
    assert {f: (out / f).read_bytes() for f in files} == before


def test_per_seed_rows_keep_each_tables_error(tmp_path):
    """per_seed.csv holds both tables' rows of a seed: each table's target error and McNemar p are its own, and
    they are what a single-seed run of that seed puts in that table."""
    few = ["models=[stargan,icgan]", "seed=1"]
    run(tmp_path, *few)
    single = {t: pd.read_csv(tmp_path / "results" / "celeba_attributes" / f"{t}.csv", keep_default_na=False,
                             dtype=str).set_index("method") for t in ("table1", "table2")}
    run(tmp_path, *few, "seeds=[0,1]", f"results_dir={tmp_path / 'seeds'}")
    per_seed = pd.read_csv(tmp_path / "seeds" / "celeba_attributes" / "per_seed.csv", keep_default_na=False,
                           dtype=str)
    mine = per_seed[per_seed.seed == "1"].set_index("method")
    for name, table in (("Table 1", "table1"), ("Table 2", "table2")):
        for col in ("target error % [95% CI]", "McNemar p vs stargan"):
            assert (mine[f"{name}: {col}"] == single[table][col]).all(), (name, col)
    assert "target error % [95% CI]" not in per_seed.columns
    assert (mine["H+G: target %"] == single["table2"]["H+G: target %"]).all()


def test_missing_attribute_and_wrong_data(tmp_path):
    with pytest.raises(StarbenchError, match="needs data.attributes=.*missing: Young"):
        run(tmp_path, "data.attributes=[Black_Hair,Blond_Hair,Brown_Hair,Male]")
    with pytest.raises(StarbenchError, match="runs on CelebA"):
        run(tmp_path, "data=rafd")
