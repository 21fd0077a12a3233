"""The evaluation core from outside: export a task, fill translation folders as outside code would, score them."""
import csv
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from starbench.cli import cli
from starbench.config import resolve
from starbench.data import load_data
from starbench.data.images import load_image
from starbench.errors import StarbenchError
from starbench.evaluate.classifiers import classify
from starbench.metrics.extractors import register_extractor
from starbench.protocols.rafd_expression import expression_classifier
from starbench.registry import PROTOCOLS

FAST = ["scale=smoke", "fid.download=false", "train.progress=false", "data.synth_subjects=6", "train.steps=6"]


def settings(tmp_path, *extra):
    return FAST + [f"run_dir={tmp_path / 'runs'}", f"results_dir={tmp_path / 'results'}", *extra]


def export(tmp_path, *extra, protocol="rafd_expression"):
    res = CliRunner().invoke(cli, ["export", f"protocol={protocol}", f"out={tmp_path / 'task'}", *settings(tmp_path),
                                   *extra])
    assert res.exit_code == 0, res.output
    with open(tmp_path / "task" / "tasks.csv") as f:
        return list(csv.DictReader(f))


def dataset_root(tmp_path):
    cfg = resolve(settings(tmp_path))
    return load_data(cfg, show_progress=False).index.root


def fill(folder, rows, image_of):
    folder.mkdir()
    for row in rows:
        image_of(row).save(folder / row["output"])


def test_exported_task_scored_from_folders_beside_a_builtin_method(tmp_path, isolated_cache):
    rows = export(tmp_path)
    task = tmp_path / "task"
    assert list(rows[0]) == ["input", "source_file", "source", "target", "output", "edit"]
    assert {r["source"] for r in rows} == {"neutral"} and len({r["target"] for r in rows}) == 7
    inputs = sorted(p.name for p in (task / "inputs").iterdir())
    assert len(rows) == 7 * len(inputs) and {r["input"] for r in rows} == set(inputs)
    assert Image.open(task / "inputs" / inputs[0]).size == (32, 32)
    assert "translations=[my_model]" in (task / "README.txt").read_text()
    root = dataset_root(tmp_path)
    # the inputs are the dataset files preprocessed as the protocol feeds them (centre square, 32 px)
    first = rows[0]
    assert np.array_equal(np.asarray(Image.open(task / "inputs" / first["input"])).transpose(2, 0, 1),
                          load_image(str(root / first["source_file"]), 32))

    def truth_file(row):  # RaFD names the same subject, gaze and angle in the target expression
        return root / row["source_file"].replace("_neutral_", f"_{row['target']}_")

    fill(tmp_path / "oracle", rows, lambda r: Image.fromarray(load_image(str(truth_file(r)), 32).transpose(1, 2, 0)))
    fill(tmp_path / "unchanged", rows, lambda r: Image.open(task / "inputs" / r["input"]))
    PROTOCOLS.get("rafd_expression")(resolve(settings(
        tmp_path, "models=[stargan]", f"translations=[{tmp_path / 'oracle'},{tmp_path / 'unchanged'}]")))
    out = tmp_path / "results" / "rafd_expression"
    table = pd.read_csv(out / "table3.csv", keep_default_na=False).set_index("method")
    assert list(table.index) == ["stargan", "oracle", "unchanged", "real images"]
    oracle, unchanged = table.loc["oracle"], table.loc["unchanged"]
    assert oracle["L1 to ground truth"] == "0.0000" and oracle["SSIM"] == "1.000" and oracle["PSNR dB"] == "inf"
    assert oracle["parameters"] == "-" and oracle["McNemar p vs stargan"] != "-"
    # the oracle's error is the classifier's own error on those real photos
    cfg = resolve(settings(tmp_path))
    data = load_data(cfg, show_progress=False)
    clf, _, _ = expression_classifier(cfg, data, torch.device("cpu"))
    names = [r.meta["expression"] for r in data.index.records]
    photos = torch.stack([torch.from_numpy(load_image(str(truth_file(r)), 32)) for r in rows])
    targets = np.array([sorted(set(names)).index(r["target"]) for r in rows])
    wrong = classify(clf, photos) != targets
    assert float(oracle["classification error % [95% CI]"].split()[0]) == pytest.approx(100 * wrong.mean(), abs=0.006)
    # the unchanged inputs' error is the classifier's verdict on the neutral faces themselves, and doing nothing
    # scores far worse than the truth (a bound against the oracle, not against chance: the 6-subject smoke judge
    # labels some neutral faces with another expression, how many depends on the thread count it trained with)
    faces = torch.stack([torch.from_numpy(np.asarray(Image.open(task / "inputs" / r["input"])).transpose(2, 0, 1)
                                          .copy()) for r in rows])
    stays = classify(clf, faces) != targets
    unchanged_err = float(unchanged["classification error % [95% CI]"].split()[0])
    assert unchanged_err == pytest.approx(100 * stays.mean(), abs=0.006)
    assert unchanged_err > float(oracle["classification error % [95% CI]"].split()[0]) + 50
    # distribution metrics with known answers: the oracle's translations are the reference photos themselves
    # (precision and recall 1; KID just below 0, as for any set against itself: its expectation is then
    # 2 (mean k(x, x') - mean k(x, x)) / n, small beside a real difference), the unchanged inputs are another
    # distribution (KID many times its sd above 0)
    def kid(row):
        return tuple(float(x) for x in row["classifier KID x1000"].split(" ± "))

    assert oracle["classifier precision"] == "1.000" and oracle["classifier recall"] == "1.000"
    assert -0.1 * kid(unchanged)[0] < kid(oracle)[0] <= 0 and kid(unchanged)[0] > 5 * kid(unchanged)[1]
    notes = (out / "table3.md").read_text()
    assert "oracle: 63 translations read from the folder oracle" in notes and "resized" not in notes
    assert "One training seed (seed=0)" in notes  # StarGAN was trained here, with one seed
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["runs"]["oracle"]["kind"] == "folder" and prov["runs"]["stargan"]["kind"] == "trained"

    # models=[] scores only the folders; other sizes and JPEG are accepted, resized and noted
    big = tmp_path / "big"
    big.mkdir()
    for r in rows:
        Image.open(task / "inputs" / r["input"]).resize((48, 48)).save(big / r["output"].replace(".png", ".jpg"))
    # ... and one more feature extractor by name: the classifier's, registered with torch-fidelity a second time
    register_extractor("starbench-classifier-2")
    clf_key = json.loads((out / "provenance.json").read_text())["classifier"]["key"]
    clf_file = isolated_cache / "classifiers" / f"{clf_key}.extractor.pt"
    PROTOCOLS.get("rafd_expression")(resolve(settings(tmp_path, "models=[]", f"translations=[{big}]",
                                                      "metrics.extractor=starbench-classifier-2",
                                                      f"metrics.extractor_weights={clf_file}")))
    table = pd.read_csv(out / "table3.csv", keep_default_na=False)
    assert list(table["method"]) == ["big", "real images"]
    row = table.set_index("method").loc["big"]
    assert float(row["starbench-classifier-2 FD"]) == pytest.approx(float(row["classifier Frechet (not FID)"]),
                                                                    abs=0.006)  # 2 digits against 3
    assert row["starbench-classifier-2 KID x1000"] == row["classifier KID x1000"]
    notes = (out / "table3.md").read_text()
    assert "big: 63 translation(s) were not of the protocol's size and were resized" in notes
    assert "One training seed" not in notes  # nothing trained here: no training seed to leave out


def test_bad_translation_folders_fail_clearly_and_touch_nothing(tmp_path):
    rows = export(tmp_path)
    run = PROTOCOLS.get("rafd_expression")
    good = tmp_path / "good"
    fill(good, rows, lambda r: Image.open(tmp_path / "task" / "inputs" / r["input"]))
    run(resolve(settings(tmp_path, "models=[]", f"translations=[{good}]")))
    table = tmp_path / "results" / "rafd_expression" / "table3.csv"
    before = table.read_bytes()

    partial = tmp_path / "partial"
    shutil.copytree(good, partial)
    for r in rows[:7]:
        (partial / r["output"]).unlink()
    with pytest.raises(StarbenchError, match=rf"7 of 63 translations are missing: {rows[0]['output']}, .* and 2 more"):
        run(resolve(settings(tmp_path, "models=[]", f"translations=[{partial}]")))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "holiday.png").write_bytes(b"")
    with pytest.raises(StarbenchError, match="holds none of the 63 images the task names"):
        run(resolve(settings(tmp_path, "models=[]", f"translations=[{empty}]")))
    broken = tmp_path / "broken"
    shutil.copytree(good, broken)
    (broken / rows[3]["output"]).write_bytes(b"not a png")
    with pytest.raises(StarbenchError, match=f"1 image\\(s\\) cannot be used:\n  .*{rows[3]['output']}: not an image"):
        run(resolve(settings(tmp_path, "models=[]", f"translations=[{broken}]")))
    with pytest.raises(StarbenchError, match="'models' and 'translations' are both empty"):
        run(resolve(settings(tmp_path, "models=[]")))
    with pytest.raises(StarbenchError, match="translations: folder .*nowhere does not exist"):
        run(resolve(settings(tmp_path, f"translations=[{tmp_path / 'nowhere'}]")))
    with pytest.raises(StarbenchError, match="weights file .*missing.ckpt .* does not exist"):
        run(resolve(settings(tmp_path, f"models=[stargan@{tmp_path / 'missing.ckpt'}]")))
    assert table.read_bytes() == before
    # export refuses a folder that holds something else
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    res = CliRunner().invoke(cli, ["export", "protocol=rafd_expression", f"out={tmp_path / 'mine'}", *FAST])
    assert res.exit_code == 2 and "is not an earlier export" in res.output
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "x"
    res = CliRunner().invoke(cli, ["export", "protocol=params", f"out={tmp_path / 'p'}"])
    assert res.exit_code == 2 and "no task to export" in res.output


def test_celeba_export_names_multilabel_targets(tmp_path):
    rows = export(tmp_path, "data=celeba", protocol="celeba_attributes")
    edits = {r["edit"] for r in rows}
    assert edits == {"hair->black", "hair->blond", "hair->brown", "gender", "aged", "H+G", "H+A", "G+A", "H+G+A"}
    hg = next(r for r in rows if r["edit"] == "H+G")
    src, tgt = set(hg["source"].split("+")), set(hg["target"].split("+"))
    assert ("Male" in src) != ("Male" in tgt) and src & {"Black_Hair", "Blond_Hair", "Brown_Hair"} != \
        tgt & {"Black_Hair", "Blond_Hair", "Brown_Hair"}
    assert hg["output"].endswith("__H+G.png") and "->" not in "".join(r["output"] for r in rows)
    aged = [r for r in rows if r["edit"] == "aged"]
    assert aged and all("Young" in r["source"].split("+") and "Young" not in r["target"].split("+") for r in aged)
