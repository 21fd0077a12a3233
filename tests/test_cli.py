import subprocess
import sys

from click.testing import CliRunner

from starbench.cli import cli
from starbench.registry import PROTOCOLS


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_list_shows_registries():
    res = run("list")
    assert res.exit_code == 0
    for word in ("models", "protocols", "datasets", "rafd", "celeba", "folder"):
        assert word in res.output


def test_errors_exit_2_without_traceback():
    res = run("run", "protocol=nope", "data.imagesize=3")
    assert res.exit_code == 2 and "data.image_size" in res.output and "Traceback" not in res.output
    res = run("run", "data.image_size=big")
    assert res.exit_code == 2 and "'data.image_size'" in res.output and "int" in res.output


def test_debug_shows_the_traceback():
    proc = subprocess.run([sys.executable, "-m", "starbench", "--debug", "run", "protocol=nope"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "StarbenchError" in proc.stderr
    res = run("run", "protocol=nope")  # without --debug: one line, no traceback (in process: a start costs ~10 s)
    assert res.exit_code == 2 and "Traceback" not in res.output and "unknown protocol 'nope'" in res.output


def test_dry_run_prints_resolved_config():
    calls = []
    PROTOCOLS.register("echo", lambda cfg: calls.append(cfg), "test protocol")
    try:
        res = run("run", "protocol=echo", "scale=smoke", "seed=5", "--dry-run")
        assert res.exit_code == 0, res.output
        assert "seed: 5" in res.output and "image_size: 32" in res.output and "would run protocol 'echo'" in res.output
        assert calls == []
        res = run("run", "protocol=echo", "seed=6")
        assert res.exit_code == 0 and calls[0].seed == 6
    finally:
        PROTOCOLS._entries.pop("echo")


def test_data_synth_and_info(tmp_path):
    res = run("data", "synth", f"out={tmp_path}", "subjects=2", "size=32", "celeba=12", "layout=split")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "RaFD" / "train" / "happy").is_dir() and (tmp_path / "CelebA" / "list_attr_celeba.txt").is_file()
    res = run("data", "info", "data=rafd", f"data.root={tmp_path / 'RaFD'}")
    assert res.exit_code == 0, res.output
    assert "surprised" in res.output and "every file was usable" in res.output
    res = run("data", "info", "data=celeba", f"data.root={tmp_path / 'CelebA'}")
    assert res.exit_code == 0 and "Blond_Hair" in res.output and "multilabel" in res.output
    res = run("data", "synth", f"out={tmp_path}", "subject=2")
    assert res.exit_code == 2 and "unknown key 'subject'" in res.output


def test_data_info_lists_unusable_files(rafd_raw, tmp_path):
    (rafd_raw / "notes_final.jpg").write_bytes(b"")
    cache = f"cache_dir={tmp_path / 'cache'}"
    res = run("data", "info", "data=rafd", f"data.root={rafd_raw}", cache)
    assert res.exit_code == 1  # a script can tell that the dataset has unusable files
    assert "1 file(s) could not be used" in res.output and "notes_final.jpg" in res.output
    # A file whose name the loader takes but whose bytes are no image: only decoding finds it, and nothing is cached.
    decoded = set((tmp_path / "cache" / "decoded").glob("*.npy"))  # the usable images, decoded as a run would
    assert len(decoded) == 1
    named = sorted(rafd_raw.glob("Rafd*_happy_frontal.jpg"))[0]
    named.write_bytes(b"not a JPEG")
    res = run("data", "info", "data=rafd", f"data.root={rafd_raw}", cache)
    assert res.exit_code == 1 and "2 file(s) could not be used" in res.output, res.output
    assert named.name in res.output and "not an image that can be read" in res.output
    assert set((tmp_path / "cache" / "decoded").glob("*.npy")) == decoded  # nothing cached from the damaged set


def test_tables_without_records(tmp_path):
    res = run("tables", f"results_dir={tmp_path}")
    assert res.exit_code == 2 and "no run records" in res.output
    res = run("tables", "protocol=params", f"results_dir={tmp_path}")
    assert res.exit_code == 2 and "record.json does not exist" in res.output
