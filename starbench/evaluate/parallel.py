"""``jobs=N``: a protocol's training runs side by side in N processes, each with its share of the CPU cores.

At demo widths a model is too small to keep two cores busy, so on a 2-core machine two 1-thread runs side by side
finish sooner than the same runs one after another with 2 threads each: in about half the time on an AVX2-only EPYC,
1.3-1.5x the steps per second on a Xeon with AMX (``benchmarks/results/``). With ``jobs=N`` this process sets
``cores // N`` threads for itself and starts N - 1 helper processes with the same count. The protocol then runs as
always, front to back (data, classifier, each method and seed); the helpers take the protocol's training jobs (the
``starbench plan`` list) from the back. A run a helper is training the protocol puts off while it can score runs
that are finished (``Evaluation.score_all``); when only such runs are left it scores the checkpoints they have kept
for their learning curves so far, then waits for the run folder's lock and loads the finished run; a run no helper
has started it trains itself, and a helper that reaches it later finds it finished. So the helpers only move work
earlier: what the protocol computes does not depend on them, a helper that fails leaves its run to the protocol
(which resumes its checkpoint, or reports the same error), and every run is
trained with the same thread count whoever trains it. The thread count is a numerical path of its own (another
reduction order in every convolution): ``jobs=2`` on 2 cores gives other bits than ``jobs=1``, and after thousands
of GAN steps other models (``benchmarks/numerical_paths.py`` measures how far that moves the numbers).
"""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import torch
from omegaconf import OmegaConf

from starbench.config import named_models, schema_for
from starbench.devices import resolve_device
from starbench.evaluate.runs import train_method
from starbench.evaluate.sources import TrainedSource
from starbench.progress import console

FOUND_FINISHED = 3  # a helper's exit code when its run was already trained


def cpu_cores() -> int:
    """Cores this process may run on (a container's or ``taskset``'s limit, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_job(jobs: int) -> int:
    return max(1, cpu_cores() // jobs)


def jobs_for(cfg: Any) -> int:
    """``jobs``, or when absent: 2 at demo scale on a CPU with 2 or more cores, where one model cannot keep two
    cores busy (the main command's wall time halves: ``benchmarks/results/``), else 1 (a GPU, or smoke-scale runs of
    seconds, which a helper process's start-up would only slow down)."""
    if cfg.jobs is not None:
        return int(cfg.jobs)
    on_cpu = resolve_device(cfg.device).type == "cpu"
    return 2 if cfg.scale == "demo" and on_cpu and cpu_cores() >= 2 else 1


def training_threads(cfg: Any) -> int:
    """The thread count this command's training processes have: with ``jobs`` > 1 each process's share of the cores,
    else this process's own. The judge is trained with it too, so that a protocol with no training runs beside it
    (``metric_bias``) gets the judge ``rafd_expression`` trained, not another one of other arithmetic."""
    jobs = jobs_for(cfg)
    return threads_per_job(jobs) if jobs > 1 else torch.get_num_threads()


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the body with ``n`` torch threads, then restore the count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_one(settings: dict[str, Any], model: str, fp: str, threads: int) -> None:
    """A helper process: train one run through the protocol's own call (``evaluate.runs.train_method``), quietly.

    ``settings`` is the run's whole config as plain data (a config's schema is built at run time and does not
    pickle): merged over the bare schema of the same models, it is the protocol's config again, key for key. (Not
    over a resolved config: its scale preset would add keys, such as the demo's ``train.model_steps``, that a run
    at another scale does not have; the run key computed here would then name another folder.)"""
    torch.set_num_threads(threads)
    schema = OmegaConf.structured(schema_for(named_models([], settings)))
    _, _, info = train_method(OmegaConf.merge(schema, settings), model, fp, show=False)
    if info["reused"]:  # the protocol (or another process) had trained it
        raise SystemExit(FOUND_FINISHED)


_TRAINED_HERE: set[str] = set()  # run folders the helper processes of the running side_by_side trained


def as_this_command_saw_it(info: dict[str, Any]) -> dict[str, Any]:
    """A run's provenance with who trained it: the protocol's process finds a run that a helper process of this
    command trained already finished, as it would an earlier command's, but it was not reused."""
    if info.get("reused") and info.get("run_dir") in _TRAINED_HERE:
        return {**info, "reused": False, "trained_by": "a helper process of this command"}
    return info


class Helpers:
    """N - 1 threads, each starting one helper process at a time on the next job from the back of the list."""

    def __init__(self, sources: list[TrainedSource], helpers: int, threads: int) -> None:
        self.queue = list(sources)
        self.threads = threads
        self.lock = threading.Lock()
        self.stopping = False
        self.running: set[Any] = set()
        self.failed: list[str] = []
        self.context = multiprocessing.get_context("spawn")  # fork would copy the parent's OpenMP threads' state
        self.workers = [threading.Thread(target=self.work, daemon=True, name=f"starbench-helper-{i}")
                        for i in range(helpers)]

    def start(self) -> None:
        for w in self.workers:
            w.start()

    def next_job(self) -> TrainedSource | None:
        with self.lock:
            return None if self.stopping or not self.queue else self.queue.pop()

    def work(self) -> None:
        while (source := self.next_job()) is not None:
            what = f"{source.name} (seed {source.seed})"
            process = self.context.Process(target=train_one, name=f"starbench train {what}",
                                           args=(OmegaConf.to_container(source.cfg, resolve=True),
                                                 source.model_name, source.fp, self.threads))
            start = time.perf_counter()
            with self.lock:
                if self.stopping:
                    return
                try:
                    process.start()
                except Exception as e:  # noqa: BLE001 - a helper is an optimization: report, leave the job
                    console.print(f"  helper process: could not start {what} ({type(e).__name__}: {e}); the "
                                  f"protocol trains it itself", highlight=False)
                    self.failed.append(what)
                    continue
                self.running.add(process)
            process.join()
            with self.lock:
                self.running.discard(process)
            if process.exitcode == 0:
                _TRAINED_HERE.add(str(source.run_folder()))
                console.print(f"  helper process: trained {what} ({time.perf_counter() - start:.0f} s)",
                              highlight=False)
            elif process.exitcode != FOUND_FINISHED and not self.stopping:
                self.failed.append(what)
                console.print(f"  helper process: training {what} failed (exit {process.exitcode}); the protocol "
                              f"trains it itself when it gets there", highlight=False)

    def join(self) -> None:
        """Wait until every job is done (the helpers alone, with no protocol beside them)."""
        for w in self.workers:
            w.join()

    def stop(self, wait: bool) -> None:
        """``wait``: let the helpers' current runs finish (the protocol ended normally: they are finished or
        waiting on a lock); else stop them (SIGTERM: the Trainer saves a checkpoint and stops, as on Ctrl-C)."""
        with self.lock:
            self.stopping = True
            running = list(self.running)
        if not wait:
            for p in running:
                p.terminate()
        for w in self.workers:
            w.join()


@contextmanager
def side_by_side(cfg: Any, protocol: Any) -> Iterator[None]:
    """Run the protocol inside this: with more than one job (``jobs_for``), its training jobs are started in helper
    processes."""
    jobs = jobs_for(cfg)
    jobs_of = getattr(protocol, "jobs", None)
    sources: list[TrainedSource] = jobs_of(cfg) if jobs > 1 and jobs_of is not None else []
    if not sources:
        yield
        return
    threads = threads_per_job(jobs)
    with torch_threads(threads):
        _TRAINED_HERE.clear()  # what an earlier command's helpers trained is reused by this one
        helpers = Helpers(sources, min(jobs - 1, len(sources)), threads)
        console.print(f"jobs={jobs}: {len(sources)} training run(s), {helpers.threads} thread(s) per process, "
                      f"{len(helpers.workers)} helper process(es) taking them from the back", highlight=False)
        helpers.start()
        ok = False
        try:
            yield
            ok = True
        finally:
            helpers.stop(wait=ok)
