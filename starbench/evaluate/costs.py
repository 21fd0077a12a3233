"""What each training run of a command will cost, measured before it trains, so that ``jobs`` takes the longest first.

Two processes that take a protocol's runs in its own order can end far apart: on RaFD at demo scale the helper
trained IcGAN (900 s) and then CycleGAN (420 s) while the protocol's process, done with its judges, StarGAN and DIAT,
waited some 300 s for it (``benchmarks/results/demo_main_job_cpu_bf16_icgan64.md``). With each run's cost known,
each process takes the costliest run nobody has started (longest processing time first, the classic rule for
sharing jobs between machines).

The estimate is measured, not declared: a run's Trainer is set up as for training and a few steps are timed at the
thread count the run will train with (``Trainer.time_steps``); the estimate is the mean step time times the steps
left (0 for a finished run). Setup is left out: data decoding is shared, and what a model prepares (DIAT's identity
network) the probe leaves in the cache for the run itself. Seeds of one configuration cost the same, so one probe
serves them all. The probe runs in a process of its own (a Trainer seeds the global random generators), at a helper's
thread count, while the protocol's process trains its judges.
"""
from __future__ import annotations

import tempfile
from typing import Any

from omegaconf import OmegaConf

from starbench.evaluate.runs import run_folder, run_key
from starbench.train.checkpoint import read_latest
from starbench.train.trainer import Trainer, steps_of

PROBE_STEPS = 10  # timed steps at most: two of StarGAN's n_critic = 5 cycles, so its generator updates are in
PROBE_SECONDS = 2.0  # ... or this long (at least two steps): CycleGAN's steps take 1.6 s at demo scale on 2 cores


def steps_done(cfg: Any, model: str, fp: str) -> int:
    """The step the run's checkpoint reached (0: none yet)."""
    found = read_latest(run_folder(cfg, model, fp))
    return int(found[0]["step"]) if found else 0


def probe_key(cfg: Any, model: str, fp: str) -> str:
    """The run key with the seed left out: runs that differ only in their seed cost the same."""
    return run_key(OmegaConf.merge(cfg, {"seed": 0}), model, fp)


def estimate_seconds(runs: list[tuple[Any, str, str]]) -> list[float]:
    """Per run ``(cfg, model, data fingerprint)``: the seconds of training it has left, on this process's threads."""
    per_step: dict[str, tuple[float, int]] = {}
    out = []
    for cfg, model, fp in runs:
        done = steps_done(cfg, model, fp)
        if not cfg.train.epochs and done >= steps_of(cfg, model):  # finished: nothing to time
            out.append(0.0)
            continue
        key = probe_key(cfg, model, fp)
        if key not in per_step:
            mcfg = OmegaConf.merge(cfg, {"model": model})
            with tempfile.TemporaryDirectory(prefix="starbench-probe-") as folder:
                times = Trainer(mcfg, folder, show_progress=False).time_steps(PROBE_STEPS, PROBE_SECONDS)
            per_step[key] = (times.per_step, times.total_steps)
        seconds, total = per_step[key]
        out.append(seconds * max(0, total - done))
    return out
