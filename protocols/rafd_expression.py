"""Protocol ``rafd_expression``: the paper's Table 3, regenerated.

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
5. metrics, the same for every source: classification error (95% Clopper-Pearson interval) and
   McNemar's paired test against StarGAN; FID per target expression (generated vs real test images
   of that expression, averaged over the 7 targets, as StarGAN v2 does) when Inception weights are
   available; the Fréchet distance on the classifier's own features (always; not comparable with FID); L1/PSNR/SSIM
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
from omegaconf import OmegaConf

from starbench.data import LoadedData, load_data
from starbench.data.rafd import rafd_domains
from starbench.errors import StarbenchError
from starbench.evaluate.classifiers import classify, task_classifier
from starbench.evaluate.core import Evaluation
from starbench.evaluate.curves import render_curve
from starbench.evaluate.score import Judge, Scores
from starbench.evaluate.seeds import by_method, firsts, mean_of
from starbench.evaluate.sources import seeds_of, trained_jobs
from starbench.evaluate.task import Task, uint8_rows
from starbench.metrics.distances import CLASSIFIER, INCEPTION
from starbench.metrics.stats import error_rate
from starbench.paper import TABLE3_ERROR, params_text
from starbench.progress import console
from starbench.protocols.figures import figure_arrays, save_grid_figure
from starbench.protocols.tables import (
    budget_note,
    convergence_notes,
    distribution_labels,
    distribution_notes,
    judge_features,
    judge_words,
    methods,
    one_seed_note,
    origin_notes,
    runs_provenance,
    seed_records,
    seeds_notes,
)
from starbench.registry import register_protocol
from starbench.report import ProtocolResult, write_table

NAME = "rafd_expression"
FD_COLUMNS = {INCEPTION: "FID (mean of 7 targets)", CLASSIFIER: "classifier Frechet (not FID)"}
SOURCE = "neutral"
CHANCE_ERROR = 7 / 8  # an 8-way classifier guessing
NOT_LEARNED = 0.75  # error at or above this: the method did not learn at this scale


def check_inputs(cfg: Any) -> None:
    """Fail before any work on settings that cannot run."""
    if cfg.data.name != "rafd":
        raise StarbenchError(f"protocol {NAME} runs on RaFD: data=rafd (got data={cfg.data.name})")


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
    """Per method and target expression: the error and every distribution metric of that target's set."""
    seed = {"seed": "-" if scores.seed is None else scores.seed} if with_seed else {}
    wrong = scores.outcomes.get("wrong")
    return [{"method": scores.name, **seed, "target": name,
             "error %": scores.status or round(100 * float(wrong[task.rows_of(t), t].mean()), 2),
             "n generated": 0 if scores.diverged else int(len(task.rows_of(t))),
             "n real": int(len(task.reference_rows[t])), **target_distances(scores, t)}
            for t, name in enumerate(task.columns)]


def target_distances(scores: Scores, t: int) -> dict[str, Any]:
    """Column ``t``'s FD and KID x1000 (with its subset sd) per extractor, and the classifier's precision/recall."""
    def value(label: str, metric: str, digits: int, scale: float = 1.0) -> Any:
        v = scores.dist(label, metric)[t]
        return "n/a" if v is None else round(scale * v, digits)

    out: dict[str, Any] = {}
    for label in [INCEPTION, CLASSIFIER] + [k for k in scores.distances if k not in (INCEPTION, CLASSIFIER)]:
        prefix = "" if label == INCEPTION else f"{label} "
        out[{INCEPTION: "FID", CLASSIFIER: "classifier Frechet"}.get(label, f"{label} FD")] = \
            value(label, "fd", 3 if label == INCEPTION else 4)
        out[f"{prefix}KID x1000"] = value(label, "kid", 3, 1000)
        out[f"{prefix}KID sd x1000"] = value(label, "kid_sd", 3, 1000)
    out["precision"] = value(CLASSIFIER, "precision", 4)
    out["recall"] = value(CLASSIFIER, "recall", 4)
    return out


def expression_summary(scores: Scores, task: Task) -> dict[str, Optional[float]]:
    """The learning curve's metrics: classification error, classifier Fréchet, FID (None without weights) and the
    L1 distance to the ground-truth photo."""
    kid = scores.kid(CLASSIFIER)[0]
    return {"error %": 100 * float(scores.outcomes["wrong"][task.valid].mean()),
            "classifier Frechet": mean_of(scores.frechet), "FID": mean_of(scores.fid),
            "classifier KID x1000": None if kid is None else 1000 * kid,
            "L1 to ground truth": scores.truth_mean("l1", task.valid)}


def table3(cfg: Any, results: list[Scores], task: Task, real_err: Any
           ) -> tuple[list[dict[str, Any]], list[str], Optional[list[dict[str, Any]]]]:
    """Table 3: one row per method, then real images; and the notes on methods that did not learn.

    One seed: each method's error with its Clopper-Pearson interval, its distances, McNemar's exact test against
    StarGAN on the same inputs. Several (``seeds=[...]``): mean ± sd over seeds of every metric, the error's
    t-interval over seeds beside the pooled interval, McNemar pooled over (seed, input, target) triples, how often
    each method ranked first; and every seed's own rows (per_seed.csv: what a single-seed run of it gives)."""
    seeded = cfg.seeds is not None
    wrong = lambda r: r.outcomes["wrong"][task.valid]  # noqa: E731
    error = lambda r: 100 * float(wrong(r).mean())  # noqa: E731
    groups = by_method(results)
    first = firsts(groups, error) if seeded else {}
    rows, notes = [], []
    for m in methods(results, seeded):
        paper_err = TABLE3_ERROR.get(m.name)
        row: dict[str, Any] = {"method": m.name, **({"seeds": m.seeds()} if seeded else {}), **m.error(wrong),
                               **m.budget(wrong, 100 * NOT_LEARNED),
                               "paper error %": paper_err.text() if paper_err else "-",
                               **m.distribution(distribution_labels(cfg), FD_COLUMNS),
                               "L1 to ground truth": m.number(lambda r: r.truth_mean("l1", task.valid), 4),
                               "PSNR dB": m.number(lambda r: r.truth_mean("psnr", task.valid), 2),
                               "SSIM": m.number(lambda r: r.truth_mean("ssim", task.valid), 3)}
        row.update(m.mcnemar_vs(groups, wrong))
        if seeded:
            row["first (lowest error)"] = first[m.name]
        row.update({"parameters": m.ok[0].info.get("parameters", "-") if m.ok else "n/a",
                    "paper parameters": params_text(m.name) or "-"})
        rows.append(row)
        errs = [error(r) for r in m.ok]
        if errs and np.mean(errs) >= 100 * NOT_LEARNED:
            what = f"mean error {np.mean(errs):.1f}%" if seeded else f"error {errs[0]:.1f}%"
            notes.append(f"{m.name} did not learn the task at this scale ({what}, guessing gives "
                         f"{100 * CHANCE_ERROR:.1f}%); its row is reported as measured.")
    error_column = "classification error % (mean ± sd)" if seeded else "classification error % [95% CI]"
    rows.append({**{k: "-" for k in rows[0]}, "method": "real images", error_column: real_err.text(),
                 "paper error %": TABLE3_ERROR["real"].text()})
    per_seed = None
    notes += one_seed_note(cfg, results)
    if seeded:
        notes += seeds_notes(cfg, "the lowest classification error")
        per_seed = [{"seed": seed, **row} for seed in seeds_of(cfg) for row in
                    table3(OmegaConf.merge(cfg, {"seeds": None}), [r for r in results if r.seed in (seed, None)],
                           task, real_err)[0][:-1]]
    return rows, notes, per_seed


def table3_notes(cfg: Any, ev: Evaluation, task: Task, real_err: Any, results: list[Scores]) -> list[str]:
    """How the table was made (placed before the per-method notes)."""
    weights = ev.weights
    data = task.data
    return [
        f"scale={cfg.scale}, {task.size} px; data: {data.index.description} ({data.index.layout}); "
        f"{task.n} neutral test inputs x {len(task.columns)} targets = {int(task.valid.sum())} translations per "
        f"method; real-image row: {real_err.n} test images.",
        f"Classification error: each translation is labelled by {judge_words(cfg)}; 95% Clopper-Pearson intervals; "
        "McNemar: exact test on the same inputs against StarGAN.",
        ("FID: " + (f"torch-fidelity InceptionV3 ({weights.source}"
                    + (", standard weights)" if weights.standard else ", NOT the standard weights: not comparable "
                       "with published FID)")
                    if weights.available else "n/a: " + str(weights.problem)))
        + "; per target expression against the real test images of that expression, averaged over the 7 "
          "targets; small N biases FID upwards.",
        f"classifier Frechet: the same Fréchet distance on {judge_features(cfg)} (torch-fidelity with a "
        "registered extractor); needs no download; not comparable with FID.",
        *distribution_notes(cfg, "the expression's translations against its real test images"),
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
                   render=render, task=build_task, jobs=trained_jobs, data="rafd")
def run(cfg: Any) -> ProtocolResult:
    check_inputs(cfg)
    ev = Evaluation(cfg, NAME, own_steps=4)

    data, fp, task, sources = ev.load(expression_task)
    test = data.split("test")

    with ev.step("expression classifier"):
        clf, clf_info, extractor_file = expression_classifier(cfg, data, ev.device)
        real_wrong = classify(clf, uint8_rows(data, test)) != data.labels[test].argmax(1)
        real_err = error_rate(real_wrong)

    metrics = ev.metrics(expression_judge(clf), clf_info["judge_key"], extractor_file)
    results = ev.score_all(task, sources, metrics, method_description(task), summarize=expression_summary)

    with ev.step("metrics"):
        table_rows, notes, per_seed = table3(cfg, results, task, real_err)

    with ev.step("report"):
        two_domain = any(r.info.get("instances", 1) > 1 for r in results if r.info["kind"] == "trained")
        notes = (table3_notes(cfg, ev, task, real_err, results) + notes
                 + convergence_notes(results, "classification error")
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
