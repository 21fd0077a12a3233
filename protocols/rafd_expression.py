"""Protocol ``rafd_expression``: the paper's Table 3 (REFERENCE §4), regenerated.

Steps (each expensive one keyed by a hash of what determines it, and reused on a re-run):
1. data: RaFD (``data.root``, raw names or train/test folders; absent: the synthetic set), decoded once;
2. classifier: ResNet-18 from scratch on the train split (``classifier.*``); its error on the real
   test images is the "real images" row;
3. sources of translations (``starbench.evaluate``): each method of ``models=[...]`` (default
   StarGAN, DIAT, CycleGAN, IcGAN, or any registered model) trained by the Trainer into
   ``run_dir/models/<model>-rafd-<key>/`` or loaded from there, ``name@PATH`` weights (a starbench
   checkpoint, the public StarGAN format), translate-only plug-ins, and ``translations=[DIR]``
   folders of images made elsewhere (named as ``starbench export`` says);
4. the task: every neutral test image to each of the 7 other expressions;
5. metrics, the same for every source: classification error (95% Clopper-Pearson interval) and McNemar's paired test against
   StarGAN; FID per target expression (generated vs real test images of that expression, averaged
   over the 7 targets, as StarGAN v2 does) when Inception weights are available; the Fréchet
   distance on the classifier's own features (always; not comparable with FID); L1/PSNR/SSIM
   against the real photo of the same subject, gaze and angle in the target expression;
6. report: ``results/rafd_expression/table3.{csv,md,tex}``, ``per_target.csv``, ``translations.png``
   and ``provenance.json``, written together or not at all.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import torch

from starbench.data import LoadedData, load_data
from starbench.data.rafd import rafd_domains
from starbench.errors import StarbenchError
from starbench.evaluate.core import Evaluation
from starbench.evaluate.score import Judge, Scores
from starbench.evaluate.seeds import by_method, distance_cells, error_cells, firsts, mean_of, paired_over_seeds
from starbench.evaluate.sources import seeds_of
from starbench.evaluate.task import Task, uint8_rows
from starbench.metrics.stats import error_rate, mcnemar
from starbench.paper import TABLE3_ERROR, params_text
from starbench.progress import console
from starbench.registry import register_protocol
from starbench.report import ProtocolResult, write_table
from starbench.protocols.common import (budget_note, method_jobs, classify, failed_row, figure_arrays, fmt, origin_notes,
                                       render_curve, runs_provenance, save_grid_figure, seed_records, seeds_notes,
                                       task_classifier)

NAME = "rafd_expression"
SOURCE = "neutral"
CHANCE_ERROR = 7 / 8  # an 8-way classifier guessing
NOT_LEARNED = 0.75  # error at or above this: the method did not learn at this scale


def check_inputs(cfg: Any) -> None:
    """Fail before any work on settings that cannot run."""
    if cfg.data.name != "rafd":
        raise StarbenchError(f"protocol {NAME} runs on RaFD: data=rafd (got data={cfg.data.name})")


TABLE3_COLUMNS = ["method", "classification error % [95% CI]", "paper error %", "FID (mean of 7 targets)",
                  "classifier Frechet (not FID)", "L1 to ground truth", "PSNR dB", "SSIM", "McNemar p vs stargan",
                  "parameters", "paper parameters"]


# ------------------------------------------------------------------------------------ task and classifier
def expression_task(data: LoadedData, protocol: str = NAME) -> Task:
    """Every neutral test image to each of the 7 other expressions; ground truth: the same subject, gaze and
    angle photographed with the target expression."""
    dom = rafd_domains()
    test = data.split("test")
    expr = np.array([r.meta.get("expression") for r in data.index.records])
    inputs = test[expr[test] == SOURCE]
    if len(inputs) < 2:
        raise StarbenchError(f"RaFD data in {data.index.root}: {len(inputs)} neutral test image(s); the protocol "
                             f"translates neutral test images and needs at least 2")
    targets = [e for e in dom.names if e != SOURCE]
    labels = np.stack([dom.label(t) for t in targets])
    meta = [r.meta for r in data.index.records]
    where = {(m.get("subject"), m.get("gaze"), m.get("angle"), m.get("expression")): i
             for i, m in enumerate(meta) if m.get("subject") is not None}
    truth = np.array([[where.get((meta[n].get("subject"), meta[n].get("gaze"), meta[n].get("angle"), t), -1)
                       for t in targets] for n in inputs])
    return Task(protocol, data, dom, inputs, targets, np.broadcast_to(labels, (len(inputs),) + labels.shape).copy(),
                np.ones((len(inputs), len(targets)), bool), [test[expr[test] == t] for t in targets], truth)


def build_task(cfg: Any) -> Task:
    check_inputs(cfg)
    return expression_task(load_data(cfg, show_progress=bool(cfg.train.progress)))


def expression_classifier(cfg: Any, data: LoadedData, device: torch.device) -> tuple[torch.nn.Module, dict, Path]:
    return task_classifier(cfg, data, device, "expression", "onehot", "expression classifier (ResNet-18)")


def expression_judge(clf: torch.nn.Module) -> Judge:
    """A translation is wrong when the classifier does not see the target expression in it."""
    return lambda fake, src, tgt, t: {"wrong": classify(clf, fake) != tgt.argmax(1)}


def method_description(task: Task) -> str:
    return f"{task.n} inputs x {len(task.columns)} targets"


def per_target_rows(scores: Scores, task: Task, with_seed: bool = False) -> list[dict[str, Any]]:
    seed = {"seed": "-" if scores.seed is None else scores.seed} if with_seed else {}
    if scores.diverged:
        return [{"method": scores.name, **seed, "target": name, "error %": scores.status, "n generated": 0,
                 "n real": int(len(task.reference_rows[t])), "FID": "n/a", "classifier Frechet": "n/a"}
                for t, name in enumerate(task.columns)]
    wrong = scores.outcomes["wrong"]
    return [{"method": scores.name, **seed, "target": name,
             "error %": round(100 * float(wrong[task.rows_of(t), t].mean()), 2),
             "n generated": int(len(task.rows_of(t))), "n real": int(len(task.reference_rows[t])),
             "FID": round(scores.fid[t], 3) if scores.fid[t] is not None else "n/a",
             "classifier Frechet": round(scores.frechet[t], 4)} for t, name in enumerate(task.columns)]


def expression_summary(scores: Scores, task: Task) -> dict[str, Optional[float]]:
    """The learning curve's metrics: classification error, classifier Fréchet and FID (None without weights)."""
    return {"error %": 100 * float(scores.outcomes["wrong"][task.valid].mean()),
            "classifier Frechet": mean_of(scores.frechet), "FID": mean_of(scores.fid)}


def seeds_table3(cfg: Any, results: list[Scores], task: Task, real_err: Any
                 ) -> tuple[list[dict[str, Any]], list[str], list[dict[str, Any]]]:
    """Table 3 over training seeds: mean ± sd of every metric, the error's intervals over seeds and pooled, the
    paired test over (seed, input, target) triples, and how often each method ranked first; plus every seed's
    own Table 3 rows (per_seed.csv, the same rows a single-seed run of that seed gives)."""
    seeds = seeds_of(cfg)
    per_seed = []
    for seed in seeds:
        rows, _ = table3_rows([r for r in results if r.seed in (seed, None)], task, real_err)
        per_seed += [{"seed": seed, **row} for row in rows[:-1]]
    groups = by_method(results)
    wrong = lambda r: r.outcomes["wrong"][task.valid]  # noqa: E731
    error = lambda r: 100 * float(wrong(r).mean())  # noqa: E731
    first = firsts(groups, error)
    rows, notes = [], []
    for name, rs in groups.items():
        ok, failed = [r for r in rs if not r.diverged], [r for r in rs if r.diverged]
        paper_err = TABLE3_ERROR.get(name)
        test_vs = paired_over_seeds(groups["stargan"], rs, wrong) if "stargan" in groups and name != "stargan" else None
        errs = [error(r) for r in ok]
        cells = error_cells(rs, wrong)
        rows.append({
            "method": name, "seeds": str(len(ok)) + (f" ({len(failed)} diverged)" if failed else ""),
            **cells, "paper error %": paper_err.text() if paper_err else "-", **distance_cells(rs, task.valid),
            "McNemar p vs stargan (pooled over seeds)": fmt(test_vs.p_value, 4) if test_vs else "-",
            "first (lowest error)": first[name],
            "parameters": ok[0].info.get("parameters", "-") if ok else "n/a",
            "paper parameters": params_text(name) or "-",
        })
        if ok and np.mean(errs) >= 100 * NOT_LEARNED:
            notes.append(f"{name} did not learn the task at this scale (mean error {np.mean(errs):.1f}%, guessing "
                         f"gives {100 * CHANCE_ERROR:.1f}%); its row is reported as measured.")
    rows.append({**{k: "-" for k in rows[0]}, "method": "real images",
                 "classification error % (mean ± sd)": real_err.text(), "paper error %": TABLE3_ERROR["real"].text()})
    notes += seeds_notes(cfg, "the lowest classification error")
    return rows, notes, per_seed


def table3_rows(results: list[Scores], task: Task, real_err: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Table 3's rows (one per source, then real images) and the notes on methods that did not learn."""
    wrong_by = {r.name: r.outcomes["wrong"][task.valid] for r in results if not r.diverged}
    ref = "stargan" if "stargan" in wrong_by else None
    rows, notes = [], []
    for r in results:
        paper_err = TABLE3_ERROR.get(r.name)
        if r.diverged:
            known = {"paper error %": paper_err.text() if paper_err else "-", "McNemar p vs stargan": "-",
                     "paper parameters": params_text(r.name) or "-"}
            rows.append(failed_row(r, TABLE3_COLUMNS, TABLE3_COLUMNS[1], **known))
            continue
        err = error_rate(wrong_by[r.name])
        test_vs = mcnemar(wrong_by[ref], wrong_by[r.name]) if ref and r.name != ref else None
        fid = mean_of(r.fid)
        rows.append({
            "method": r.name,
            "classification error % [95% CI]": err.text(),
            "paper error %": paper_err.text() if paper_err else "-",
            "FID (mean of 7 targets)": fmt(fid) if fid is not None else "n/a",
            "classifier Frechet (not FID)": fmt(mean_of(r.frechet), 3),
            "L1 to ground truth": fmt(r.truth_mean("l1", task.valid), 4),
            "PSNR dB": fmt(r.truth_mean("psnr", task.valid)),
            "SSIM": fmt(r.truth_mean("ssim", task.valid), 3),
            "McNemar p vs stargan": fmt(test_vs.p_value, 4) if test_vs else "-",
            "parameters": r.info.get("parameters", "-"),
            "paper parameters": params_text(r.name) or "-",
        })
        if err.rate >= NOT_LEARNED:
            notes.append(f"{r.name} did not learn the task at this scale (error {100 * err.rate:.1f}%, "
                         f"guessing gives {100 * CHANCE_ERROR:.1f}%); its row is reported as measured.")
    rows.append({"method": "real images", "classification error % [95% CI]": real_err.text(),
                 "paper error %": TABLE3_ERROR["real"].text(), "FID (mean of 7 targets)": "-",
                 "classifier Frechet (not FID)": "-", "L1 to ground truth": "-", "PSNR dB": "-", "SSIM": "-",
                 "McNemar p vs stargan": "-", "parameters": "-", "paper parameters": "-"})
    return rows, notes


def table3_notes(cfg: Any, ev: Evaluation, task: Task, real_err: Any, results: list[Scores]) -> list[str]:
    """How the table was made (placed before the per-method notes)."""
    weights = ev.weights
    data = task.data
    return [
        f"scale={cfg.scale}, {task.size} px; data: {data.index.description} ({data.index.layout}); "
        f"{task.n} neutral test inputs x {len(task.columns)} targets = {int(task.valid.sum())} translations per "
        f"method; real-image row: {real_err.n} test images.",
        "Classification error: the protocol's ResNet-18 (trained from scratch on the train split) labels each "
        "translation; 95% Clopper-Pearson intervals; McNemar: exact test on the same inputs against StarGAN.",
        ("FID: " + (f"torch-fidelity InceptionV3 ({weights.source}"
                    + (", standard weights)" if weights.standard else ", NOT the standard weights: not comparable "
                       "with published FID)")
                    if weights.available else "n/a: " + str(weights.problem)))
        + "; per target expression against the real test images of that expression, averaged over the 7 "
          "targets; small N biases FID upwards.",
        "classifier Frechet: the same Fréchet distance on the classifier's 512-d features (torch-fidelity with a "
        "registered extractor); needs no download; not comparable with FID.",
        "L1/PSNR/SSIM: against the real photo of the same subject, gaze and angle in the target expression "
        f"({task.n_paired} pairs per method).",
        "Paper numbers marked (recalled) were not re-checked against the paper's text.",
    ]


def dataset_provenance(data: LoadedData, fp: str) -> dict[str, Any]:
    return {"data": data.index.description, "layout": data.index.layout, "fingerprint": fp, "notes": data.index.notes,
            "split": {s: int(len(data.split(s))) for s in data.index.splits()}}


# ------------------------------------------------------------------------------------ report
def render(record: dict[str, Any], arrays: dict[str, np.ndarray], folder: Path) -> None:
    """Tables and figure from the run record (also what ``starbench tables`` calls)."""
    write_table(pd.DataFrame(record["table3"]), folder, "table3",
                caption="Table 3 (RaFD): expression translation from neutral", notes=record["notes"])
    pd.DataFrame(record["per_target"]).to_csv(folder / "per_target.csv", index=False)
    save_grid_figure(arrays, record["targets"], folder)
    render_curve(record, folder)


# ------------------------------------------------------------------------------------ the protocol
@register_protocol(NAME, "RaFD expression translation (the paper's Table 3): classifier error, FID, paired GT, params",
                   render=render, task=build_task, jobs=method_jobs, data="rafd")
def run(cfg: Any) -> ProtocolResult:
    check_inputs(cfg)
    ev = Evaluation(cfg, NAME, own_steps=4)

    data, fp, task, sources = ev.load(expression_task)
    test = data.split("test")

    with ev.step("expression classifier"):
        clf, clf_info, extractor_file = expression_classifier(cfg, data, ev.device)
        real_wrong = classify(clf, uint8_rows(data, test)) != data.labels[test].argmax(1)
        real_err = error_rate(real_wrong)

    metrics = ev.metrics(expression_judge(clf), extractor_file)
    results = [ev.score(task, s, metrics, method_description(task), summarize=expression_summary) for s in sources]

    with ev.step("metrics"):
        if cfg.seeds is None:
            table_rows, notes = table3_rows(results, task, real_err)
            per_seed = None
        else:
            table_rows, notes, per_seed = seeds_table3(cfg, results, task, real_err)

    with ev.step("report"):
        two_domain = any(r.info.get("instances", 1) > 1 for r in results if r.info["kind"] == "trained")
        notes = (table3_notes(cfg, ev, task, real_err, results) + notes
                 + budget_note(results, ". Two-domain methods train all their instances in each step." if two_domain
                               else ".") + origin_notes(results))
        diat = next((r.info for r in results if r.name == "diat" and r.info.get("identity_network")), None)
        if diat:
            notes.append(f"DIAT identity network F: {diat['identity_network'].get('F')}.")
        record = {"protocol": NAME, "table3": table_rows, "notes": notes,
                  "per_target": [row for r in results for row in per_target_rows(r, task, cfg.seeds is not None)],
                  "targets": task.columns, **seed_records(per_seed, results)}
        arrays = {"inputs": task.inputs[:min(cfg.grid_inputs, task.n)].numpy(), **figure_arrays(results)}
        folder = ev.write(record, arrays, render, dataset=dataset_provenance(data, fp),
                          n={"neutral_test_inputs": task.n, "targets": task.columns,
                             "translations_per_method": int(task.valid.sum()), "real_test_images": int(real_err.n),
                             "paired_per_method": task.n_paired},
                          classifier={**clf_info, "real_test_error": real_err.rate}, runs=runs_provenance(results))
    table = pd.DataFrame(table_rows)
    console.print(table.to_markdown(index=False), highlight=False, soft_wrap=True)
    return ProtocolResult(NAME, folder, {"table3": table, "per_target": pd.DataFrame(record["per_target"])}, ev.seconds)
