"""The one training loop every model uses.

The Trainer owns data iteration, the learning-rate schedule, mixed precision and channels_last on
CUDA, gradient synchronisation under torchrun, atomic checkpoints (every N steps, at the end and on
Ctrl-C / SIGTERM), exact resume, sample grids, the loss log, the progress bar and seeds. A model
only supplies its networks, optimisers and ``train_step``.

Exact resume: batches are a pure function of the step (``BatchSampler``), and the checkpoint holds
networks, optimisers and every RNG state, so N steps + resume + N steps gives the same weights as
2N steps straight (bit-identical on CPU).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import OmegaConf

from starbench.devices import resolve_device
from starbench.errors import StarbenchError
from starbench.files import remove_stale_temporaries, write_json, write_text
from starbench.locks import exclusive
from starbench.models.base import TranslationModel
from starbench.models.classes import model_class, section_of
from starbench.progress import training_bar
from starbench.train import distributed as dist_util
from starbench.train.averaging import WeightAverage, decay_for
from starbench.train.checkpoint import (
    CHECKPOINT_NAME,
    load_networks,
    read_latest,
    save_checkpoint,
    save_kept,
    set_rng_state,
)
from starbench.train.data_source import TrainingData, to_device
from starbench.train.events import EventLog
from starbench.train.samples import save_grid, translation_grid
from starbench.train.schedule import apply_lr, lr_factor
from starbench.train.speed import fast_path


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_model(name: str, domains: Any, cfg: Any) -> TranslationModel:
    """Instantiate a model by name for ``domains`` (the class comes from the model registry)."""
    return model_class(name)(domains, cfg)


def steps_of(cfg: Any, model: str) -> int:
    """``model``'s training steps: its own (``train.model_steps.<name>``, a model's ``steps`` preset), else
    ``train.steps``."""
    return int(cfg.train.model_steps.get(section_of(model), cfg.train.steps))


def batch_size_of(cfg: Any, model: str) -> int:
    """``model``'s batch size: its own (``train.model_batch_size.<name>``, a model's ``batch_size`` preset), else
    ``data.batch_size``."""
    return int(cfg.train.get("model_batch_size", {}).get(section_of(model), cfg.data.batch_size))


def with_own_batch_size(cfg: Any, model: str) -> Any:
    """``cfg`` with ``data.batch_size`` set to ``model``'s own batch size: what the run trains with, and what its
    checkpoints and run key record (as the same run trained with ``data.batch_size=N``)."""
    batch = batch_size_of(cfg, model)
    return cfg if batch == cfg.data.batch_size else OmegaConf.merge(cfg, {"data": {"batch_size": batch}})


def decay_start_of(cfg: Any, model: str, total: int) -> int:
    """The step where ``model``'s learning rate starts to fall (``total``: never): its own share of ``total``
    (``train.model_decay_from.<name>``, a model's ``decay_from`` preset), else ``train.decay_start``, else the share
    ``train.decay_from`` (the paper's: half)."""
    share = cfg.train.get("model_decay_from", {}).get(section_of(model))
    if share is None and cfg.train.decay_start is not None:
        return int(cfg.train.decay_start)
    return int(float(cfg.train.decay_from if share is None else share) * total + 1e-9)  # 0.5: total // 2


DIVERGED_FILE = "diverged.json"
LOCK_FILE = ".lock"


class Diverged(StarbenchError):
    """Training met a non-finite loss and stopped; the last finite checkpoint is kept."""

    def __init__(self, info: dict[str, Any], run_dir: Path) -> None:
        self.info = info
        kept = (f"the last finite checkpoint (step {info['checkpoint_step']}) in {run_dir} is kept"
                if info.get("checkpoint_step") else f"no checkpoint was written to {run_dir}")
        super().__init__(f"model {info['model']} diverged at step {info['step']}: loss {info['loss']} is "
                         f"{info['value']}; {kept} (lower the learning rates, or train.resume=false to start over)")


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    step: int
    total_steps: int
    interrupted: bool
    seconds: float
    model: TranslationModel
    reused: bool = False  # the run folder already held a finished run: nothing was trained
    train_seconds: float = 0.0  # training-loop wall time over all sessions of this run (from the checkpoint)
    average: Optional[dict[str, Any]] = None  # the weight average's state (train.ema_window), when the run kept one


@dataclass
class StepTimes:
    """What ``Trainer.time_steps`` measured: seconds of setup, of each timed step, and the run's steps in all."""

    setup_seconds: float
    step_seconds: list[float]
    total_steps: int

    @property
    def per_step(self) -> float:
        """The mean over the timed steps: it averages a model's steps of unequal work (StarGAN's generator update
        every ``n_critic`` steps) as the run will."""
        return sum(self.step_seconds) / len(self.step_seconds)


class Trainer:
    """Train ``cfg.model`` on ``cfg.data`` into ``run_dir``."""

    def __init__(self, cfg: Any, run_dir: Path | str, show_progress: Optional[bool] = None) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.show_progress = cfg.train.progress if show_progress is None else show_progress
        self._stop_signal: Optional[int] = None
        self._seconds_before = 0.0
        self._loop_start = time.perf_counter()

    # ------------------------------------------------------------------ setup
    def _setup(self) -> None:
        cfg = self.cfg = with_own_batch_size(self.cfg, self.cfg.model)
        model_class(cfg.model)  # a name or class that cannot be trained fails before any data is read
        gpu = cfg.device != "cpu" and (cfg.device.startswith("cuda") or torch.cuda.is_available())
        dev_type = "cuda" if gpu else "cpu"
        self.dist = dist_util.init_distributed(dev_type)
        self.device = resolve_device(cfg.device, self.dist.local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        seed_everything(cfg.seed)  # same on every rank: identical initial weights
        # Rank 0 generates/decodes the caches first; the others then read them.
        if not self.dist.is_main:
            dist_util.barrier()
        self.data = TrainingData(cfg, self.dist.rank, self.dist.world_size,
                                 show_progress=self.show_progress and self.dist.is_main)
        if self.dist.is_main:
            dist_util.barrier()
        self.model = build_model(cfg.model, self.data.domains, cfg)
        if self.model.pair_requests():
            self.data.use_pairs(self.model.pair_requests(), cfg)
        speed = fast_path(self.device, cfg.train.amp, cfg.train.channels_last)
        self.channels_last = speed.channels_last
        self.model.to(self.device, self.channels_last)
        self.model.autocast_dtype = speed.autocast_dtype
        if self.dist.enabled:
            for net in self.model.networks().values():
                dist_util.broadcast_params(net)
            self.model.grad_sync = dist_util.all_reduce_grads
        for opt in self.model.optimizers().values():  # created after .to(): fused Adam needs them on the device
            for group in opt.param_groups:
                group.setdefault("initial_lr", group["lr"])  # what the schedule scales
        self.model.prepare_training(self.data)
        self.total = (int(round(cfg.train.epochs * self.data.per_epoch)) if cfg.train.epochs
                      else steps_of(cfg, cfg.model))
        self._decay_start = decay_start_of(cfg, cfg.model, self.total)
        self.average: Optional[WeightAverage] = None
        if cfg.train.ema_window:
            nets = self.model.networks()
            self.average = WeightAverage({n: nets[n] for n in self.model.averaged_networks()},
                                         decay_for(cfg.train.ema_window, self.total))
        if self.total < 1:
            raise StarbenchError(f"config key 'train.steps': {self.total} steps; expected at least 1")
        seed_everything(cfg.seed + 1000 * self.dist.rank)  # per-rank randomness from here on

    def _resume(self, found: Optional[tuple[dict[str, Any], Path]]) -> int:
        """Load what ``read_latest`` found (nothing: start at step 0)."""
        if not (self.cfg.train.resume and found):
            return 0
        ckpt, path = found
        if ckpt["model"] != self.cfg.model:
            raise StarbenchError(f"run folder {self.run_dir} holds a checkpoint of model '{ckpt['model']}', not "
                                 f"'{self.cfg.model}'; use another run_dir or resume=false")
        if "optimizers" not in ckpt:  # a kept network file, of this version (translating networks) or before
            raise StarbenchError(f"{path} is a kept network file (networks only, no optimiser state): it translates "
                                 f"but cannot resume training; use another run_dir or train.resume=false")
        load_networks(self.model, ckpt, path)
        for name, opt in self.model.optimizers().items():
            opt.load_state_dict(ckpt["optimizers"][name])
        self.model.load_extra_state(ckpt.get("extra", {}))
        if self.average is not None:
            if "average" not in ckpt:
                raise StarbenchError(f"checkpoint {path} keeps no weight average, but train.ema_window is set: use "
                                     f"another run_dir, or train.resume=false to start over")
            self.average.load(ckpt["average"])
        set_rng_state(ckpt["rng"])
        self._seconds_before = float(ckpt.get("train_seconds", 0.0))
        if self.dist.enabled:  # the saved RNG is rank 0's: keep per-rank streams distinct
            torch.manual_seed(int(torch.randint(0, 2**31, (1,))) + self.dist.rank)
        return int(ckpt["step"])

    # ------------------------------------------------------------------ helpers
    def _log(self, step: int, values: dict[str, float], rate: float, lr: float) -> None:
        """One line of losses.jsonl (strict JSON: a non-finite loss is written as null) and the same scalars
        as TensorBoard events."""
        if not self.dist.is_main:
            return
        row: dict[str, Any] = {"step": step, **{k: round(v, 6) if math.isfinite(v) else None
                                                 for k, v in values.items()},
                               "lr_factor": round(lr, 6), "it_per_s": round(rate, 3)}
        with open(self.run_dir / "losses.jsonl", "a") as f:
            f.write(json.dumps(row, allow_nan=False) + "\n")
        self.events.scalars(step, {**{f"loss/{k}": v for k, v in values.items() if math.isfinite(v)},
                                   "train/lr_factor": lr, "train/it_per_s": rate})

    def _finite(self, step: int, losses: dict[str, Any], rate: float, lr: float) -> dict[str, float]:
        """The losses as floats; at the first non-finite one the run stops (``Diverged``), leaving the last
        finite checkpoint as it is. Called at log and checkpoint steps only: no GPU sync on the other steps."""
        values = {k: float(v) for k, v in losses.items()}
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if not dist_util.any_rank(bool(bad), self.device):  # every rank stops together
            return values
        self._log(step, values, rate, lr)
        info = {"model": self.cfg.model, "step": step, "loss": bad[0] if bad else "(another rank)",
                "value": str(values[bad[0]]) if bad else "nan", "checkpoint_step": self._saved_step,
                "config": self._config_hash()}
        if self.dist.is_main:
            write_json(self.run_dir / DIVERGED_FILE, info)
        raise Diverged(info, self.run_dir)

    def _config_hash(self) -> str:
        return hashlib.sha256(OmegaConf.to_yaml(self.cfg, resolve=True).encode()).hexdigest()[:16]

    def _check_diverged_marker(self, start: int) -> None:
        """A run that diverged before is not trained into the same NaN again (same config, same checkpoint)."""
        marker = self.run_dir / DIVERGED_FILE
        if not marker.is_file():
            return
        try:
            info = json.loads(marker.read_text())
        except ValueError:
            info = {}
        if (self.cfg.train.resume and info.get("config") == self._config_hash()
                and info.get("checkpoint_step") == start):
            raise Diverged(info, self.run_dir)
        if self.dist.is_main:
            marker.unlink()

    def _truncate_log(self, start: int) -> None:
        """The loss log up to the resumed step; a line cut short by a hard kill is dropped with the later ones."""
        path = self.run_dir / "losses.jsonl"
        if not path.exists():
            return
        keep = []
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                break
            if row["step"] > start:
                break
            keep.append(line)
        write_text(path, "".join(line + "\n" for line in keep))

    def _checkpoint(self, step: int) -> None:
        if self.dist.enabled:  # every rank takes part: running statistics are averaged over ranks
            for net in self.model.networks().values():
                dist_util.average_buffers(net)
        self._saved_seconds = round(self._train_seconds(), 2)
        self._saved_step = step
        if self.dist.is_main:
            save_checkpoint(self.run_dir / CHECKPOINT_NAME, self.model, self.cfg.model, self.cfg, step, self.total,
                            self._saved_seconds, self._average_state())

    def _average_state(self) -> Optional[dict[str, Any]]:
        return self.average.state() if self.average is not None else None

    def _train_seconds(self) -> float:
        return self._seconds_before + time.perf_counter() - self._loop_start

    def _samples(self, step: int) -> None:
        if not self.dist.is_main:
            return
        rows: list = []
        for batch in self._fixed:
            rows += translation_grid(self.model, to_device(batch, self.device, self.channels_last), self.device)
        picture = save_grid(self.run_dir / "samples" / f"step_{step:07d}.png", rows)
        self.events.image("samples", step, picture)

    def _dump_rank_weights(self) -> None:
        """Debug aid for distributed runs: STARBENCH_DUMP_RANK_WEIGHTS=DIR saves each rank's weights."""
        folder = os.environ.get("STARBENCH_DUMP_RANK_WEIGHTS")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            state = {f"{n}.{k}": v.detach().cpu() for n, net in self.model.networks().items()
                     for k, v in net.state_dict().items()}
            torch.save(state, Path(folder) / f"rank{self.dist.rank}.pt")

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stop_signal is not None:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self._stop_signal = signum

    def _stop_requested(self, step: int, until: Optional[int]) -> bool:
        """Ctrl-C / SIGTERM on any rank, or the ``until`` step reached before the end."""
        asked = dist_util.any_rank(self._stop_signal is not None, self.device)
        return asked or (until is not None and until <= step < self.total)

    # ------------------------------------------------------------------ a probe
    def time_steps(self, max_steps: int = 10, max_seconds: float = 2.0) -> StepTimes:
        """Set up as ``fit`` does (data, model, the model's ``prepare_training``) and time one warm-up step, then
        steps until ``max_steps`` or ``max_seconds`` (at least two): what a run's step costs on this machine, for a
        scheduler (``evaluate.costs``). Nothing is written to the run folder; caches the setup fills (decoded data,
        DIAT's identity network) are the run's own, found there when it trains."""
        start = time.perf_counter()
        self._setup()
        setup = time.perf_counter() - start
        self._step(0)  # the first step builds the kernels: not a step's cost
        steps: list[float] = []
        began = time.perf_counter()
        while len(steps) < max(2, max_steps) and (len(steps) < 2 or time.perf_counter() - began < max_seconds):
            t = time.perf_counter()
            self._step(len(steps) + 1)
            steps.append(time.perf_counter() - t)
        return StepTimes(setup, steps, self.total)

    # ------------------------------------------------------------------ the loop
    def fit(self, until: Optional[int] = None) -> TrainResult:
        """Train to ``train.steps`` (or stop early after step ``until``, checkpointed, as on Ctrl-C).

        A finished run is only read (no lock: its files are whole). Otherwise the run folder is locked
        for the whole session: a second process waits for it (``train.lock_timeout``) and then
        continues from, or reuses, what the first one left.
        """
        t_start = time.perf_counter()
        self._setup()
        found = read_latest(self.run_dir) if self.cfg.train.resume else None
        if found and found[0]["step"] >= self.total and found[0]["model"] == self.cfg.model:
            step = self._resume(found)
            return TrainResult(self.run_dir, found[1], step, self.total, False, time.perf_counter() - t_start,
                               self.model, reused=True, train_seconds=round(self._seconds_before, 2),
                               average=self._average_state())
        lock = (exclusive(self.run_dir / LOCK_FILE, f"run folder {self.run_dir}", self.cfg.train.lock_timeout)
                if self.dist.is_main else contextlib.nullcontext())
        with lock:
            if self.dist.enabled:
                dist_util.barrier()  # rank 0 holds the lock: now every rank reads the same checkpoint
            return self._train(until, t_start)

    def _train(self, until: Optional[int], t_start: float) -> TrainResult:
        start = self._begin()
        step, interrupted = start, False
        self._losses: dict[str, Any] = {}
        self._rate, self._factor = 0.0, 1.0
        self._loop_start = time.perf_counter()
        self._saved_seconds, self._saved_step = self._seconds_before, start
        self._last_log = (self._loop_start, start)
        try:
            with training_bar(f"train {self.cfg.model}", self.total, start,
                              self.show_progress and self.dist.is_main) as bar:
                while step < self.total:
                    self._losses.update(self._step(step))
                    step += 1
                    self._log_if_due(step, bar)
                    self._checkpoint_if_due(step)
                    self._keep_if_due(step)
                    self._sample_if_due(step)
                    if self._stop_requested(step, until):
                        interrupted = True
                        break
            self._finish(step, start, interrupted)
        finally:
            self._end()
        return TrainResult(self.run_dir, self.run_dir / CHECKPOINT_NAME, step, self.total, interrupted,
                           time.perf_counter() - t_start, self.model, reused=step == start and start >= self.total,
                           train_seconds=self._saved_seconds, average=self._average_state())

    # ------------------------------------------------------------------ the loop's named blocks
    def _begin(self) -> int:
        """Before the first step: the run folder, resume (or not), the loss log cut back to it, the sample batch,
        event files, signal handlers. Returns the step training starts from."""
        cfg = self.cfg
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_text(self.run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
            remove_stale_temporaries(self.run_dir)  # a checkpoint a hard kill caught before its rename
        found = read_latest(self.run_dir) if cfg.train.resume else None  # again: another process may have gone on
        start = self._resume(found)
        self._check_diverged_marker(start)
        if self.dist.is_main:
            self._truncate_log(start)
        self._fixed = self.data.fixed_batches(cfg.train.sample_images, self.model.sample_source())
        self.events = EventLog(self.run_dir, cfg.train.tensorboard if self.dist.is_main else False, start)
        self._handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._handlers[sig] = signal.signal(sig, self._on_signal)
        return start

    def _step(self, step: int) -> dict[str, Any]:
        """One training step: the learning rate for it, its batches, the model's update."""
        self._factor = lr_factor(step, self.total, self._decay_start)
        apply_lr(self.model.optimizers(), self._factor)
        batches = [to_device(b, self.device, self.channels_last) for b in self.data.batches(step)]
        losses = self.model.train_batches(batches, step)
        if self.average is not None:
            self.average.update()
        return losses

    def _log_if_due(self, step: int, bar: Any) -> None:
        if step % self.cfg.train.log_every and step != self.total:
            return
        now, (t_last, s_last) = time.perf_counter(), self._last_log
        self._rate = (step - s_last) / max(now - t_last, 1e-9)
        self._last_log = (now, step)
        values = self._finite(step, self._losses, self._rate, self._factor)
        self._log(step, values, self._rate, self._factor)
        bar(step, values, self._rate)

    def _checkpoint_if_due(self, step: int) -> None:
        if step % self.cfg.train.checkpoint_every == 0 and step < self.total:
            self._finite(step, self._losses, self._rate, self._factor)
            self._checkpoint(step)

    def _keep_if_due(self, step: int) -> None:
        every = self.cfg.train.keep_every
        if every and step % every == 0 and step < self.total:
            self._finite(step, self._losses, self._rate, self._factor)
            if self.dist.is_main:
                save_kept(self.run_dir, self.model, self.cfg.model, self.cfg, step, self.total, self._train_seconds(),
                          self._average_state())

    def _sample_if_due(self, step: int) -> None:
        every = self.cfg.train.sample_every
        if every and step % every == 0 and step < self.total:
            self._samples(step)

    def _finish(self, step: int, start: int, interrupted: bool) -> None:
        """After the last step (or an interrupt): the final checkpoint and, for a finished run, samples."""
        if step > start and self._saved_step != step:  # (a checkpoint may have just been written at this step)
            self._finite(step, self._losses, self._rate, self._factor)
            self._checkpoint(step)
            if not interrupted:
                self._samples(step)
        self._dump_rank_weights()

    def _end(self) -> None:
        self.events.close()
        for sig, handler in self._handlers.items():
            signal.signal(sig, handler)

