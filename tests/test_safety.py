"""Safe to load: files from other people are data (nothing they carry runs), bad images are refused by name,
old checkpoints still load, and a full disk or a hard kill leaves what was written before as it was."""
import errno
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from starbench.cli import cli
from starbench.config import resolve
from starbench.data.images import read_rgb
from starbench.errors import StarbenchError
from starbench.files import load_torch, save_torch
from starbench.metrics.classifier import cached_classifier
from starbench.registry import PROTOCOLS
from starbench.train.checkpoint import read_checkpoint
from starbench.train.trainer import Trainer

DATA = Path(__file__).parent / "data"
TINY = ["scale=smoke", "data.synth_subjects=4", "data.synth_size=32", "data.image_size=16", "data.batch_size=4",
        "stargan.g_conv_dim=8", "stargan.d_conv_dim=8", "stargan.g_repeat=1", "stargan.d_repeat=3",
        "train.progress=false", "train.tensorboard=false", "train.sample_every=0"]


class Evil:
    """Pickles to a call of os.system: loading it with weights_only=False would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def evil_file(path: Path, marker: Path, payload: str = "checkpoint") -> Path:
    obj = {"format": 1, "networks": Evil(marker)} if payload == "checkpoint" else {"main.0.weight": Evil(marker)}
    torch.save(obj, path)
    return path


# ------------------------------------------------------------------------------------------ loading without code
def test_malicious_checkpoint_is_refused_and_nothing_runs(tmp_path, rafd_raw):
    marker = tmp_path / "PWNED"
    photo = next(rafd_raw.glob("*_neutral_*.jpg"))
    runner = CliRunner()
    for name, payload in (("evil.pt", "checkpoint"), ("200000-G.ckpt", "checkpoint"), ("199-G.ckpt", "state")):
        path = evil_file(tmp_path / name, marker, payload)
        res = runner.invoke(cli, ["translate", f"checkpoint={path}", f"input={photo}", "target=happy",
                                  f"out={tmp_path / 'out'}"])
        assert res.exit_code == 2, res.output
        assert f"checkpoint {path} was refused: it asks for posix.system" in res.output
        assert "Traceback" not in res.output and not (tmp_path / "out").exists()
    # as a protocol source: refused before any work (nothing trained, no data decoded)
    cfg = resolve(TINY + ["protocol=rafd_expression", f"run_dir={tmp_path / 'runs'}",
                          f"results_dir={tmp_path / 'results'}", f"models=[stargan@{tmp_path / 'evil.pt'}]",
                          "fid.download=false"])
    with pytest.raises(StarbenchError, match="was refused: it asks for posix.system"):
        PROTOCOLS.get("rafd_expression")(cfg)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "results").exists()
    assert not list(Path(os.environ["STARBENCH_CACHE"]).glob("decoded/*.npy"))
    # the caches starbench reads back: a planted classifier cache is refused as well
    planted = tmp_path / "cache" / "classifiers" / "k.pt"
    planted.parent.mkdir(parents=True)
    evil_file(planted, marker)
    with pytest.raises(StarbenchError, match="classifier cache .* was refused"):
        cached_classifier(tmp_path / "cache", "k", 8, torch.device("cpu"), train=lambda: pytest.fail("retrained"))
    assert not marker.exists()


def test_a_checkpoint_of_starbench_0_1_0_still_loads_and_resumes(tmp_path):
    """tests/data holds a checkpoint written by the landed code (0.1.0: numpy's RNG state as an array), interrupted
    at step 4 of 8: it loads as data only, resumes to the end, and translates."""
    old = DATA / "stargan_checkpoint_v0.1.0.pt"
    ckpt = read_checkpoint(old)
    assert isinstance(ckpt["rng"]["numpy"][1], np.ndarray) and ckpt["step"] == 4
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(old, run / "checkpoint.pt")
    overrides = TINY + ["train.steps=8", "train.keep_every=2", "train.checkpoint_every=100"]
    result = Trainer(resolve(overrides), run).fit()
    assert result.step == 8 and not result.reused
    new = read_checkpoint(run / "checkpoint.pt")
    assert torch.is_tensor(new["rng"]["numpy"][1])  # written as plain data now
    moved = [k for k, v in new["networks"]["G"].items() if not torch.equal(v, ckpt["networks"]["G"][k])]
    assert moved, "resuming trained nothing"
    photo = tmp_path / "face.png"
    Image.fromarray(np.full((20, 20, 3), 128, np.uint8)).save(photo)
    res = CliRunner().invoke(cli, ["translate", f"checkpoint={old}", f"input={photo}", "target=happy,sad",
                                   f"out={tmp_path / 'out'}"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["face_happy.png", "face_sad.png"]


# ------------------------------------------------------------------------------------------ bad image files
def bad_images(folder: Path) -> dict[str, Path]:
    """One file of each kind a user's folder may hold; the keys say what it is."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    out = {}
    (folder / "zero.png").write_bytes(b"")
    out["zero-byte"] = folder / "zero.png"
    Image.fromarray(face).save(folder / "full.png")
    data = (folder / "full.png").read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    out["truncated png"] = folder / "truncated.png"
    Image.fromarray(face).save(folder / "full.jpg", quality=95)
    data = (folder / "full.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    out["truncated jpeg"] = folder / "truncated.jpg"
    (folder / "notes.jpg").write_text("these are my notes, not a picture\n")
    out["not an image"] = folder / "notes.jpg"
    Image.fromarray(face[:1, :1]).save(folder / "dot.png")
    out["1x1 px"] = folder / "dot.png"
    Image.new("1", (20000, 10000)).save(folder / "bomb.png")  # 200 megapixels of zero bits, a few kB on disk
    out["decompression bomb"] = folder / "bomb.png"
    return out


GOOD_KINDS = ("palette", "grey", "rgba", "cmyk", "16-bit grey", "16-bit rgb", "exif-rotated")


def good_images(folder: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """Files that must be read correctly, with the RGB pixels each must give."""
    folder.mkdir(parents=True, exist_ok=True)
    grey = np.tile(np.arange(0, 240, 6, dtype=np.uint8), (40, 1))  # 40 x 40, 0..234
    rgb = np.stack([grey, grey[::-1], grey.T], -1)
    out = {}
    Image.fromarray(rgb).quantize(16).save(folder / "palette.png")
    out["palette"] = (folder / "palette.png", np.asarray(Image.open(folder / "palette.png").convert("RGB")))
    Image.fromarray(grey).save(folder / "grey.png")
    out["grey"] = (folder / "grey.png", np.repeat(grey[..., None], 3, 2))
    Image.fromarray(np.dstack([rgb, np.full((40, 40), 77, np.uint8)])).save(folder / "rgba.png")
    out["rgba"] = (folder / "rgba.png", rgb)
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg", quality=100)
    out["cmyk"] = (folder / "cmyk.jpg", rgb)
    Image.fromarray(grey.astype(np.uint16) * 257).save(folder / "grey16.png")  # 16-bit, full range
    out["16-bit grey"] = (folder / "grey16.png", np.repeat(grey[..., None], 3, 2))
    write_png16(folder / "rgb16.png", rgb.astype(np.uint16) * 257)
    out["16-bit rgb"] = (folder / "rgb16.png", rgb)
    rotated = Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1)))  # stored turned; EXIF 6 says turn it back
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated.save(folder / "exif.jpg", quality=100, exif=exif)
    out["exif-rotated"] = (folder / "exif.jpg", rgb)
    return out


def write_png16(path: Path, arr: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one), chunk by chunk."""
    import struct
    import zlib

    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


REFUSALS = {"zero-byte": "empty file (0 bytes)", "truncated png": "truncated or corrupt image",
            "truncated jpeg": "truncated or corrupt image", "not an image": "not an image that can be read",
            "1x1 px": "image of 1x1 px is too small", "decompression bomb": "possible decompression bomb"}


def test_each_bad_image_kind_is_refused_by_name_and_each_odd_one_is_read_right(tmp_path):
    for kind, path in bad_images(tmp_path / "bad").items():
        with pytest.raises(StarbenchError) as caught:
            read_rgb(path)
        assert str(caught.value).startswith(f"{path}: {REFUSALS[kind]}"), (kind, str(caught.value))
        assert "\n" not in str(caught.value), kind
    for kind, (path, expected) in good_images(tmp_path / "good").items():
        decoded = read_rgb(path)
        got = np.asarray(decoded.image)
        assert decoded.image.mode == "RGB" and got.shape == expected.shape, kind
        tolerance = 6 if path.suffix == ".jpg" else 0  # JPEG is lossy even at quality 100
        assert np.abs(got.astype(int) - expected.astype(int)).mean() <= max(tolerance, 0.0) + 1e-9, kind
        assert decoded.notes, f"{kind}: the conversion must be reported"


def test_bad_images_in_every_place_images_are_read(tmp_path, rafd_raw):
    """translate input=, translations=[DIR] and a data folder: one line per bad file, nothing half-written."""
    runner = CliRunner()
    bad = bad_images(tmp_path / "bad")
    # starbench translate: every input is read first; a bad one leaves out/ unwritten
    run = tmp_path / "run"
    Trainer(resolve(TINY + ["train.steps=2"]), run).fit()
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for kind, (path, _) in good_images(tmp_path / "good").items():
        shutil.copy(path, inputs / path.name)
    res = runner.invoke(cli, ["translate", f"checkpoint={run / 'checkpoint.pt'}", f"input={inputs}", "target=happy",
                              f"out={tmp_path / 'out'}"])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "out").iterdir())) == len(GOOD_KINDS)
    assert "note: input 1 image: EXIF orientation applied" in res.output
    shutil.copy(bad["truncated jpeg"], inputs / "zz_truncated.jpg")
    res = runner.invoke(cli, ["translate", f"checkpoint={run / 'checkpoint.pt'}", f"input={inputs}", "target=happy",
                              f"out={tmp_path / 'out2'}"])
    assert res.exit_code == 2 and "zz_truncated.jpg: truncated or corrupt image" in res.output, res.output
    assert not (tmp_path / "out2").exists()
    # a data folder: every bad file is listed, one line each, and nothing is cached
    mine = tmp_path / "mine"
    for domain, expression in (("calm", "neutral"), ("joy", "happy")):
        (mine / domain).mkdir(parents=True)
        for p in sorted(rafd_raw.glob(f"*_{expression}_*.jpg"))[:6]:
            shutil.copy(p, mine / domain / p.name)
    for kind in ("zero-byte", "not an image", "1x1 px"):
        shutil.copy(bad[kind], mine / "joy" / bad[kind].name)
    cached = set(Path(os.environ["STARBENCH_CACHE"]).glob("decoded/*.npy"))
    res = runner.invoke(cli, ["train", "model=stargan", "data=folder", f"data.root={mine}", *TINY, "train.steps=1",
                              f"run_dir={tmp_path / 'runs'}"])
    assert res.exit_code == 2, res.output
    assert "3 image(s) of folder" in res.output
    for kind in ("zero-byte", "not an image", "1x1 px"):
        assert f"{mine / 'joy' / bad[kind].name}: {REFUSALS[kind]}" in res.output
    assert not (tmp_path / "runs").exists()
    assert set(Path(os.environ["STARBENCH_CACHE"]).glob("decoded/*.npy")) == cached


def test_a_bad_translation_is_refused_before_anything_is_trained(tmp_path):
    base = TINY + [f"run_dir={tmp_path / 'runs'}", f"results_dir={tmp_path / 'results'}", "fid.download=false",
                   "classifier.epochs=1"]
    task = tmp_path / "task"
    assert CliRunner().invoke(cli, ["export", "protocol=rafd_expression", f"out={task}", *base]).exit_code == 0
    rows = [line.split(",") for line in (task / "tasks.csv").read_text().splitlines()[1:]]
    mine = tmp_path / "mine"
    mine.mkdir()
    for row in rows:  # the "unchanged inputs" translations, one PNG per row
        shutil.copy(task / "inputs" / f"{Path(row[0]).stem}.png", mine / row[4])
    cfg = resolve(base + ["protocol=rafd_expression", "models=[]", f"translations=[{mine}]"])
    PROTOCOLS.get("rafd_expression")(cfg)
    table = tmp_path / "results" / "rafd_expression" / "table3.csv"
    before = table.read_bytes()
    victim = mine / rows[3][4]
    victim.write_bytes(victim.read_bytes()[: len(victim.read_bytes()) // 2])
    cfg = resolve(base + ["protocol=rafd_expression", "models=[stargan]", f"translations=[{mine}]"])
    with pytest.raises(StarbenchError, match=rf"1 image\(s\) cannot be used:\n  {re.escape(str(victim))}: truncated"):
        PROTOCOLS.get("rafd_expression")(cfg)
    assert table.read_bytes() == before
    assert not (tmp_path / "runs" / "models").exists() or not any((tmp_path / "runs" / "models").glob("stargan-*"))


# ------------------------------------------------------------------------------------------ full disk, hard kills
def test_a_full_disk_leaves_the_previous_checkpoint_and_results_intact(tmp_path, monkeypatch):
    run = tmp_path / "run"
    Trainer(resolve(TINY + ["train.steps=2"]), run).fit()
    before = (run / "checkpoint.pt").read_bytes()

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("starbench.files.torch.save", full_disk)
    with pytest.raises(StarbenchError, match=rf"^no space left on {run} while writing checkpoint.pt; the previous "
                                             r"checkpoint.pt, if any, is unchanged"):
        Trainer(resolve(TINY + ["train.steps=4"]), run).fit()
    assert (run / "checkpoint.pt").read_bytes() == before
    assert not list(run.glob(".*tmp")) and not (run / "checkpoint.prev.pt").exists()
    monkeypatch.undo()
    # results: `starbench tables` re-renders into a new folder; a full disk there leaves results/ as they were
    results = tmp_path / "results" / "params"
    res = CliRunner().invoke(cli, ["run", "protocol=params", f"results_dir={tmp_path / 'results'}"])
    assert res.exit_code == 0, res.output
    files = {p.name: p.read_bytes() for p in results.iterdir()}

    def full_csv(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("pandas.DataFrame.to_csv", full_csv)
    res = CliRunner().invoke(cli, ["tables", "protocol=params", f"results_dir={tmp_path / 'results'}"])
    assert res.exit_code == 2
    assert f"error: no space left on {tmp_path / 'results'} while writing the results of params" in res.output
    assert {p.name: p.read_bytes() for p in results.iterdir()} == files
    assert [p.name for p in (tmp_path / "results").iterdir() if p.name.startswith(".params.")] == [".params.lock"]


KILLER = textwrap.dedent("""
    import importlib, os, signal, sys
    where, target, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])  # e.g. os.replace checkpoint.pt 2
    module, name = where.rsplit(".", 1)
    module = importlib.import_module(module)
    real, seen = getattr(module, name), []
    def hooked(src, dst, *a, **k):
        if os.path.basename(str(dst)) == target:
            seen.append(dst)
            if len(seen) == nth:  # the file is whole under its temporary name (or half copied): die here
                os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst, *a, **k)
    setattr(module, name, hooked)
    from starbench.cli import main
    sys.argv = ["starbench"] + sys.argv[4:]
    main()
""")


def test_kill_between_the_checkpoint_write_and_its_rename_resumes_bit_exactly(tmp_path, isolated_cache):
    schedule = TINY + ["train.steps=12", "train.checkpoint_every=4", "train.log_every=2"]
    env = dict(os.environ, STARBENCH_CACHE=str(isolated_cache))
    run = tmp_path / "run"
    args = ["train", *schedule, f"run_dir={run}"]
    killed = subprocess.run([sys.executable, "-c", KILLER, "os.replace", "checkpoint.pt", "2", *args], env=env,
                            capture_output=True, text=True, timeout=240)
    assert killed.returncode == -9, killed.stderr
    assert read_checkpoint(run / "checkpoint.pt")["step"] == 4  # the step-8 one never got its name
    assert list(run.glob(".checkpoint.pt.*.tmp"))  # ... but was written whole under its temporary name
    again = subprocess.run([sys.executable, "-m", "starbench", *args], env=env, capture_output=True, text=True,
                           timeout=240)
    assert again.returncode == 0, again.stderr
    assert not list(run.glob(".*.tmp"))
    steps = [json.loads(line)["step"] for line in (run / "losses.jsonl").read_text().splitlines()]
    assert steps == list(range(2, 13, 2))
    straight = Trainer(resolve(schedule), tmp_path / "straight").fit()
    final = read_checkpoint(run / "checkpoint.pt")["networks"]
    for name, net in straight.model.networks().items():
        for key, value in net.state_dict().items():
            assert torch.equal(final[name][key], value), f"{name}.{key}"


def test_kill_while_results_are_written_leaves_the_previous_results(tmp_path, isolated_cache):
    """`starbench tables` writes a protocol's folder anew, like a run's report step: killed half-way, it leaves the
    previous folder as it was; the next command cleans up after it and is not blocked by any lock."""
    env = dict(os.environ, STARBENCH_CACHE=str(isolated_cache))
    results = tmp_path / "results"
    first = CliRunner().invoke(cli, ["run", "protocol=params", f"results_dir={results}"])
    assert first.exit_code == 0, first.output
    files = {p.name: p.read_bytes() for p in (results / "params").iterdir()}
    args = ["tables", "protocol=params", f"results_dir={results}"]
    killed = subprocess.run([sys.executable, "-c", KILLER, "shutil.copy2", "record.json", "1", *args], env=env,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    assert {p.name: p.read_bytes() for p in (results / "params").iterdir()} == files
    assert [p.name for p in results.iterdir() if ".tmp-" in p.name]  # the killed run's half-written folder
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in results.iterdir()) == [".params.lock", "params"]
    assert {p.name: p.read_bytes() for p in (results / "params").iterdir()} == files


def test_save_torch_round_trip_refuses_nothing_of_its_own(tmp_path):
    """What starbench writes loads back as data only, including numpy's RNG state from old files."""
    path = tmp_path / "x.pt"
    save_torch(path, {"a": torch.arange(3), "b": [1, 2.5, "c", None], "old_rng": np.random.get_state()})
    back = load_torch(path)
    assert torch.equal(back["a"], torch.arange(3)) and back["b"] == [1, 2.5, "c", None]
    assert isinstance(back["old_rng"][1], np.ndarray)
