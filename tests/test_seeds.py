"""Training seeds (mean ± sd, per-seed rows), learning curves, and the job plan for clusters."""
import json
import re
import shlex
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from filelock import FileLock

from starbench.cli import cli
from starbench.config import resolve
from starbench.errors import StarbenchError
from starbench.evaluate import parallel
from starbench.evaluate.core import Evaluation
from starbench.evaluate.plan import plan as plan_jobs
from starbench.evaluate.plan import protocol_budget
from starbench.evaluate.runs import run_folder, run_key
from starbench.evaluate.sources import trained_jobs
from starbench.registry import PROTOCOLS
from starbench.train.speed import cpu_has_bf16
from starbench.train.trainer import LOCK_FILE

FAST = ["scale=smoke", "fid.download=false", "train.progress=false", "train.tensorboard=false",
        "data.synth_subjects=6", "train.steps=8", "train.log_every=2", "classifier.epochs=1", "models=[stargan,icgan]"]


def run(tmp_path, name, *extra):
    cfg = resolve(FAST + [f"run_dir={tmp_path / 'runs'}", f"results_dir={tmp_path / name}", *extra])
    PROTOCOLS.get("rafd_expression")(cfg)
    return tmp_path / name / "rafd_expression"


def test_seeds_give_mean_sd_and_per_seed_rows_that_are_the_single_seed_runs(tmp_path):
    singles = {seed: pd.read_csv(run(tmp_path, f"single{seed}", f"seed={seed}") / "table3.csv", keep_default_na=False,
                                 dtype=str) for seed in (0, 1)}
    out = run(tmp_path, "seeds", "seeds=[0,1]")
    prov = json.loads((out / "provenance.json").read_text())
    assert len(prov["runs"]) == 4 and all(r["reused"] for r in prov["runs"].values())  # shared with the single runs
    table = pd.read_csv(out / "table3.csv", keep_default_na=False).set_index("method")
    star = table.loc["stargan"]
    assert star["seeds"] == "2" and " ± " in star["classification error % (mean ± sd)"]
    assert star["95% CI over seeds (t)"].startswith("[") and star["pooled 95% CI (Clopper-Pearson)"].startswith("[")
    assert table.loc["icgan", "McNemar p vs stargan (pooled over seeds)"] != "-"
    assert max(table.loc[m, "first (lowest error)"] for m in ("stargan", "icgan")) in ("1/2", "2/2")
    notes = (out / "table3.md").read_text()
    assert "Training seeds 0, 1" in notes and "(seed, input, target) triples" in notes
    # a single-seed table says its intervals leave the training seed out; one over seeds has the t-intervals instead
    assert "One training seed" not in notes
    assert "One training seed (seed=1): the 95% intervals and McNemar p are the test set's sampling error alone" in \
        (tmp_path / "single1" / "rafd_expression" / "table3.md").read_text()
    per_seed = pd.read_csv(out / "per_seed.csv", keep_default_na=False, dtype=str)
    assert list(zip(per_seed["seed"], per_seed["method"])) == [("0", "stargan"), ("0", "icgan"), ("1", "stargan"),
                                                                ("1", "icgan")]
    for seed, single in singles.items():  # each seed's rows are exactly what a single-seed run of that seed gives
        mine = per_seed[per_seed.seed == str(seed)].drop(columns="seed").reset_index(drop=True)
        assert mine.equals(single.iloc[:-1].reset_index(drop=True)), (mine, single)

    # learning curve: one point per kept checkpoint (steps 3, 6) and the final model (8), per method and seed
    out = run(tmp_path, "curve", "seeds=[0,1]", "curve_every=3")
    curve = pd.read_csv(out / "curve.csv")
    assert list(curve.columns[:3]) == ["method", "seed", "step"]
    assert sorted(curve.groupby(["method", "seed"])["step"].apply(list).map(tuple).unique()) == [(3, 6, 8)]
    final = curve[(curve.method == "stargan") & (curve.seed == 0) & (curve.step == 8)]["error %"].iloc[0]
    assert f"{final:.2f}" == singles[0].iloc[0]["classification error % [95% CI]"].split()[0]
    assert (out / "curve.png").stat().st_size > 10_000
    # the table's converged column is the plateau test on the seed-mean curve: points at 3, 6 and 8 put two points
    # (6 and 8) in the last quarter of training, too few to tell (after "did not learn (...)" where the error is 75%
    # or more, as it may be after 8 smoke steps)
    seeds_table = pd.read_csv(out / "table3.csv", keep_default_na=False).set_index("method")
    too_few = "unknown (2 curve point(s) in the last 25% of training, 3 needed)"
    for method in ("stargan", "icgan"):
        error = float(seeds_table.loc[method, "classification error % (mean ± sd)"].split()[0])
        cell = seeds_table.loc[method, "converged"]
        assert cell == (f"did not learn ({error:.1f}% error); plateau test: {too_few}" if error >= 75 else too_few)
    assert seeds_table.loc["stargan", "steps"] == "8" and seeds_table.loc["stargan", "G updates"] == "1"
    # `starbench tables` re-renders everything, the curve and per-seed rows included
    before = {f: (out / f).read_bytes() for f in ("table3.md", "per_seed.csv", "curve.csv", "curve.png")}
    res = CliRunner().invoke(cli, ["tables", "protocol=rafd_expression", f"results_dir={tmp_path / 'curve'}"])
    assert res.exit_code == 0, res.output
    assert {f: (out / f).read_bytes() for f in before} == before


def test_plan_lines_and_jobs_train_once_and_give_the_table_of_a_plain_run(tmp_path, monkeypatch):
    """The plan's train lines run one by one, and jobs=2 (a helper process trains runs from the back of the plan),
    each give the tables of a plain run. Everything at 1 thread: what jobs=2 gives each process on 2 cores."""
    monkeypatch.setattr(parallel, "cpu_cores", lambda: 2)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        plan_and_jobs(tmp_path)
    finally:
        torch.set_num_threads(before)


def same_tables(a, b):
    for f in ("table3.csv", "per_seed.csv", "per_target.csv"):  # all but the wall time of training
        x, y = (pd.read_csv(d / f, keep_default_na=False, dtype=str).drop(columns="train s", errors="ignore")
                for d in (a, b))
        assert x.equals(y), (f, x, y)


def plan_and_jobs(tmp_path):
    settings = FAST + ["seeds=[0,1]", f"run_dir={tmp_path / 'shared'}", f"results_dir={tmp_path / 'planned'}"]
    res = CliRunner().invoke(cli, ["plan", "protocol=rafd_expression", *settings])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stdout.splitlines() if line]
    assert len(lines) == 5 and all(line.startswith("starbench train ") for line in lines[:4])
    assert lines[4].startswith("starbench run protocol=rafd_expression")
    for line in lines[:4]:  # executed line by line, as a shell would
        done = CliRunner().invoke(cli, shlex.split(line)[1:])
        assert done.exit_code == 0 and "trained" in done.output, done.output
    done = CliRunner().invoke(cli, shlex.split(lines[4])[1:])
    assert done.exit_code == 0, done.output
    prov = json.loads((tmp_path / "planned" / "rafd_expression" / "provenance.json").read_text())
    assert len(prov["runs"]) == 4 and all(r["reused"] for r in prov["runs"].values())  # nothing trained twice
    plain = run(tmp_path, "plain", "seeds=[0,1]")  # `starbench run` alone, with its own run_dir
    same_tables(plain, tmp_path / "planned" / "rafd_expression")
    as_json = json.loads(CliRunner().invoke(cli, ["plan", "protocol=rafd_expression", *settings, "--format",
                                                  "json"]).stdout)
    assert [j["kind"] for j in as_json] == ["train"] * 4 + ["run"] and as_json[0]["seed"] == 0
    assert {j["method"] for j in as_json[:4]} == {"stargan", "icgan"} and as_json[0]["run_dir"] in lines[0]

    # a helper process trains a run of the plan exactly as the protocol would (the protocol finds it finished)
    settings = FAST + ["seeds=[0,1]", f"run_dir={tmp_path / 'jobs_runs'}", f"results_dir={tmp_path / 'jobs'}"]
    helpers = parallel.Helpers(trained_jobs(resolve(settings + ["protocol=rafd_expression"]))[-1:], 1, 1)
    helpers.start()
    helpers.join()
    assert not helpers.failed
    # ... and, inside this side of a command, a provenance says so: the protocol finds the run finished, not reused
    back = trained_jobs(resolve(settings + ["protocol=rafd_expression"]))[-1]
    folder = str(run_folder(back.cfg, back.model_name, back.fp))
    assert back.name == "icgan" and back.seed == 1 and (Path(folder) / "checkpoint.pt").is_file()
    assert parallel.as_this_command_saw_it({"reused": True, "run_dir": folder}) == {
        "reused": False, "run_dir": folder, "trained_by": "a helper process of this command"}
    # jobs=2: the protocol runs front to back while a helper process trains from the back; who trains which run
    # is a race, the tables are not
    res = CliRunner().invoke(cli, ["run", "protocol=rafd_expression", *settings, "jobs=2"])
    assert res.exit_code == 0, res.output
    assert torch.get_num_threads() == 1  # the command gives the process its threads back
    assert "jobs=2: 4 training run(s), 1 thread(s) per process, 1 helper process(es)" in res.output, res.output
    prov = json.loads((tmp_path / "jobs" / "rafd_expression" / "provenance.json").read_text())
    assert prov["runs"]["icgan (seed 1)"]["reused"]  # trained before the command
    by_helper = re.findall(r"helper process: trained (\S+ \(seed \d\))", res.output)  # a race: maybe none
    for name, info in prov["runs"].items():  # a run the command's helper trained is not 'reused'
        assert (info["reused"], info.get("trained_by")) == ((False, "a helper process of this command")
                                                            if name in by_helper else (name == "icgan (seed 1)", None))
    assert {k: prov["numerical_path"][k] for k in ("jobs", "threads_per_process", "training")} == {
        "jobs": 2, "threads_per_process": 1, "training": "bf16 autocast" if cpu_has_bf16() else "fp32"}
    same_tables(plain, tmp_path / "jobs" / "rafd_expression")
    assert " jobs=" not in " ".join(j["command"] for j in plan_jobs(settings + ["protocol=rafd_expression"])[:-1])
    assert run_key(resolve(FAST + ["jobs=2"]), "stargan", "fp") == run_key(resolve(FAST), "stargan", "fp")
    with pytest.raises(StarbenchError, match="'train.model_batch_size.icgan': 0; expected a batch of 1 or more"):
        resolve(FAST + ["train.model_batch_size.icgan=0"])
    # a model's own batch size is the run a data.batch_size of that size trains; another model's changes nothing
    assert run_key(resolve(FAST + ["train.model_batch_size.icgan=4"]), "icgan", "fp") == run_key(
        resolve(FAST + ["data.batch_size=4"]), "icgan", "fp") != run_key(resolve(FAST), "icgan", "fp")
    for own in ("train.model_steps.icgan=9", "train.model_decay_from.icgan=1.0",
                "train.model_batch_size.icgan=4"):  # another model's budget: same run
        assert run_key(resolve(FAST + [own]), "stargan", "fp") == run_key(resolve(FAST), "stargan", "fp")
        assert run_key(resolve(FAST + [own]), "icgan", "fp") != run_key(resolve(FAST), "icgan", "fp")
    with pytest.raises(StarbenchError, match="jobs=0: expected a whole number of processes, 1 or more"):
        with parallel.side_by_side(resolve(FAST + ["jobs=0"]), PROTOCOLS.get("rafd_expression")):
            pass


def test_the_protocol_scores_finished_runs_while_another_process_trains_one(tmp_path, monkeypatch):
    """A run whose folder another process holds (a helper training it) is scored after the runs that are ready, and
    the results keep the sources' order; with nothing held the order is the sources' own."""
    cfg = resolve(FAST + [f"run_dir={tmp_path / 'runs'}", "seeds=[0,1]"])
    sources = trained_jobs(cfg)  # stargan 0, icgan 0, stargan 1, icgan 1
    ev = Evaluation(cfg, "rafd_expression", own_steps=0)
    order = []
    helper = FileLock(str(sources[1].run_folder() / LOCK_FILE))

    def score(task, source, metrics, what, on_ready=None, summarize=None):
        order.append(sources.index(source))
        if len(order) == 3:  # the helper finishes while this process scores the others
            helper.release()
        return source

    monkeypatch.setattr(ev, "score", score)
    assert ev.score_all(None, sources, None, "") == sources and order == [0, 1, 2, 3]
    sources[1].run_folder().mkdir(parents=True)
    helper.acquire()
    order.clear()
    assert ev.score_all(None, sources, None, "") == sources
    assert order == [0, 2, 3, 1] and not helper.is_locked


def test_bad_seeds_curves_and_plans(tmp_path):
    with pytest.raises(StarbenchError, match="'seeds': an empty list"):
        resolve(["seeds=[]"])
    with pytest.raises(StarbenchError, match="'seeds': seed 1 is given twice"):
        resolve(["seeds=[0,1,1]"])
    with pytest.raises(StarbenchError, match="'curve_every': 0; expected a positive"):
        resolve(["curve_every=0"])
    with pytest.raises(StarbenchError, match="'curve_every': 8 is not shorter than the training of stargan"):
        run(tmp_path, "r", "curve_every=8")
    res = CliRunner().invoke(cli, ["run", "protocol=rafd_expression", "seeds=[]"])
    assert res.exit_code == 2 and "empty list" in res.output
    res = CliRunner().invoke(cli, ["plan", "protocol=params"])
    assert res.exit_code == 0 and "trains nothing" in res.stderr
    assert res.stdout.strip() == "starbench run protocol=params"
    res = CliRunner().invoke(cli, ["plan", "protocol=rafd_expression", "models=[]", f"translations=[{tmp_path}]"])
    assert res.exit_code == 0 and "trains nothing" in res.stderr and res.stdout.count("starbench ") == 1
    res = CliRunner().invoke(cli, ["plan", "scale=smoke"])
    assert res.exit_code == 2 and "which protocol?" in res.output


def test_a_plan_line_carries_the_protocols_dataset_budget():
    """Joint training resolves StarGAN's ``"demo/joint"`` budget for SNG too, which trains on RaFD: SNG's train line
    (``data=rafd``) alone would resolve the plain demo budget and name another run, so the plan adds the protocol's
    own; a protocol whose budget the line resolves anyway gets nothing added."""
    class Source:
        model_name = "stargan"

    joint, rafd_line = resolve(["protocol=joint_training"]), resolve(["data=rafd", "model=stargan"])
    assert joint.train.model_steps.stargan != rafd_line.train.model_steps.stargan
    Source.cfg = joint
    added = protocol_budget(Source, rafd_line)
    assert added == [f"train.model_steps.stargan={joint.train.model_steps.stargan}"]
    assert resolve(["data=rafd", "model=stargan", *added]).train.model_steps.stargan == joint.train.model_steps.stargan
    Source.cfg = resolve(["protocol=rafd_expression"])
    assert protocol_budget(Source, rafd_line) == []
