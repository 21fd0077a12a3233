"""Hard kills at random moments: does ``starbench train`` resume to the same weights, bit for bit?

One uninterrupted smoke-size StarGAN run is the reference. Then, ``--trials`` times, the same command is started
in a fresh run folder and killed with SIGKILL at a random moment (during a step, a checkpoint write or a sample
grid: checkpoints and sample grids are frequent here so that kills land in them too), then started again, and
again killed, ``--kills`` times per trial, before it is left to finish. The final checkpoint's networks must equal
the reference's bit for bit. A second part kills ``starbench tables`` (which writes a results folder anew) at random
moments and checks the previous folder is untouched and the next command is not blocked.

Usage:
  python benchmarks/kill_resume.py --trials 10 --kills 3 --out benchmarks/results/kill_resume_cpu.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from starbench.files import load_torch

TINY = ["scale=smoke", "data.synth_subjects=4", "data.synth_size=32", "data.image_size=16", "data.batch_size=4",
        "stargan.g_conv_dim=8", "stargan.d_conv_dim=8", "stargan.g_repeat=1", "stargan.d_repeat=3",
        "train.progress=false", "train.tensorboard=false", "train.steps=300", "train.checkpoint_every=10",
        "train.sample_every=5", "train.log_every=5"]


def train(run: Path, env: dict, kill_after: float | None) -> tuple[int, float]:
    """Start `starbench train` into ``run``; SIGKILL it after ``kill_after`` seconds (None: let it finish)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "starbench", "train", *TINY, f"run_dir={run}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if kill_after is None:
        return proc.wait(), time.perf_counter() - start
    try:
        return proc.wait(timeout=kill_after), time.perf_counter() - start
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        return proc.wait(), time.perf_counter() - start


def weights_digest(checkpoint: Path) -> str:
    ckpt = load_torch(checkpoint, "checkpoint")
    h = hashlib.sha256()
    for net in sorted(ckpt["networks"]):
        for key, value in sorted(ckpt["networks"][net].items()):
            h.update(f"{net}.{key}".encode())
            h.update(value.contiguous().numpy().tobytes())
    return h.hexdigest()


def kill_results(results: Path, env: dict, trials: int, rng: random.Random) -> dict:
    """Kill `starbench tables protocol=params` at random moments; the folder must stay as it was."""
    args = [sys.executable, "-m", "starbench", "tables", "protocol=params", f"results_dir={results}"]
    before = {p.name: p.read_bytes() for p in (results / "params").iterdir()}
    start = time.perf_counter()
    subprocess.run(args, env=env, check=True, capture_output=True)
    full = time.perf_counter() - start
    intact = killed = 0
    for _ in range(trials):
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=rng.uniform(0.3 * full, full))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed += 1
        now = {p.name: p.read_bytes() for p in (results / "params").iterdir()}
        intact += now == before
    after = subprocess.run(args, env=env, capture_output=True, timeout=120)
    return {"trials": trials, "killed": killed, "folder_intact": intact, "next_command_ok": after.returncode == 0,
            "leftovers": sorted(p.name for p in results.iterdir() if p.name not in ("params", ".params.lock"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--kills", type=int, default=3, help="SIGKILLs per trial before it may finish")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="kill_resume_"))
    env = dict(os.environ, STARBENCH_CACHE=str(work / "cache"))
    try:
        code, seconds = train(work / "reference", env, None)
        assert code == 0, "the reference run failed"
        reference = weights_digest(work / "reference" / "checkpoint.pt")
        print(f"reference: {seconds:.1f} s for {TINY[-4]}, torch {torch.__version__}", flush=True)
        rows = []
        for trial in range(args.trials):
            run = work / f"trial{trial}"
            kills = []
            for _ in range(args.kills):
                # kill somewhere in the run (its first seconds are the process start: python and torch imports)
                code, waited = train(run, env, rng.uniform(0.35 * seconds, 0.95 * seconds))
                ckpt = run / "checkpoint.pt"
                step = load_torch(ckpt, "checkpoint")["step"] if ckpt.is_file() else 0
                kills.append({"after_s": round(waited, 2), "exit": code, "checkpoint_step": step,
                              "during_training": code == -9 and step < 300})
            code, _ = train(run, env, None)
            same = code == 0 and weights_digest(run / "checkpoint.pt") == reference
            rows.append({"trial": trial, "kills": kills, "final_exit": code, "bit_exact": same})
            print(f"trial {trial}: kills at {[k['after_s'] for k in kills]} s (checkpoint steps "
                  f"{[k['checkpoint_step'] for k in kills]}), bit-exact: {same}", flush=True)
        results = work / "results"
        subprocess.run([sys.executable, "-m", "starbench", "run", "protocol=params", f"results_dir={results}"],
                       env=env, check=True, capture_output=True)
        tables = kill_results(results, env, args.trials, rng)
        print(f"results folder: {tables}")
        summary = {"torch": torch.__version__, "trials": args.trials, "kills_per_trial": args.kills,
                   "sigkilled": sum(k["exit"] == -9 for r in rows for k in r["kills"]),
                   "during_training": sum(k["during_training"] for r in rows for k in r["kills"]),
                   "bit_exact": sum(r["bit_exact"] for r in rows), "rows": rows, "results_folder": tables}
        print(f"{summary['sigkilled']} SIGKILLs landed ({summary['during_training']} during training); "
              f"{summary['bit_exact']}/{args.trials} trials resumed bit-exactly")
        if args.out:
            Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
