"""The main job at smoke scale: tables with the paper's rows and columns, reuse, bad input, both layouts."""
import functools
import json

import pandas as pd
import pytest

from starbench.config import resolve
from starbench.data import synth
from starbench.errors import StarbenchError
from starbench.registry import PROTOCOLS

COLUMNS = ["method", "classification error % [95% CI]", "steps", "G updates", "train s", "converged",
           "paper error %", "FID (mean of 7 targets)",
           "KID x1000 (Inception)", "classifier Frechet (not FID)", "classifier KID x1000", "classifier precision",
           "classifier recall", "L1 to ground truth", "PSNR dB", "SSIM", "McNemar p vs stargan", "parameters",
           "paper parameters"]
FAST = ["scale=smoke", "fid.download=false", "train.progress=false", "data.synth_subjects=6", "train.steps=10"]


def parse_error(cell):
    """'12.50 [5.00, 20.00]' -> (12.5, (5.0, 20.0))."""
    value, interval = cell.split(" ", 1)
    low, high = (float(x) for x in interval.strip("[]").split(", "))
    return float(value), (low, high)


def run(tmp_path, *extra):
    cfg = resolve(FAST + [f"run_dir={tmp_path / 'runs'}", f"results_dir={tmp_path / 'results'}", *extra])
    return PROTOCOLS.get("rafd_expression")(cfg)


def run_with(setting, tmp_path, *extra):
    return run(tmp_path, setting, *extra)


def test_smoke_protocol_writes_table3_and_reuses_its_steps(tmp_path):
    run(tmp_path)
    out = tmp_path / "results" / "rafd_expression"
    table = pd.read_csv(out / "table3.csv", keep_default_na=False)
    assert list(table.columns) == COLUMNS
    assert list(table["method"]) == ["stargan", "diat", "cyclegan", "icgan", "real images"]
    by = table.set_index("method")
    assert by.loc["stargan", "paper error %"] == "2.12" and by.loc["diat", "paper error %"] == "4.10 (recalled)"
    assert by.loc["real images", "paper error %"] == "0.45"
    # the judge learned: the smoke classifier's error on the real test images is far below chance (7/8: 87.5%), so
    # these smoke tables can notice a broken judge
    real_error, (low, high) = parse_error(by.loc["real images", "classification error % [95% CI]"])
    assert high < 60, real_error
    assert by.loc["cyclegan", "parameters"].endswith("x 14") and by.loc["diat", "parameters"].endswith("x 7")
    assert by.loc["stargan", "steps"] == "10" and by.loc["stargan", "G updates"] == "2"  # n_critic 5
    assert by.loc["icgan", "G updates"] == "10" and by.loc["real images", "steps"] == "-"
    stargan_error, _ = parse_error(by.loc["stargan", "classification error % [95% CI]"])
    assert "unknown (no learning curve" in by.loc["stargan", "converged"]  # smoke keeps no curve points
    assert by.loc["stargan", "converged"].startswith("did not learn") == (stargan_error >= 75)
    assert (by["FID (mean of 7 targets)"].iloc[:4] == "n/a").all()  # offline, download disabled
    assert all(float(v) >= 0 for v in by["classifier Frechet (not FID)"].iloc[:4])
    assert (by["KID x1000 (Inception)"].iloc[:4] == "n/a").all()  # no Inception weights offline
    for v in by["classifier KID x1000"].iloc[:4]:  # mean ± sd over subsets, averaged over the 7 targets
        mean, sd = (float(x) for x in v.split(" ± "))
        assert sd > 0
    assert all(0 <= float(v) <= 1 for c in ("classifier precision", "classifier recall") for v in by[c].iloc[:4])
    assert by.loc["stargan", "McNemar p vs stargan"] == "-" and by.loc["icgan", "McNemar p vs stargan"] != "-"
    per_target = pd.read_csv(out / "per_target.csv")
    assert {"classifier KID x1000", "classifier KID sd x1000", "precision", "recall", "KID x1000"} <= set(per_target)
    assert len(per_target) == 4 * 7 and set(per_target["target"]) == {
        "angry", "contemptuous", "disgusted", "fearful", "happy", "sad", "surprised"}
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["inception"]["path"] is None and "no Inception weights" in prov["inception"]["problem"]
    assert prov["n"]["translations_per_method"] == prov["n"]["neutral_test_inputs"] * 7
    assert prov["n"]["paired_per_method"] == prov["n"]["translations_per_method"]  # every translation has its photo
    assert set(prov["wall_seconds_per_step"]) >= {"data", "expression classifier", "metrics"}  # written during "report"
    md = (out / "table3.md").read_text()
    assert "no Inception weights (fid.weights=PATH)" in md and "(recalled)" in md
    assert (out / "translations.png").is_file() and (out / "table3.tex").read_text().startswith("\\begin{table}")
    # `starbench tables` regenerates every table and the figure byte for byte from the run record
    from click.testing import CliRunner

    from starbench.cli import cli
    files = ["table3.csv", "table3.md", "table3.tex", "per_target.csv", "translations.png"]
    before = {f: (out / f).read_bytes() for f in files}
    (out / "table3.md").write_text("edited by hand")
    res = CliRunner().invoke(cli, ["tables", "protocol=rafd_expression", f"results_dir={tmp_path / 'results'}"])
    assert res.exit_code == 0, res.output
    assert {f: (out / f).read_bytes() for f in files} == before
    assert (out / "provenance.json").is_file()
    # the same config again: every step is reused
    run(tmp_path)
    again = json.loads((out / "provenance.json").read_text())
    assert all(r["reused"] for r in again["runs"].values()) and again["classifier"]["cached"]
    assert pd.read_csv(out / "table3.csv", keep_default_na=False).equals(table)


def test_split_layout_and_bad_inputs(tmp_path):
    root = synth.write_rafd(tmp_path / "RaFD", subjects=5, size=40, seed=1, layout="split")
    # this test checks the layout and the refusals, not the judge: a 1-epoch classifier will do
    run = functools.partial(run_with, "classifier.epochs=1")
    run(tmp_path, f"data.root={root}", "models=[stargan]")
    table = pd.read_csv(tmp_path / "results" / "rafd_expression" / "table3.csv", keep_default_na=False)
    assert list(table["method"]) == ["stargan", "real images"]
    before = (tmp_path / "results" / "rafd_expression" / "table3.csv").read_bytes()
    with pytest.raises(StarbenchError, match="unknown model 'stargann'; available: cyclegan, diat, icgan, stargan"):
        run(tmp_path, f"data.root={root}", "models=[stargann]")
    bad = tmp_path / "weights.pth"
    bad.write_bytes(b"not inception")
    with pytest.raises(StarbenchError, match="sha256"):
        run(tmp_path, f"data.root={root}", "models=[stargan]", f"fid.weights={bad}")
    with pytest.raises(StarbenchError, match="fid.required=true"):
        run(tmp_path, f"data.root={root}", "models=[stargan]", "fid.required=true")
    # too few neutral test images
    for p in (root / "test" / "neutral").iterdir():
        if not p.name.startswith("Rafd090"):
            p.unlink()
    for p in list((root / "test" / "neutral").iterdir())[1:]:
        p.unlink()
    with pytest.raises(StarbenchError, match="1 neutral test image"):
        run(tmp_path, f"data.root={root}", "models=[stargan]")
    not_rafd = tmp_path / "holiday"
    not_rafd.mkdir()
    (not_rafd / "beach.jpg").write_bytes(b"")
    with pytest.raises(StarbenchError, match="does not parse as RaFD"):
        run(tmp_path, f"data.root={not_rafd}", "models=[stargan]")
    # none of the failures touched the earlier results
    assert (tmp_path / "results" / "rafd_expression" / "table3.csv").read_bytes() == before
