"""``jobs=N``: a protocol's training runs side by side in N processes, each with its share of the CPU cores.

At demo widths a model is too small to keep two cores busy, so on a 2-core machine two 1-thread runs side by side
finish sooner than the same runs one after another with 2 threads each: in about half the time on an AVX2-only EPYC,
1.3-1.5x the steps per second on a Xeon with AMX (``benchmarks/results/``). With ``jobs=N`` this process sets
``cores // N`` threads for itself and starts N - 1 helper processes with the same count. The protocol then runs as
always, front to back (data, classifier, each method and seed); the helpers take the protocol's training jobs (the
``starbench plan`` list), the costliest first: a probe process times a few steps of each run first
(``evaluate.costs``), and both sides then take the run with the most training left that nobody has taken (``Schedule``;
without the estimates, the helpers take runs from the back and the protocol goes front to back). A run a helper is
training the protocol puts off while it can score runs that are finished (``Evaluation.score_all``); when only such
runs are left it scores the checkpoints they have kept for their learning curves so far, then waits for the run
folder's lock and loads the finished run; a run no helper has taken it trains itself. So the helpers only move work
earlier: what the protocol computes does not depend on them, a helper that fails leaves its run to the protocol
(which resumes its checkpoint, or reports the same error), and every run is
trained with the same thread count whoever trains it. The thread count is a numerical path of its own (another
reduction order in every convolution): ``jobs=2`` on 2 cores gives other bits than ``jobs=1``, and after thousands
of GAN steps other models (``benchmarks/numerical_paths.py`` measures how far that moves the numbers).
"""
from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
from omegaconf import OmegaConf

from starbench.config import named_models, schema_for
from starbench.devices import resolve_device
from starbench.evaluate.costs import estimate_seconds
from starbench.evaluate.runs import train_method
from starbench.evaluate.sources import Source, TrainedSource
from starbench.files import write_json
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


PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when the thread that started it ends


def stop_with_parent() -> None:
    """In a helper process: on Linux, be sent SIGTERM when the command that started it ends without stopping it (a
    ``kill`` or a scheduler's SIGTERM ends ``starbench run`` before its cleanup runs), so that a helper does not train
    on alone, holding its run folder's lock and a core; its Trainer then saves a checkpoint and stops, as on Ctrl-C.
    The signal follows the helper thread that started the process, which waits for it to the end."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # no prctl: the helper stops at its run's end, as before
        return
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # the command ended before the line above
        os.kill(os.getpid(), signal.SIGTERM)


def as_helper(target: Any, *args: Any) -> None:
    """A helper process's entry (``Helpers.run_process``): bound to its command's lifetime, then ``target(*args)``."""
    stop_with_parent()
    target(*args)


def train_one(settings: dict[str, Any], model: str, fp: str, threads: int) -> None:
    """A helper process: train one run through the protocol's own call (``evaluate.runs.train_method``), quietly.

    ``settings`` is the run's whole config as plain data (a config's schema is built at run time and does not
    pickle): merged over the bare schema of the same models, it is the protocol's config again, key for key. (Not
    over a resolved config: its scale preset would add keys, such as the demo's ``train.model_steps``, that a run
    at another scale does not have; the run key computed here would then name another folder.)"""
    torch.set_num_threads(threads)
    _, _, info = train_method(config_from(settings), model, fp, show=False)
    if info["reused"]:  # the protocol (or another process) had trained it
        raise SystemExit(FOUND_FINISHED)


def config_from(settings: dict[str, Any]) -> Any:
    """A run's config again from its plain-data form (see ``train_one``)."""
    return OmegaConf.merge(OmegaConf.structured(schema_for(named_models([], settings))), settings)


def probe_costs(runs: list[tuple[dict[str, Any], str, str]], threads: int, out: str) -> None:
    """A probe process: each run's training seconds left (``evaluate.costs``) at the helpers' thread count, written to
    ``out`` as a JSON list."""
    torch.set_num_threads(threads)
    write_json(Path(out), estimate_seconds([(config_from(settings), model, fp) for settings, model, fp in runs]))


def folder_of(source: Source) -> Optional[str]:
    """A trained source's run folder (the key the schedule knows it by); None for a source that trains nothing."""
    return str(source.run_folder()) if isinstance(source, TrainedSource) else None


class Schedule:
    """The runs this command's processes have taken and what each has left to train (seconds, from the probe),
    shared by the protocol's thread and the helper threads of its process. Each side takes the costliest run nobody
    has taken; without estimates, the old order (see the module docstring)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.costs: dict[str, float] = {}
        self.taken: dict[str, str] = {}  # run folder -> "protocol" or "helper"

    def reset(self) -> None:
        with self.lock:
            self.costs, self.taken = {}, {}

    def set_costs(self, costs: dict[str, float]) -> None:
        with self.lock:
            self.costs.update({k: v for k, v in costs.items() if self.costs.get(k) != 0.0})

    def cost(self, source: Source) -> Optional[float]:
        """Seconds of training left; 0 for a source that trains nothing or a run finished; None: not estimated."""
        folder = folder_of(source)
        with self.lock:
            return 0.0 if folder is None else self.costs.get(folder)

    def take(self, source: Source, who: str) -> bool:
        """Mark the run as being trained by ``who``; False when another has taken it (a source with nothing to train
        is always free)."""
        folder = folder_of(source)
        if folder is None:
            return True
        with self.lock:
            if self.taken.get(folder, who) != who:
                return False
            self.taken[folder] = who
            return True

    def finished(self, source: Source) -> None:
        """The run is trained (or was found trained): nothing left, nobody holding it."""
        folder = folder_of(source)
        if folder is not None:
            with self.lock:
                self.taken.pop(folder, None)
                if folder in self.costs:  # estimated by this command's probe (none: jobs=1, nothing to keep)
                    self.costs[folder] = 0.0

    def give_up(self, source: Source) -> None:
        """A helper could not train the run: it is free for the protocol again."""
        folder = folder_of(source)
        if folder is not None:
            with self.lock:
                self.taken.pop(folder, None)

    def taken_by_helper(self, source: Source) -> bool:
        folder = folder_of(source)
        with self.lock:
            return folder is not None and self.taken.get(folder) == "helper"

    def pick(self, sources: list[Source], ready: list[int]) -> int:
        """The protocol's next of ``ready`` (indices into ``sources``): one with nothing to train first (scoring it
        is short), in the sources' order; else the costliest. Without estimates for all of them: the first."""
        costs = [self.cost(sources[i]) for i in ready]
        if any(c is None for c in costs):
            return ready[0]
        nothing = [i for i, c in zip(ready, costs) if c == 0.0]
        return nothing[0] if nothing else max(zip(ready, costs), key=lambda ic: ic[1])[0]  # ties: the first

    def next_for_helper(self, queue: list[TrainedSource]) -> Optional[TrainedSource]:
        """The costliest run of ``queue`` left to train that nobody has taken (taken now for a helper); without
        estimates the last one not taken. None when there is none."""
        folders = [folder_of(s) for s in queue]  # the schedule's key, made in one place
        with self.lock:
            free = [(s, f, self.costs.get(f)) for s, f in zip(queue, folders)
                    if f not in self.taken and self.costs.get(f) != 0.0]
            if not free:
                return None
            unknown = any(c is None for _, _, c in free)
            source, folder, _ = free[-1] if unknown else max(free, key=lambda sfc: sfc[2])  # ties: the first
            self.taken[folder] = "helper"
            return source


SCHEDULE = Schedule()  # this process's: the running side_by_side's runs


def estimate_line(sources: list[TrainedSource], costs: list[float]) -> str:
    """'estimated training left at this thread count: icgan 14 min 39 s, stargan 8 min 11 s, ...', longest first."""
    per_name: dict[str, float] = {}
    for s, c in zip(sources, costs):
        per_name[s.name] = max(per_name.get(s.name, 0.0), c)
    parts = [f"{name} {duration(c)}" for name, c in sorted(per_name.items(), key=lambda kv: -kv[1])]
    each = " (the longest seed of each)" if len({s.seed for s in sources}) > 1 else ""
    return f"estimated training left at this thread count{each}: {', '.join(parts)}"


def duration(seconds: float) -> str:
    if seconds == 0:
        return "done"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s} s" if m else f"{s} s"


_TRAINED_HERE: set[str] = set()  # run folders the helper processes of the running side_by_side trained


def as_this_command_saw_it(info: dict[str, Any]) -> dict[str, Any]:
    """A run's provenance with who trained it: the protocol's process finds a run that a helper process of this
    command trained already finished, as it would an earlier command's, but it was not reused."""
    if info.get("reused") and info.get("run_dir") in _TRAINED_HERE:
        return {**info, "reused": False, "trained_by": "a helper process of this command"}
    return info


class Helpers:
    """N - 1 threads, each starting one helper process at a time on the costliest run nobody has taken (``SCHEDULE``);
    the first thread first runs the probe process that estimates the runs' costs (with more than one run)."""

    def __init__(self, sources: list[TrainedSource], helpers: int, threads: int) -> None:
        self.queue = list(sources)
        self.threads = threads
        self.lock = threading.Lock()
        self.stopping = False
        self.running: set[Any] = set()
        self.failed: list[str] = []
        self.context = multiprocessing.get_context("spawn")  # fork would copy the parent's OpenMP threads' state
        self.probed = threading.Event()
        if len(self.queue) <= 1:  # nothing to order
            self.probed.set()
        self.workers = [threading.Thread(target=self.work, args=(i,), daemon=True, name=f"starbench-helper-{i}")
                        for i in range(helpers)]

    def start(self) -> None:
        for w in self.workers:
            w.start()

    def next_job(self) -> TrainedSource | None:
        with self.lock:
            if self.stopping:
                return None
            source = SCHEDULE.next_for_helper(self.queue)
            if source is not None:
                self.queue.remove(source)
            return source

    def run_process(self, target: Any, args: tuple, name: str) -> Optional[int]:
        """Start ``target(*args)`` in a process of its own and wait for it: its exit code (None: it did not start, or
        the helpers are stopping)."""
        process = self.context.Process(target=as_helper, name=name, args=(target, *args))
        with self.lock:
            if self.stopping:
                return None
            try:
                process.start()
            except Exception as e:  # noqa: BLE001 - a helper is an optimization: report, leave the job
                console.print(f"  helper process: could not start {name} ({type(e).__name__}: {e})", highlight=False)
                return None
            self.running.add(process)
        process.join()
        with self.lock:
            self.running.discard(process)
        return process.exitcode

    def probe(self) -> None:
        """The runs' training costs (``evaluate.costs``), measured in a process of its own, into ``SCHEDULE``; when
        that fails, one line says so and the runs are taken from the back of the list."""
        runs = [(OmegaConf.to_container(s.cfg, resolve=True), s.model_name, s.fp) for s in self.queue]
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="starbench-probe-") as folder:
            out = Path(folder) / "costs.json"
            code = self.run_process(probe_costs, (runs, self.threads, str(out)), "starbench probe")
            costs = json.loads(out.read_text()) if code == 0 and out.is_file() else None
        if costs is None:
            if not self.stopping:
                console.print(f"  helper process: could not time the runs' steps (exit {code}); taking them from the "
                              f"back of the list", highlight=False)
            return
        SCHEDULE.set_costs({str(s.run_folder()): float(c) for s, c in zip(self.queue, costs)})
        console.print(f"  helper process: {estimate_line(self.queue, costs)} (probe: {time.perf_counter() - start:.0f}"
                      f" s); the longest first", highlight=False, soft_wrap=True)

    def work(self, index: int) -> None:
        if index == 0 and not self.probed.is_set():
            try:
                self.probe()
            finally:
                self.probed.set()
        self.probed.wait()
        while (source := self.next_job()) is not None:
            what = f"{source.name} (seed {source.seed})"
            start = time.perf_counter()
            code = self.run_process(train_one, (OmegaConf.to_container(source.cfg, resolve=True), source.model_name,
                                                source.fp, self.threads), f"starbench train {what}")
            if code == 0:
                _TRAINED_HERE.add(str(source.run_folder()))
                SCHEDULE.finished(source)
                console.print(f"  helper process: trained {what} ({time.perf_counter() - start:.0f} s)",
                              highlight=False)
            elif code == FOUND_FINISHED:
                SCHEDULE.finished(source)
            else:
                SCHEDULE.give_up(source)
                if not self.stopping:
                    self.failed.append(what)
                    console.print(f"  helper process: training {what} failed (exit {code}); the protocol trains it "
                                  f"itself when it gets there", highlight=False)

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
        SCHEDULE.reset()
        helpers = Helpers(sources, min(jobs - 1, len(sources)), threads)
        console.print(f"jobs={jobs}: {len(sources)} training run(s), {helpers.threads} thread(s) per process, "
                      f"{len(helpers.workers)} helper process(es); each process takes the run with the most "
                      f"training left", highlight=False)
        helpers.start()
        ok = False
        try:
            yield
            ok = True
        finally:
            helpers.stop(wait=ok)
            SCHEDULE.reset()
