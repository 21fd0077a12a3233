"""What every protocol run shares: its steps, device, Inception weights, sources and the results folder.

A protocol builds its ``Task`` and its classifier's ``Judge``; ``Evaluation`` turns ``models=[...]``
and ``translations=[...]`` into sources, scores each the same way (``evaluate.score``), and writes the
record, tables, figures and provenance together or not at all.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from rich.markup import escape

from starbench.config import cache_dir
from starbench.data import LoadedData, load_data
from starbench.devices import cpu_bf16_units, cpu_name, resolve_device
from starbench.evaluate.parallel import SCHEDULE, cpu_cores, jobs_for, training_threads
from starbench.evaluate.runs import data_fingerprint
from starbench.evaluate.score import Judge, Metrics, Scores, score
from starbench.evaluate.sources import (
    FileSource,
    ModelSource,
    Source,
    TrainedSource,
    check_methods,
    count_sources,
    sources_from_config,
)
from starbench.evaluate.steps import Steps
from starbench.evaluate.task import Task
from starbench.files import load_torch
from starbench.locks import exclusive, held, holder
from starbench.metrics.distances import Extractor, Settings
from starbench.metrics.extractors import resolve_inception_weights
from starbench.progress import console
from starbench.report import provenance, results_folder, save_record, write_json
from starbench.train.checkpoint import KEPT_DIR
from starbench.train.events import EventLog
from starbench.train.speed import bf16_autocast, cpu_has_bf16, fast_path
from starbench.train.trainer import LOCK_FILE, Diverged

VERBS = {"trained": "train or load, then translate and score", "checkpoint": "load, translate and score",
         "translator": "translate and score", "folder": "read and score"}  # how a source's step is announced
CURVE_VERSION = 3  # the metrics a curve point holds (3: + KID, L1 to ground truth, train seconds): older caches redone
Render = Callable[[dict[str, Any], dict[str, np.ndarray], Path], None]
Summary = Callable[[Scores, Task], dict[str, Optional[float]]]  # a protocol's main metrics of one source


def numerical_path(cfg: Any) -> dict[str, Any]:
    """The arithmetic these numbers came from: another CPU, precision or thread count gives other bits, and after
    thousands of GAN steps other models (``benchmarks/numerical_paths.py`` measures how far that moves them)."""
    device = resolve_device(cfg.device)
    bf16 = bf16_autocast(device, cfg.train.amp)
    return {"device": str(device), "cpu": cpu_name() if device.type == "cpu" else torch.cuda.get_device_name(device),
            "cpu_native_bf16": cpu_has_bf16(), "cpu_bf16_units": cpu_bf16_units(),
            "training": "bf16 autocast" if bf16 else "fp32", "cores": cpu_cores(), "jobs": jobs_for(cfg),
            "threads_per_process": training_threads(cfg)}  # of every training process and the judge


def kept_checkpoints(run: Path, keep_every: int) -> list[tuple[int, Path]]:
    """(step, file) of the checkpoints a run kept for its learning curve so far, by step."""
    found = [(int(p.stem.split("_")[1]), p) for p in Path(run, KEPT_DIR).glob("step_*.pt")]
    return sorted((step, p) for step, p in found if keep_every and step % keep_every == 0)


def curve_point_file(kept: Path, protocol: str, key: str) -> Path:
    """Where the curve point of ``kept`` scored by ``protocol`` (with metrics ``key``) is cached: beside it."""
    return kept.with_name(f"{kept.stem}.{protocol}-{key}.json")


def in_training_elsewhere(source: Source) -> bool:
    """A trained source whose run folder another process holds (training it) at this moment, or that a helper of this
    command has taken (its process may not hold the lock yet)."""
    return isinstance(source, TrainedSource) and (SCHEDULE.taken_by_helper(source)
                                                  or held(source.run_folder() / LOCK_FILE))


def wait_for_helper_lock(source: Source, poll_seconds: float = 0.5) -> None:
    """Before waiting on a run's lock: a helper that has taken the run but whose process has not locked it yet (it is
    starting) gets there first, so that the two do not both train it."""
    while SCHEDULE.taken_by_helper(source) and not held(source.run_folder() / LOCK_FILE):
        time.sleep(poll_seconds)


class Evaluation:
    """One run of protocol ``name``: ``own_steps`` steps of its own plus one per source."""

    def __init__(self, cfg: Any, name: str, own_steps: int, n_sources: Optional[int] = None) -> None:
        """``n_sources``: how many sources the protocol scores (absent: ``models`` and ``translations``, checked)."""
        self.start = time.perf_counter()
        self.cfg, self.name = cfg, name
        if n_sources is None:
            check_methods(cfg)
            n_sources = count_sources(cfg)
        self.steps = Steps(own_steps + n_sources)
        self.device = resolve_device(cfg.device)
        self.show = bool(cfg.train.progress)
        self.weights = resolve_inception_weights(cfg.fid)  # a wrong file fails here, before any training
        m = cfg.metrics
        self.extra = Extractor.named(m.extractor, m.extractor_weights) if m.extractor else None  # checked here too
        self.fid_root = cache_dir(cfg) / "fidelity"
        self.unlogged: set[Path] = set()  # curve points this command scored, not yet in their run's TensorBoard

    def step(self, title: str) -> AbstractContextManager[None]:
        return self.steps(title)

    def metrics(self, judge: Judge, judge_key: str, extractor_file: Path) -> Metrics:
        """The judge (``judge_key``: its classifiers' cache keys, ``task_classifier``'s ``info["judge_key"]``), and
        the distribution metrics' extractors: the classifier's features (``extractor_file``), then Inception's when
        its weights are there, then the user's ``metrics.extractor``."""
        return Metrics(judge, judge_key, self.extractors(extractor_file), Settings.of(self.cfg), self.fid_root,
                       self.cfg.fid.batch_size)

    def extractors(self, extractor_file: Path) -> list[Extractor]:
        out = [Extractor.classifier(extractor_file)]
        if self.weights.available:
            out.append(Extractor.inception(self.weights))
        if self.extra is not None:
            out.append(self.extra)
        return out

    def data(self) -> LoadedData:
        """The configured dataset, decoded (the synthetic set written on first use)."""
        return load_data(self.cfg, show_progress=self.show)

    def load(self, task_of: Callable[[LoadedData], Task]) -> tuple[LoadedData, str, Task, list[Source]]:
        """The "data" step: the configured dataset, its fingerprint, the task built on it, and the sources."""
        with self.step("data"):
            data = load_data(self.cfg, show_progress=self.show)
            fp = data_fingerprint(data)
            task = task_of(data)
            return data, fp, task, self.sources(fp, task)

    def sources(self, fingerprint: str, task: Task) -> list[Source]:
        """The methods of ``models=[...]`` and the folders of ``translations=[...]``; folders are checked here,
        before anything is trained."""
        out = sources_from_config(self.cfg, fingerprint, self.device)
        for s in out:
            if s.kind == "folder":
                s.prepare(task)
        self.translate_at(out)
        return out

    def translate_at(self, sources: list[Source]) -> None:
        """Every model source translates at the device's training precision and layout (``train.amp``,
        ``train.channels_last``), whatever made it."""
        fast = fast_path(self.device, self.cfg.train.amp, self.cfg.train.channels_last)
        for s in sources:
            if isinstance(s, ModelSource):
                s.fast = fast

    def score(self, task: Task, source: Source, metrics: Metrics, what: str,
              on_ready: Optional[Callable[[Source], None]] = None, summarize: Optional[Summary] = None) -> Scores:
        """``source`` scored on ``task`` in a step of its own (``what``: the cells, e.g. '63 inputs x 7 targets');
        ``on_ready(source)`` runs once it is trained or loaded (a protocol's own figure). With ``curve_every``,
        ``summarize`` gives the main metrics of each kept checkpoint of a trained source (``Scores.curve``)."""
        verb = VERBS.get(source.kind, "translate")
        seed = f" (seed {source.seed})" if self.cfg.seeds is not None and source.seed is not None else ""
        with self.step(f"method {source.name}{seed}: {verb} {what}"):
            try:
                result = score(task, source, metrics, self.cfg.grid_inputs, on_ready)
            except Diverged as exc:  # the row is kept, "diverged at step N"; the other methods go on
                console.print(f"[yellow]{escape(str(exc))}[/]", highlight=False, soft_wrap=True)
                return Scores.failed(source.name, task, source.info, exc.info, source.seed)
            if source.kind == "trained" and summarize is not None and source.cfg.train.keep_every:
                result.curve = self.curve(task, source, metrics, result, summarize)
            return result

    def score_all(self, task: Task, sources: list[Source], metrics: Metrics, what: str,
                  on_ready: Optional[Callable[[Source], None]] = None,
                  summarize: Optional[Summary] = None) -> list[Scores]:
        """Every source scored (``score``), the results in the sources' order. A trained source whose run another
        process is training now (a helper of ``jobs``, a ``starbench train`` beside this command) is put off while
        another source is ready, so that this process scores finished runs instead of waiting idle; when every
        source left is in training elsewhere, it scores the learning-curve checkpoints those runs have kept so far
        while it waits (``score_kept_meanwhile``), so that only their last points are left once they finish. What a
        source scores does not depend on when it is scored (its translations are its model's; KID's subsets are
        drawn from a fixed seed in every call). Of the ready sources it takes one with nothing to train first, else
        the one with the most training left, when ``jobs`` has estimated it (``parallel.Schedule.pick``)."""
        results: dict[int, Scores] = {}
        pending = list(range(len(sources)))
        while pending:
            ready = [i for i in pending if not in_training_elsewhere(sources[i])]
            if not ready and summarize is not None and self.score_kept_meanwhile(
                    task, [sources[i] for i in pending], metrics, summarize):
                continue
            i = SCHEDULE.pick(sources, ready) if ready else pending[0]
            if ready and not SCHEDULE.take(sources[i], "protocol"):
                continue  # a helper took it a moment ago
            if not ready:
                wait_for_helper_lock(sources[i])
            pending.remove(i)
            results[i] = self.score(task, sources[i], metrics, what, on_ready, summarize)
            SCHEDULE.finished(sources[i])
        return [results[i] for i in range(len(sources))]

    def score_kept_meanwhile(self, task: Task, sources: list[Source], metrics: Metrics, summarize: Summary,
                             poll_seconds: float = 2.0) -> bool:
        """While every one of ``sources`` is in training elsewhere: score the kept checkpoints their runs have
        written and this protocol has not scored yet, polling for new ones; True when one of them has stopped
        training (score it now), False when there is nothing to score meanwhile (no kept checkpoints expected:
        wait for the run's lock instead). With ``train.lock_timeout`` set it does not wait here: the limit is the
        lock's, as it was."""
        waiting = [s for s in sources if isinstance(s, TrainedSource) and s.cfg.train.keep_every]
        if len(waiting) < len(sources) or self.cfg.train.lock_timeout is not None:
            return False
        curve_metrics, key = self.curve_metrics(task, metrics)
        whose = "its" if len(waiting) == 1 else "their"
        trainers = "; ".join(f"{s.name} by {holder(s.run_folder() / LOCK_FILE)}" for s in waiting)
        console.print(f"  waiting for runs in training elsewhere ({trainers}): scoring {whose} learning-curve "
                      f"checkpoints as they are kept", highlight=False, soft_wrap=True)
        while all(in_training_elsewhere(s) for s in waiting):
            scored = False
            for s in waiting:
                for _, path in kept_checkpoints(s.run_folder(), s.cfg.train.keep_every):
                    if not curve_point_file(path, self.name, key).is_file():
                        self.kept_point(task, s, curve_metrics, key, path, summarize)
                        scored = True
            if not scored:
                time.sleep(poll_seconds)
        return True

    def curve(self, task: Task, source: "TrainedSource", metrics: Metrics, final: Scores,
              summarize: Summary) -> list[dict[str, Any]]:
        """The main metrics of every kept checkpoint of ``source``, then of the final model.

        Each kept checkpoint is scored like any source and its result cached beside it (keyed by the task, the judge
        and the feature extractors), so a re-run or another protocol with the same judge reads it instead.
        """
        run = Path(final.info["run_dir"])
        metrics, key = self.curve_metrics(task, metrics)
        points, new = [], []
        for step, path in kept_checkpoints(run, source.cfg.train.keep_every):
            if step >= final.info["steps"]:
                continue
            values = self.kept_point(task, source, metrics, key, path, summarize)
            cached = curve_point_file(path, self.name, key)
            if cached in self.unlogged:
                self.unlogged.remove(cached)
                new.append((step, values))
            points.append({"step": step, **values})
        last = summarize(final, task)
        if not self.cfg.curve_distances:  # the final point like the others
            last = {k: (v if k in ("error %", "L1 to ground truth") else None) for k, v in last.items()}
        points.append({"step": int(final.info["steps"]), **last, "train seconds": final.info.get("train_seconds")})
        if new:  # TensorBoard: the curve beside the run's losses (points computed now, so none twice)
            events = EventLog(run, self.cfg.train.tensorboard)
            for step, values in new:
                events.scalars(step, {f"curve/{self.name}/{k}": v for k, v in values.items() if v is not None})
            events.close()
        return points

    def curve_metrics(self, task: Task, metrics: Metrics) -> tuple[Metrics, str]:
        """The metrics a curve point is scored with, and the key its cached result is filed under."""
        if not self.cfg.curve_distances:  # the error and L1 only: what the plateau test needs, far cheaper
            metrics = dataclasses.replace(metrics, extractors=[])
        tags = "|".join(e.tag for e in metrics.extractors)
        # A kept checkpoint holds both the last weights and their average, and generator_weights picks which one
        # translates (sources.FileSource): the key names it, or a re-score with generator_weights=last would read
        # the average's points back. The default's key is the one made before it was named, so its caches hold.
        weights = "" if self.cfg.generator_weights == "average" else f"|weights={self.cfg.generator_weights}"
        key = hashlib.sha256(f"{CURVE_VERSION}|{task.fingerprint()}|{metrics.judge_key}|{tags}|{metrics.settings}"
                             f"{weights}".encode()).hexdigest()[:12]
        return metrics, key

    def kept_point(self, task: Task, source: "TrainedSource", metrics: Metrics, key: str, path: Path,
                   summarize: Summary) -> dict[str, Any]:
        """The curve point of one kept checkpoint: read from its cached result, or scored now and cached (and noted
        in ``unlogged``, for ``curve`` to write to the run's TensorBoard events once, also when it was scored while
        the run still trained in another process)."""
        cached = curve_point_file(path, self.name, key)
        with exclusive(path.with_name(f".{cached.name}.lock"), f"the evaluation of {path}"):
            if not cached.is_file():
                kept = FileSource(source.name, source.model_name, path, source.cfg, self.device)
                self.translate_at([kept])
                values = summarize(score(task, kept, metrics, 0), task)
                values["train seconds"] = load_torch(path, "kept checkpoint").get("train_seconds")
                write_json(cached, values)
                self.unlogged.add(cached)
            return json.loads(cached.read_text())

    def write(self, record: dict[str, Any], arrays: Optional[dict[str, np.ndarray]], render: Render,
              **extra: Any) -> Path:
        """Record, rendered tables and figures, and provenance, swapped into ``results/<name>/`` together."""
        with results_folder(self.cfg.results_dir, self.name) as folder:
            save_record(folder, record, arrays)
            render(record, arrays or {}, folder)
            write_json(folder / "provenance.json", provenance(
                self.cfg, protocol=self.name, seed=self.cfg.seed, inception=self.weights.describe(),
                numerical_path=numerical_path(self.cfg), **extra,
                wall_seconds_per_step=self.steps.times, wall_seconds=round(self.seconds, 2)))
        return Path(self.cfg.results_dir) / self.name

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
