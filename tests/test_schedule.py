"""``jobs``: each run's training measured before it trains, and each process taking the run with the most left."""
from pathlib import Path

from filelock import FileLock

from starbench.config import resolve
from starbench.evaluate import costs, parallel
from starbench.evaluate.core import Evaluation
from starbench.evaluate.runs import train_method
from starbench.evaluate.sources import trained_jobs
from starbench.train.trainer import LOCK_FILE, StepTimes, Trainer, steps_of

FAST = ["scale=smoke", "fid.download=false", "train.progress=false", "train.tensorboard=false",
        "data.synth_subjects=6", "train.steps=8", "train.log_every=2", "classifier.epochs=1"]


def sources(tmp_path, *extra):
    return trained_jobs(resolve(FAST + [f"run_dir={tmp_path / 'runs'}", *extra]))


def test_a_probe_times_a_runs_steps_and_writes_nothing_to_its_folder(tmp_path):
    cfg = resolve(FAST + ["model=stargan", "train.model_steps.stargan=30"])
    times = Trainer(cfg, tmp_path / "run", show_progress=False).time_steps(max_steps=3, max_seconds=60)
    assert len(times.step_seconds) == 3 and times.total_steps == 30 and times.per_step > 0
    assert not (tmp_path / "run").exists()
    quick = Trainer(cfg, tmp_path / "run", show_progress=False).time_steps(max_steps=50, max_seconds=0.0)
    assert len(quick.step_seconds) == 2  # the time limit stops it, but never before two steps


def test_estimates_are_steps_left_times_a_step_one_probe_per_configuration(tmp_path, monkeypatch):
    jobs = sources(tmp_path, "models=[stargan,icgan]", "seeds=[0,1]", "train.model_steps.icgan=12")
    probed, per_step = [], {"stargan": 0.5, "icgan": 2.0}

    def fake_time_steps(self, max_steps, max_seconds):
        probed.append(self.cfg.model)
        return StepTimes(0.1, [per_step[self.cfg.model]] * 2, steps_of(self.cfg, self.cfg.model))

    monkeypatch.setattr(Trainer, "time_steps", fake_time_steps)
    runs = [(s.cfg, s.model_name, s.fp) for s in jobs]
    assert sorted((s.model_name, s.seed) for s in jobs) == [("icgan", 0), ("icgan", 1), ("stargan", 0), ("stargan", 1)]
    steps = {m: steps_of(jobs[0].cfg, m) for m in per_step}
    assert steps["icgan"] == 12
    expected = [per_step[s.model_name] * steps[s.model_name] for s in jobs]
    assert costs.estimate_seconds(runs) == expected
    assert sorted(probed) == ["icgan", "stargan"]  # the seeds share a probe
    train_method(*runs[0], show=False)  # a finished run has nothing left, and is not timed
    probed.clear()
    assert costs.estimate_seconds(runs[:1]) == [0.0] and probed == []


def test_the_real_probe_process_fills_the_schedule_with_estimates(tmp_path):
    jobs = sources(tmp_path, "models=[stargan,icgan]")
    helpers = parallel.Helpers(jobs, 1, 1)
    parallel.SCHEDULE.reset()
    try:
        helpers.probe()
        estimates = [parallel.SCHEDULE.cost(s) for s in jobs]
    finally:
        parallel.SCHEDULE.reset()
    assert all(e is not None and e > 0 for e in estimates), estimates
    assert not any(Path(s.run_folder()).exists() for s in jobs)  # measured, not trained


def test_each_side_takes_the_run_with_the_most_training_left(tmp_path):
    plan = sources(tmp_path, "models=[stargan,icgan]", "seeds=[0,1]")
    s_a, i_a, s_b, i_b = plan  # four runs; which is which does not matter here
    sched = parallel.Schedule()
    # without estimates: the protocol goes front to back, a helper takes from the back (what they did before)
    assert sched.pick(plan, [0, 1, 2, 3]) == 0
    assert sched.next_for_helper(plan) is i_b and sched.taken_by_helper(i_b)
    assert sched.next_for_helper(plan[:3]) is s_b
    sched = parallel.Schedule()
    sched.set_costs({str(s.run_folder()): c for s, c in zip(plan, [10.0, 50.0, 30.0, 0.0])})
    assert sched.next_for_helper(plan) is i_a  # the costliest; i_b is finished, nothing to take
    assert not sched.take(i_a, "protocol") and sched.take(s_b, "protocol")
    assert sched.next_for_helper(plan) is s_a  # s_b is the protocol's now
    assert sched.next_for_helper(plan) is None
    sched.give_up(s_a)  # a helper that failed leaves its run to the protocol
    assert not sched.taken_by_helper(s_a) and sched.take(s_a, "protocol")
    sched.finished(i_a)
    assert sched.cost(i_a) == 0.0 and not sched.taken_by_helper(i_a)
    # what the command prints: each method's longest estimate, longest first
    line = parallel.estimate_line(plan, [700.0 if s.model_name == "icgan" else 45.0 for s in plan])
    assert line == ("estimated training left at this thread count (the longest seed of each): icgan 11 min 40 s, "
                    "stargan 45 s")
    # the protocol: a run with nothing to train first (scoring it is short), then the costliest; ties: the first
    fresh = parallel.Schedule()
    fresh.set_costs({str(s.run_folder()): c for s, c in zip(plan, [10.0, 50.0, 50.0, 0.0])})
    assert fresh.pick(plan, [0, 1, 2, 3]) == 3 and fresh.pick(plan, [0, 1, 2]) == 1 and fresh.pick(plan, [0, 2]) == 2


def test_the_protocol_trains_the_costliest_ready_run_first_and_keeps_the_sources_order(tmp_path, monkeypatch):
    plan = sources(tmp_path, "models=[stargan,icgan]", "seeds=[0,1]")
    ev = Evaluation(resolve(FAST + [f"run_dir={tmp_path / 'runs'}", "models=[stargan,icgan]", "seeds=[0,1]"]),
                    "rafd_expression", own_steps=0)
    order = []
    helper = FileLock(str(plan[1].run_folder() / LOCK_FILE))

    def score(task, source, metrics, what, on_ready=None, summarize=None):
        order.append(plan.index(source))
        assert not parallel.SCHEDULE.take(source, "helper")  # while the protocol trains it, no helper takes it
        if len(order) == 2:
            helper.release()  # the helper finishes icgan 0 meanwhile
        return source

    monkeypatch.setattr(ev, "score", score)
    parallel.SCHEDULE.reset()
    try:
        parallel.SCHEDULE.set_costs({str(s.run_folder()): c for s, c in zip(plan, [20.0, 90.0, 20.0, 40.0])})
        plan[1].run_folder().mkdir(parents=True)
        helper.acquire()  # a helper trains icgan 0
        assert ev.score_all(None, plan, None, "") == plan
        # the run with 40 s left before the two with 20 s (ties in the sources' order); the held one once its helper
        # let go
        assert order == [3, 0, 1, 2], order
        assert all(parallel.SCHEDULE.cost(s) == 0.0 for s in plan)
    finally:
        parallel.SCHEDULE.reset()
