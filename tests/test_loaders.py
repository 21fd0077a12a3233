"""Loaders on generated fixtures in every layout, and every bad input of the foundation issue."""
import random
from pathlib import Path

import pytest

from starbench.config import resolve
from starbench.data import load_data, load_index
from starbench.errors import StarbenchError


def cfg_for(name, root, *extra):
    return resolve([f"data={name}", f"data.root={root}", "scale=smoke", *extra])


# ------------------------------------------------------------------ RaFD
def test_rafd_raw_layout_keeps_metadata_and_splits_by_subject(rafd_raw):
    idx = load_index(cfg_for("rafd", rafd_raw))
    assert len(idx.records) == 5 * 72 and idx.layout.startswith("raw")
    meta = idx.records[0].meta
    assert set(meta) == {"angle", "subject", "ethnicity", "gender", "expression", "gaze"}
    train = {r.meta["subject"] for r in idx.records if r.split == "train"}
    test = {r.meta["subject"] for r in idx.records if r.split == "test"}
    assert test and train and not train & test
    # the label is the expression's one-hot in alphabetical order
    r = next(r for r in idx.records if r.meta["expression"] == "happy")
    assert r.label == tuple(1.0 if i == 4 else 0.0 for i in range(8))


def test_rafd_split_by_image_and_angles(rafd_raw):
    idx = load_index(cfg_for("rafd", rafd_raw, "data.split_by=image", "data.angles=['090']"))
    assert len(idx.records) == 5 * 24
    assert {r.meta["angle"] for r in idx.records} == {"090"}
    assert len(idx.indices("test")) == round(120 * 0.1)
    again = load_index(cfg_for("rafd", rafd_raw, "data.split_by=image", "data.angles=['090']"))
    assert [r.split for r in idx.records] == [r.split for r in again.records]  # seeded


def test_rafd_train_test_layout(rafd_split):
    idx = load_index(cfg_for("rafd", rafd_split))
    assert idx.layout.startswith("train|test") and len(idx.records) == 5 * 72
    assert idx.splits() == ["train", "test"]
    assert all(r.meta["subject"] for r in idx.records)  # names still parsed for metadata


def test_rafd_bad_file_name_is_named(rafd_raw):
    (rafd_raw / "Rafd090_01_Martian_male_happy_frontal.jpg").write_bytes(b"x")
    with pytest.raises(StarbenchError, match=r"Rafd090_01_Martian_male_happy_frontal\.jpg: file name does not parse"):
        load_index(cfg_for("rafd", rafd_raw))
    lenient = load_index(cfg_for("rafd", rafd_raw), strict=False)
    assert len(lenient.problems) == 1 and len(lenient.records) == 5 * 72


def test_rafd_empty_domain_folder(rafd_split):
    for p in (rafd_split / "test" / "sad").iterdir():
        p.unlink()
    with pytest.raises(StarbenchError, match=r"test/sad: empty domain folder"):
        load_index(cfg_for("rafd", rafd_split))


def test_not_rafd_shaped_and_missing_folder(tmp_path):
    (tmp_path / "holiday.jpg").write_bytes(b"")
    with pytest.raises(StarbenchError, match="holiday.jpg: file name does not parse"):
        load_index(cfg_for("rafd", tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(StarbenchError, match="found no RaFD images"):
        load_index(cfg_for("rafd", tmp_path / "empty"))
    with pytest.raises(StarbenchError, match="does not exist"):
        load_index(cfg_for("rafd", tmp_path / "nowhere"))


# ------------------------------------------------------------------ CelebA
def test_celeba_standard_split(celeba):
    idx = load_index(cfg_for("celeba", celeba))
    assert len(idx.records) == 40 and idx.domains.names == ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
    parts = dict(line.split() for line in (celeba / "list_eval_partition.txt").read_text().splitlines())
    for r in idx.records:
        assert r.split == {"0": "train", "1": "val", "2": "test"}[parts[Path(r.path).name]]
    # labels follow the attribute file
    lines = (celeba / "list_attr_celeba.txt").read_text().splitlines()
    names = lines[1].split()
    row = lines[2].split()
    assert idx.records[0].label == tuple(1.0 if row[1 + names.index(a)] == "1" else 0.0 for a in idx.domains.names)


def test_celeba_stargan_split_matches_the_public_code(tmp_path):
    """2,100 listed images: the public code's seed-1234 shuffle puts exactly 1,999 of them in test."""
    from starbench.data.synth import CELEBA_ATTRIBUTES
    root = tmp_path / "CelebA"
    (root / "img_align_celeba").mkdir(parents=True)
    from PIL import Image
    tiny = Image.new("RGB", (8, 10))
    lines = []
    for i in range(1, 2101):
        name = f"{i:06d}.jpg"
        tiny.save(root / "img_align_celeba" / name)
        lines.append(name + " " + " ".join("1" if (i + j) % 3 == 0 else "-1" for j in range(40)))
    (root / "list_attr_celeba.txt").write_text(f"2100\n{' '.join(CELEBA_ATTRIBUTES)}\n" + "\n".join(lines) + "\n")
    idx = load_index(cfg_for("celeba", root, "data.split=stargan"))
    # restate the public solver's data loader: seed, shuffle the lines, first 1,999 are test
    random.seed(1234)
    shuffled = list(lines)
    random.shuffle(shuffled)
    expected_test = {line.split()[0] for line in shuffled[:1999]}
    got_test = {Path(r.path).name for r in idx.records if r.split == "test"}
    assert got_test == expected_test and len(idx.indices("train")) == 101


def test_celeba_truncated_line(celeba):
    path = celeba / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[7] = " ".join(lines[7].split()[:12])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(StarbenchError, match=r"list_attr_celeba\.txt, line 8: expected a file name and 40 values"):
        load_index(cfg_for("celeba", celeba))


def test_celeba_bad_value_and_header(celeba):
    path = celeba / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[4] = lines[4].replace(" 1", " 2", 1) if " 1" in lines[4] else lines[4].replace("-1", "yes", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(StarbenchError, match=r"line 5: attribute value"):
        load_index(cfg_for("celeba", celeba))
    path.write_text("forty\n" + "\n".join(lines[1:]) + "\n")
    with pytest.raises(StarbenchError, match=r"line 1: expected the number of images"):
        load_index(cfg_for("celeba", celeba))


def test_celeba_unknown_attribute(celeba):
    with pytest.raises(StarbenchError, match=r"no attribute 'Blonde_Hair'.*did you mean Blond_Hair"):
        load_index(cfg_for("celeba", celeba, "data.attributes=[Blonde_Hair,Male]"))


def test_celeba_listed_image_missing(celeba):
    (celeba / "img_align_celeba" / "000003.jpg").unlink()
    with pytest.raises(StarbenchError,
                       match=r"000003\.jpg: image listed on line 5 of list_attr_celeba\.txt but missing"):
        load_index(cfg_for("celeba", celeba))


def test_corrupt_jpeg_named_and_no_cache_written(celeba, isolated_cache):
    target = celeba / "img_align_celeba" / "000010.jpg"
    target.write_bytes(target.read_bytes()[:200])  # truncated JPEG
    with pytest.raises(StarbenchError, match=r"000010\.jpg: truncated or corrupt image"):
        load_data(cfg_for("celeba", celeba))
    decoded = isolated_cache / "decoded"
    assert not decoded.exists() or not list(decoded.glob("*.npy")) and not list(decoded.glob(".*.npy"))  # nothing
    # half-written (the empty lock file of the decoding step may stay)


# ------------------------------------------------------------------ folder
def test_folder_layout(folder_data):
    idx = load_index(cfg_for("folder", folder_data))
    assert idx.domains.names == ("calm", "joy", "shock") and idx.domains.kind == "onehot"
    assert len(idx.records) == 30
    for d in idx.domains.names:  # each domain has both splits
        assert {r.split for r in idx.records if r.meta["domain"] == d} == {"train", "test"}


def test_folder_empty_domain(folder_data):
    (folder_data / "bored").mkdir()
    with pytest.raises(StarbenchError, match=r"bored: empty domain folder"):
        load_index(cfg_for("folder", folder_data))


def test_folder_needs_a_root():
    with pytest.raises(StarbenchError, match="data.root"):
        load_index(resolve(["data=folder"]))


# ------------------------------------------------------------------ synthetic default
def test_synthetic_set_is_generated_once(isolated_cache):
    cfg = resolve(["scale=smoke", "data.synth_subjects=3", "data.synth_size=32"])
    idx = load_index(cfg, show_progress=False)
    assert len(idx.records) == 3 * 72
    before = {p: p.stat().st_mtime_ns for p in (isolated_cache / "synth").rglob("*.jpg")}
    load_index(cfg, show_progress=False)
    after = {p: p.stat().st_mtime_ns for p in (isolated_cache / "synth").rglob("*.jpg")}
    assert before == after
