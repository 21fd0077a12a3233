"""The Trainer: outputs of a run, exact resume, interrupt and continue, torchrun on gloo, translate."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from starbench import devices
from starbench.cli import cli
from starbench.config import resolve
from starbench.errors import StarbenchError
from starbench.train import speed
from starbench.train.checkpoint import read_checkpoint
from starbench.train.trainer import Trainer

TINY = ["scale=smoke", "data.synth_subjects=4", "data.synth_size=32", "data.image_size=16", "data.batch_size=4",
        "stargan.g_conv_dim=8", "stargan.d_conv_dim=8", "stargan.g_repeat=1", "stargan.d_repeat=3",
        "train.progress=false"]


def weights(model):
    return {f"{n}.{k}": v.clone() for n, net in model.networks().items() for k, v in net.state_dict().items()}


def test_run_leaves_checkpoint_log_and_samples(tmp_path):
    cfg = resolve(TINY + ["train.steps=10", "train.log_every=5", "train.sample_every=5", "train.checkpoint_every=5"])
    res = Trainer(cfg, tmp_path / "run").fit()
    assert res.step == 10 and not res.interrupted
    ckpt = read_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ckpt["step"] == 10 and ckpt["model"] == "stargan" and set(ckpt["networks"]) == {"G", "D"}
    rows = [json.loads(line) for line in (tmp_path / "run" / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5, 10] and "G/rec" in rows[0] and rows[-1]["lr_factor"] < 1
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == ["step_0000005.png", "step_0000010.png"]
    from PIL import Image
    w, h = Image.open(tmp_path / "run" / "samples" / "step_0000010.png").size
    assert w == 9 * 18 and h == 4 * 18  # input + 8 expressions per row, 4 test images


def test_exact_resume_is_bit_identical(tmp_path):
    cfg = resolve(TINY + ["train.steps=12", "train.checkpoint_every=100", "train.sample_every=4"])
    straight = Trainer(cfg, tmp_path / "a").fit()
    first = Trainer(cfg, tmp_path / "b").fit(until=6)
    assert first.interrupted and first.step == 6 and read_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == 6
    second = Trainer(cfg, tmp_path / "b").fit()
    assert second.step == 12
    wa, wb = weights(straight.model), weights(second.model)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    # the loss log holds each step once
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "losses.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))
    # resume=false starts over
    again = Trainer(resolve(TINY + ["train.steps=2", "train.resume=false"]), tmp_path / "b").fit()
    assert again.step == 2


@pytest.mark.parametrize("model", ["stargan", "cyclegan"])
def test_a_kept_file_holds_the_translating_networks_of_its_step_and_cannot_resume(tmp_path, model):
    """A learning curve's kept file holds the networks ``translate`` uses (and their weight average), not the
    critics or optimiser state: it loads to the very translating weights the checkpoint of the same step gives, at
    a fraction of its size, and is refused, with why, as a checkpoint to resume from."""
    import shutil

    import starbench

    extra = ["cyclegan.g_conv_dim=8", "cyclegan.d_conv_dim=8", "cyclegan.g_blocks=1"] if model == "cyclegan" else []
    cfg = resolve(TINY + extra + [f"model={model}", "train.steps=8", "train.keep_every=4", "train.checkpoint_every=4",
                                  "train.sample_every=0", "train.ema_window=0.5"])
    trained = Trainer(cfg, tmp_path / "run").fit()
    kept, full = tmp_path / "run" / "kept" / "step_0000004.pt", tmp_path / "run" / "checkpoint.prev.pt"
    k, c = read_checkpoint(kept), read_checkpoint(full)
    assert k["step"] == c["step"] == 4
    translating = set(trained.model.averaged_networks())
    assert set(k["networks"]) == translating and translating < set(c["networks"])  # the critics left out
    assert "optimizers" not in k and kept.stat().st_size < full.stat().st_size
    from_kept, from_full = starbench.load_translator(kept).model, starbench.load_translator(full).model
    for name in sorted(translating):  # the weight average of step 4, loaded from either file
        for key, value in from_full.networks()[name].state_dict().items():
            assert torch.equal(value, from_kept.networks()[name].state_dict()[key]), (name, key)
    (tmp_path / "other").mkdir()
    shutil.copy(kept, tmp_path / "other" / "checkpoint.pt")
    with pytest.raises(StarbenchError, match="kept network file.*cannot resume"):
        Trainer(cfg, tmp_path / "other").fit()


def test_weight_average_is_kept_resumed_exactly_and_used_to_translate(tmp_path):
    """train.ema_window keeps an average of the translating networks beside them: it never changes the trained
    weights, survives an interrupt bit for bit, and is what a protocol translates with unless generator_weights=last."""
    import starbench
    from starbench.evaluate.runs import train_method

    base = TINY + ["train.steps=12", "train.checkpoint_every=100", "train.sample_every=0"]
    plain = Trainer(resolve(base), tmp_path / "plain").fit()
    cfg = resolve(base + ["train.ema_window=0.5"])
    straight = Trainer(cfg, tmp_path / "a").fit()
    assert straight.average is not None and set(straight.average["networks"]) == {"G"}  # not the critic
    assert straight.average["decay"] == pytest.approx(1 - 1 / 6)
    for k, v in weights(plain.model).items():  # the average never feeds back into training
        assert torch.equal(v, weights(straight.model)[k]), k
    Trainer(cfg, tmp_path / "b").fit(until=5)
    resumed = Trainer(cfg, tmp_path / "b").fit()
    for name, state in straight.average["networks"].items():
        for k, v in state.items():
            assert torch.equal(v, resumed.average["networks"][name][k]), k
    last_g = straight.model.G.state_dict()
    assert any(not torch.equal(v, last_g[k]) for k, v in straight.average["networks"]["G"].items()
               if v.is_floating_point())
    # evaluation: the average by default, the last weights on request; a loaded checkpoint the same way
    from starbench.data import load_data
    from starbench.evaluate.runs import data_fingerprint
    fp = data_fingerprint(load_data(cfg, show_progress=False))
    averaged, _, info = train_method(resolve(base + ["train.ema_window=0.5", f"run_dir={tmp_path / 'runs'}"]),
                                     "stargan", fp, False)
    assert info["weights"].startswith("average over the last 50% of steps")
    last, _, info = train_method(resolve(base + ["train.ema_window=0.5", f"run_dir={tmp_path / 'runs'}",
                                                 "generator_weights=last"]), "stargan", fp, False)
    assert info["weights"] == "last" and info["reused"]
    assert not torch.equal(averaged.G.main[0].weight, last.G.main[0].weight)
    loaded = starbench.load_translator(tmp_path / "a" / "checkpoint.pt")
    assert torch.equal(loaded.model.G.main[0].weight, averaged.G.main[0].weight)


def test_checkpoint_of_another_model_in_run_dir(tmp_path):
    cfg = resolve(TINY + ["train.steps=2"])
    Trainer(cfg, tmp_path / "r").fit()
    ckpt = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=False)
    ckpt["model"] = "cyclegan"
    torch.save(ckpt, tmp_path / "r" / "checkpoint.pt")
    with pytest.raises(StarbenchError, match="checkpoint of model 'cyclegan', not 'stargan'"):
        Trainer(cfg, tmp_path / "r").fit()


def _cli_env(cache):
    env = dict(os.environ, STARBENCH_CACHE=str(cache))
    env.pop("WORLD_SIZE", None)
    return env


def test_ctrl_c_saves_and_rerun_continues(tmp_path, isolated_cache):
    args = [sys.executable, "-m", "starbench", "train", *TINY, "train.steps=100000", "train.checkpoint_every=100000",
            f"run_dir={tmp_path / 'run'}"]
    proc = subprocess.Popen(args, env=_cli_env(isolated_cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    log = tmp_path / "run" / "losses.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (log.exists() and log.stat().st_size > 0):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted at step" in err
    step = read_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"]
    assert step > 0
    # the same command continues from there (with a shorter schedule so that it ends)
    res = Trainer(resolve(TINY + ["train.steps=100000", "train.checkpoint_every=100000"]),
                  tmp_path / "run").fit(until=step + 3)
    assert res.step == step + 3


def test_torchrun_two_processes_keep_identical_weights(tmp_path, isolated_cache):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533", "-m",
           "starbench",
           "train", *TINY, "train.steps=6", "train.checkpoint_every=100", "train.sample_every=0", f"run_dir={run}",
           "device=cpu"]
    env = _cli_env(isolated_cache)
    env["STARBENCH_DUMP_RANK_WEIGHTS"] = str(tmp_path / "weights")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dumps = sorted((tmp_path / "weights").glob("rank*.pt"))
    assert len(dumps) == 2
    w0, w1 = (torch.load(p) for p in dumps)
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    assert list(run.glob("*.pt")) == [run / "checkpoint.pt"]  # only rank 0 writes
    # and the weights moved from their initial values: the ranks trained, not just agreed
    init = Trainer(resolve(TINY + ["train.steps=1"]), tmp_path / "x")
    init._setup()
    assert any(not torch.equal(v, w0[k]) for k, v in weights(init.model).items())


def test_translate_command(tmp_path):
    cfg = resolve(TINY + ["train.steps=2"])
    Trainer(cfg, tmp_path / "run").fit()
    from starbench.data import load_index
    neutral = next(r.path for r in load_index(cfg).records if r.meta["expression"] == "neutral")
    runner = CliRunner()
    res = runner.invoke(cli, ["translate", f"checkpoint={tmp_path / 'run' / 'checkpoint.pt'}", f"input={neutral}",
                              "target=happy,surprised", f"out={tmp_path / 'out'}"])
    assert res.exit_code == 0, res.output
    outs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert outs == [Path(neutral).stem + "_happy.png", Path(neutral).stem + "_surprised.png"]
    from PIL import Image
    assert Image.open(tmp_path / "out" / outs[0]).size == (16, 16)
    res = runner.invoke(cli, ["translate", f"checkpoint={tmp_path / 'run' / 'checkpoint.pt'}", f"input={neutral}",
                              "target=bored", f"out={tmp_path / 'out'}"])
    assert res.exit_code == 2 and "valid targets: angry" in res.output
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    res = runner.invoke(cli, ["translate", f"checkpoint={tmp_path / 'junk.pt'}", f"input={neutral}", "target=happy",
                              f"out={tmp_path / 'out'}"])
    assert res.exit_code == 2 and "cannot be read" in res.output
    # a checkpoint whose config says another size: the shape error names network and parameter
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    ckpt["config"]["stargan"]["g_conv_dim"] = 16
    torch.save(ckpt, tmp_path / "other.pt")
    res = runner.invoke(cli, ["translate", f"checkpoint={tmp_path / 'other.pt'}", f"input={neutral}", "target=happy",
                              f"out={tmp_path / 'out'}"])
    assert res.exit_code == 2 and "network G parameter" in res.output


@pytest.mark.parametrize("amx,avx512_bf16,units,label", [
    (True, True, ["AMX", "AVX512-BF16"], "(AMX, AVX512-BF16)"),
    (False, True, ["AVX512-BF16"], "(AVX512-BF16)"),
    (False, False, [], "(no native bf16)"),
])
def test_cpu_kind_decides_the_cpu_path_and_is_named_in_every_label(monkeypatch, amx, avx512_bf16, units, label):
    """The CPU's bf16 units decide whether training runs under bf16 autocast, and every figure's CPU label (the
    provenance's numerical path, the benchmarks) names them: two CPUs with other units give other numbers."""
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    assert devices.cpu_bf16_units() == units
    assert devices.cpu_label() == f"{devices.cpu_name()} {label}"
    cpu = torch.device("cpu")
    assert speed.bf16_autocast(cpu, None) is bool(units)  # the default: bf16 where the CPU has it
    assert speed.bf16_autocast(cpu, False) is False
    path = speed.fast_path(cpu, True, None)  # asked for: fp32 where there is no native bf16, never a traceback
    assert path.autocast_dtype == (torch.bfloat16 if units else None)
