"""Joint-training protocol at smoke scale: SNG vs JNT on the same inputs, the mask-vector figure, bad input."""
import pandas as pd
import pytest

from starbench.config import resolve
from starbench.errors import StarbenchError
from starbench.registry import PROTOCOLS

FAST = ["scale=smoke", "fid.download=false", "train.progress=false", "data.synth_subjects=6",
        "data.synth_celeba_images=120", "train.steps=6", "classifier.epochs=1"]


def run(tmp_path, *extra):
    cfg = resolve(FAST + [f"run_dir={tmp_path / 'runs'}", f"results_dir={tmp_path / 'results'}", *extra])
    return PROTOCOLS.get("joint_training")(cfg)


def test_sng_and_jnt_on_the_same_inputs(tmp_path):
    run(tmp_path)
    out = tmp_path / "results" / "joint_training"
    table = pd.read_csv(out / "joint.csv", keep_default_na=False)
    assert list(table["model"]) == ["StarGAN-SNG", "StarGAN-JNT"]
    by = table.set_index("model")
    assert by.loc["StarGAN-SNG", "McNemar p (JNT vs SNG)"] == "-"
    assert 0 <= float(by.loc["StarGAN-JNT", "McNemar p (JNT vs SNG)"]) <= 1
    assert "CelebA + RaFD" in by.loc["StarGAN-JNT", "trained on"]
    from PIL import Image
    w, h = Image.open(out / "translations.png").size
    assert w > h  # input + 8 expressions per row, two blocks (right and wrong mask)
    from starbench.report import rerender
    files = ["joint.csv", "joint.md", "joint.tex", "translations.png"]
    before = {f: (out / f).read_bytes() for f in files}
    rerender(tmp_path / "results", "joint_training", PROTOCOLS.get("joint_training").render)
    assert {f: (out / f).read_bytes() for f in files} == before
    runs = sorted(p.name for p in (tmp_path / "runs" / "models").iterdir())
    assert any(r.startswith("stargan-rafd-") for r in runs) and any(r.startswith("stargan-joint-") for r in runs)


def test_joint_needs_both_datasets(tmp_path):
    with pytest.raises(StarbenchError, match="joint training needs both CelebA and RaFD; celeba: .*does not exist"):
        run(tmp_path, f"data.celeba_root={tmp_path / 'nowhere'}")
