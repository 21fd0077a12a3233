import hashlib
from pathlib import Path

from starbench.data import synth
from starbench.data.rafd import parse_rafd_name


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_gives_identical_bytes(tmp_path):
    a = synth.write_rafd(tmp_path / "a", subjects=2, size=32, seed=11)
    b = synth.write_rafd(tmp_path / "b", subjects=2, size=32, seed=11)
    c = synth.write_rafd(tmp_path / "c", subjects=2, size=32, seed=12)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)
    ca = synth.write_celeba(tmp_path / "ca", count=12, seed=1)
    cb = synth.write_celeba(tmp_path / "cb", count=12, seed=1)
    assert _digest(ca) == _digest(cb)


def test_rafd_files_are_named_like_rafd(rafd_raw_master):
    files = sorted(rafd_raw_master.glob("*.jpg"))
    assert len(files) == 5 * 8 * 3 * 3
    metas = [parse_rafd_name(p) for p in files]
    assert all(m is not None for m in metas)
    assert {m["expression"] for m in metas} == set(synth.RAFD_EXPRESSIONS)
    assert {m["gaze"] for m in metas} == {"left", "frontal", "right"}
    assert {m["angle"] for m in metas} == {"045", "090", "135"}
    # identity traits are per subject: ethnicity and gender never change within a subject
    by_subject = {}
    for m in metas:
        by_subject.setdefault(m["subject"], set()).add((m["ethnicity"], m["gender"]))
    assert all(len(v) == 1 for v in by_subject.values())


def test_expressions_differ_and_identity_persists(rafd_raw_master):
    import numpy as np
    from PIL import Image

    def img(subject, expression):
        p = next(rafd_raw_master.glob(f"Rafd090_{subject:02d}_*_{expression}_frontal.jpg"))
        return np.asarray(Image.open(p), dtype=np.float32)

    same_face = np.abs(img(1, "neutral") - img(1, "happy")).mean()
    other_face = np.abs(img(1, "neutral") - img(2, "neutral")).mean()
    assert same_face > 1.0  # the expression changes pixels
    assert other_face > same_face  # another person differs more than another expression


def test_celeba_lists(celeba_master):
    lines = (celeba_master / "list_attr_celeba.txt").read_text().splitlines()
    assert int(lines[0]) == 40 and lines[1].split() == synth.CELEBA_ATTRIBUTES and len(synth.CELEBA_ATTRIBUTES) == 40
    assert all(len(line.split()) == 41 for line in lines[2:])
    parts = (celeba_master / "list_eval_partition.txt").read_text().split()
    assert set(parts[1::2]) <= {"0", "1", "2"}
    from PIL import Image
    assert Image.open(celeba_master / "img_align_celeba" / "000001.jpg").size == (178, 218)
