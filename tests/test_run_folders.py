"""Run folders that cannot be corrupted: the lock, the divergence guard, the previous checkpoint, clean results."""
import json
import math
import os
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from filelock import FileLock

from starbench import locks
from starbench.cli import cli
from starbench.config import resolve
from starbench.errors import StarbenchError
from starbench.locks import exclusive
from starbench.progress import console
from starbench.registry import PROTOCOLS
from starbench.train.checkpoint import read_checkpoint
from starbench.train.trainer import Diverged, Trainer

TINY = ["scale=smoke", "data.synth_subjects=4", "data.synth_size=32", "data.image_size=16", "data.batch_size=4",
        "stargan.g_conv_dim=8", "stargan.d_conv_dim=8", "stargan.g_repeat=1", "stargan.d_repeat=3",
        "train.progress=false", "train.tensorboard=false"]
DIVERGE = ["stargan.g_lr=1000", "stargan.d_lr=1000"]


def weights(model):
    return {f"{n}.{k}": v.clone() for n, net in model.networks().items() for k, v in net.state_dict().items()}


def strict_json_lines(path):
    def refuse(name):
        raise ValueError(f"non-JSON constant {name}")
    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def test_two_trainers_on_one_folder_take_turns(tmp_path, isolated_cache):
    run = tmp_path / "run"
    schedule = ["train.steps=300", "train.log_every=5", "train.checkpoint_every=50", "train.sample_every=100"]
    args = [sys.executable, "-m", "starbench", "train", *TINY, *schedule, f"run_dir={run}"]
    env = dict(os.environ, STARBENCH_CACHE=str(isolated_cache))
    Trainer(resolve(TINY + ["train.steps=1"]), tmp_path / "warm").fit()  # data cached: both start as fast
    procs = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    waited = [i for i, out in enumerate(outs) if f"waiting for run folder {run}: in use by process" in out]
    assert len(waited) == 1, outs
    other = procs[1 - waited[0]]
    assert f"in use by process {other.pid} on " in outs[waited[0]]
    assert "already holds a finished run" in outs[waited[0]] and "trained stargan for 300 steps" in outs[1 - waited[0]]
    steps = [r["step"] for r in strict_json_lines(run / "losses.jsonl")]
    assert steps == list(range(5, 301, 5))
    single = Trainer(resolve(TINY + schedule), tmp_path / "single").fit()
    final = read_checkpoint(run / "checkpoint.pt")["networks"]
    for key, value in weights(single.model).items():
        net, name = key.split(".", 1)
        assert torch.equal(final[net][name], value), key


def test_lock_held_past_the_timeout(tmp_path):
    run = tmp_path / "run"
    with exclusive(run / ".lock", "test"):
        with pytest.raises(StarbenchError, match=rf"run folder {run} is still in use by process {os.getpid()} on .* "
                                                 r"after waiting 0.3 s \(train.lock_timeout\)"):
            Trainer(resolve(TINY + ["train.steps=4", "train.lock_timeout=0.3"]), run).fit()
    assert not (run / "checkpoint.pt").exists()


def test_held_glances_at_a_lock_without_taking_or_failing_on_it(tmp_path, monkeypatch):
    """``locks.held`` tells a run folder another process trains in from a free one; a lock file this process may not
    open (a finished run on read-only storage; root opens any file, so the refusal is the OS's answer, simulated)
    counts as free rather than stopping the protocol that glanced at it."""
    lock = tmp_path / "run" / ".lock"
    assert not locks.held(lock)  # no lock file: nothing trains there
    lock.parent.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom filelock import FileLock\n"
                              f"l = FileLock({str(lock)!r}); l.acquire(); print('held', flush=True); time.sleep(60)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        assert locks.held(lock)
    finally:
        other.kill()
        other.wait()
    assert not locks.held(lock)  # let go: free, and the glance left it free
    with exclusive(lock, "test"):
        pass

    class Refused(locks.FileLock):
        def acquire(self, *args, **kwargs):
            raise PermissionError(13, "Permission denied", self.lock_file)

    monkeypatch.setattr(locks, "FileLock", Refused)
    assert not locks.held(lock)


def test_a_waiter_names_a_holder_that_has_only_just_taken_the_lock(tmp_path):
    """The holder writes its name a moment after taking the lock; a process that comes in that moment waits for the
    name rather than printing "another process" (a CI run once caught two trainers in that moment)."""
    lock = tmp_path / "run" / ".lock"
    lock.parent.mkdir()
    taken = threading.Event()

    def take_name_then_finish():  # another thread: filelock refuses a second instance in the same thread
        held = FileLock(str(lock))
        held.acquire()
        taken.set()
        time.sleep(0.3)
        (lock.parent / ".lock.owner").write_text(json.dumps({"pid": 4242, "host": "h", "since": "then"}))
        time.sleep(0.3)
        (lock.parent / ".lock.owner").unlink()
        held.release()

    threading.Thread(target=take_name_then_finish).start()
    assert taken.wait(10)
    with console.capture() as out:
        with exclusive(lock, "run folder x"):
            pass
    assert "waiting for run folder x: in use by process 4242 on h, since then" in out.get()


def test_divergence_stops_keeps_the_last_finite_checkpoint(tmp_path):
    run = tmp_path / "run"
    cfg = resolve(["scale=smoke", "data.synth_subjects=4", "train.progress=false", "train.tensorboard=false", *DIVERGE,
                   "train.steps=40", "train.log_every=1", "train.checkpoint_every=1"])
    with pytest.raises(Diverged, match=r"model stargan diverged at step (\d+): loss \S+ is (nan|inf|-inf); the last "
                                       r"finite checkpoint \(step \d+\)") as caught:
        Trainer(cfg, run).fit()
    info = caught.value.info
    ckpt = read_checkpoint(run / "checkpoint.pt")
    assert ckpt["step"] == info["checkpoint_step"] == info["step"] - 1
    assert all(torch.isfinite(v).all() for net in ckpt["networks"].values() for v in net.values()
               if v.is_floating_point())
    rows = strict_json_lines(run / "losses.jsonl")  # valid JSON: the bad value is null
    assert rows[-1]["step"] == info["step"] and rows[-1][info["loss"]] is None
    # asked again, it does not train into the same NaN: the same error at once
    with pytest.raises(Diverged, match=f"diverged at step {info['step']}"):
        Trainer(cfg, run).fit()
    assert read_checkpoint(run / "checkpoint.pt")["step"] == info["checkpoint_step"]


def test_a_diverged_method_keeps_its_row(tmp_path):
    cfg = resolve(["scale=smoke", "fid.download=false", "train.progress=false", "data.synth_subjects=6",
                   "train.steps=12", "classifier.epochs=1", f"run_dir={tmp_path / 'runs'}",
                   f"results_dir={tmp_path / 'results'}", "models=[stargan,icgan]", *DIVERGE])
    PROTOCOLS.get("rafd_expression")(cfg)
    out = tmp_path / "results" / "rafd_expression"
    table = pd.read_csv(out / "table3.csv", keep_default_na=False).set_index("method")
    star = table.loc["stargan"]
    assert star["classification error % [95% CI]"].startswith("diverged at step ")
    assert star["SSIM"] == "n/a" and star["paper error %"] == "2.12"
    assert table.loc["icgan", "SSIM"] != "n/a" and table.loc["icgan", "McNemar p vs stargan"] == "-"
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["runs"]["stargan"]["diverged"]["loss"] and "diverged" not in prov["runs"]["icgan"]
    assert "stargan diverged at step" in (out / "table3.md").read_text()


def test_truncated_latest_checkpoint_falls_back_to_the_previous(tmp_path, capsys):
    cfg = resolve(TINY + ["train.steps=12", "train.checkpoint_every=3", "train.sample_every=0"])
    straight = Trainer(cfg, tmp_path / "a").fit()
    first = Trainer(cfg, tmp_path / "b").fit(until=6)
    latest, previous = tmp_path / "b" / "checkpoint.pt", tmp_path / "b" / "checkpoint.prev.pt"
    assert read_checkpoint(latest)["step"] == 6 and read_checkpoint(previous)["step"] == 3 and first.interrupted
    latest.write_bytes(latest.read_bytes()[:1000])  # cut short
    second = Trainer(cfg, tmp_path / "b").fit()
    err = capsys.readouterr().err
    assert f"checkpoint {latest} cannot be read" in err and f"resuming from the previous checkpoint {previous} " \
                                                            f"(step 3)" in err.replace("\n", " ")
    assert second.step == 12
    wa, wb = weights(straight.model), weights(second.model)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # resuming from step 3 is as exact as from step 6


def test_write_error_while_saving_results_leaves_earlier_results(tmp_path, monkeypatch):
    cfg = resolve(["scale=smoke", "fid.download=false", "train.progress=false", "data.synth_subjects=6",
                   "train.steps=4", "classifier.epochs=1", f"run_dir={tmp_path / 'runs'}",
                   f"results_dir={tmp_path / 'results'}", "models=[stargan]"])
    PROTOCOLS.get("rafd_expression")(cfg)
    out = tmp_path / "results" / "rafd_expression"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    from starbench import report

    def full_disk(df, folder, stem, caption="", notes=()):
        (folder / f"{stem}.csv").write_text("half")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(report, "write_table", full_disk)
    monkeypatch.setattr("starbench.protocols.rafd_expression.write_table", full_disk)
    with pytest.raises(StarbenchError, match=r"^no space left on .*results while writing the results of "
                                             r"rafd_expression; the previous .*rafd_expression is unchanged"):
        PROTOCOLS.get("rafd_expression")(cfg)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in (tmp_path / "results").iterdir() if not p.name.endswith(".lock")] == [
        "rafd_expression"]  # no temporary folder left


def test_protocols_pick_their_data_and_results_name_no_machine_path(tmp_path, isolated_cache):
    assert resolve(["protocol=celeba_attributes"]).data.name == "celeba"
    assert resolve(["protocol=joint_training"]).data.name == "joint"
    assert resolve(["protocol=rafd_expression", "data=rafd"]).data.name == "rafd"
    with pytest.raises(StarbenchError,
                       match=r"protocol celeba_attributes runs on CelebA \(data=celeba\); got data=rafd"):
        resolve(["protocol=celeba_attributes", "data=rafd"])
    res = CliRunner().invoke(cli, ["run", "protocol=celeba_attributes", "scale=smoke", "fid.download=false",
                                   "train.progress=false", "train.steps=2", "classifier.epochs=1",
                                   "models=[stargan]", f"run_dir={tmp_path / 'runs'}",
                                   f"results_dir={tmp_path / 'results'}"])
    assert res.exit_code == 0, res.output
    for path in (tmp_path / "results" / "celeba_attributes").iterdir():
        if path.suffix in (".md", ".json", ".csv", ".tex"):
            assert str(isolated_cache) not in path.read_text(), path.name
    assert "data: synthetic CelebA (starbench synth v2: 300 images, seed 0)" in \
        (tmp_path / "results" / "celeba_attributes" / "table1.md").read_text()


def test_data_info_exit_status(celeba, tmp_path):
    assert CliRunner().invoke(cli, ["data", "info", "data=celeba", f"data.root={celeba}"]).exit_code == 0
    path = celeba / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[7] = " ".join(lines[7].split()[:12])
    path.write_text("\n".join(lines) + "\n")
    res = CliRunner().invoke(cli, ["data", "info", "data=celeba", f"data.root={celeba}"])
    assert res.exit_code == 1 and "list_attr_celeba.txt, line 8" in res.output
    res = CliRunner().invoke(cli, ["data", "info", "data=celeba", f"data.root={tmp_path / 'none'}"])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_tensorboard_events_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = resolve([t for t in TINY if not t.startswith("train.tensorboard")]
                  + ["train.steps=10", "train.log_every=5", "train.sample_every=5"])
    Trainer(cfg, tmp_path / "run").fit()
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert {"loss/D/real", "loss/G/rec", "train/lr_factor", "train/it_per_s"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("loss/D/real")] == [5, 10]
    logged = [json.loads(line) for line in (tmp_path / "run" / "losses.jsonl").read_text().splitlines()]
    assert [round(e.value, 4) for e in events.Scalars("loss/D/real")] == [round(r["D/real"], 4) for r in logged]
    assert [e.step for e in events.Images("samples")] == [5, 10]
    assert math.isclose(events.Scalars("train/lr_factor")[0].value, logged[0]["lr_factor"], rel_tol=1e-6)
