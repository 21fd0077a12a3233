"""A minimal protocol to copy when you add an evaluation of your own: "does the method make a neutral face happy?"

A protocol is four parts, each a block below; the shared machinery (``starbench.evaluate``) does the rest:
training or loading every method of ``models=[...]`` once per seed, folders of translations and weight files as
sources, the steps and their timing, the results folder written whole or not at all, provenance, learning curves.

- the task: which inputs, which target for each, the real references (distribution metrics) and, where the data
  has one, the ground-truth photo of each translation;
- the judge: what says, per translation, whether it shows its target (here the protocol's expression classifier);
- the table: one row per method, one builder for one seed or several (``protocols.tables.Method``);
- the figure: each input and its translation, one block per method.

Run it as ``starbench run protocol=starbench.protocols.template:run scale=smoke`` (your copy:
``protocol=my_lab.protocols:run``); it writes ``results/template/``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from starbench.data import LoadedData, load_data
from starbench.data.rafd import rafd_domains
from starbench.errors import StarbenchError
from starbench.evaluate.classifiers import classify, task_classifier
from starbench.evaluate.core import Evaluation
from starbench.evaluate.score import Judge
from starbench.evaluate.sources import trained_jobs
from starbench.evaluate.task import Task
from starbench.protocols.figures import figure_arrays, save_grid_figure
from starbench.protocols.tables import methods, origin_notes
from starbench.registry import register_protocol
from starbench.report import ProtocolResult, write_table

NAME = "template"
SOURCE, TARGET = "neutral", "happy"


# ------------------------------------------------------------------------------------------------ the task
def happy_task(data: LoadedData) -> Task:
    """Every neutral test face, asked to look happy; the ground truth is the same subject's happy photo."""
    dom = rafd_domains()
    test = data.split("test")
    meta = [r.meta for r in data.index.records]
    expression = np.array([m.get("expression") for m in meta])
    inputs = test[expression[test] == SOURCE]
    if len(inputs) < 2:
        raise StarbenchError(f"protocol {NAME} needs at least 2 neutral test faces; {data.index.root} has "
                             f"{len(inputs)}")
    where = {(m.get("subject"), m.get("gaze"), m.get("angle"), m.get("expression")): i for i, m in enumerate(meta)}
    truth = np.array([[where.get((meta[i].get("subject"), meta[i].get("gaze"), meta[i].get("angle"), TARGET), -1)]
                      for i in inputs])
    target = np.broadcast_to(dom.label(TARGET), (len(inputs), 1, len(dom.names))).copy()
    return Task(NAME, data, dom, inputs, [TARGET], target, np.ones((len(inputs), 1), bool),
                [test[expression[test] == TARGET]], truth)


# ------------------------------------------------------------------------------------------------ the judge
def happy_judge(classifier: Any) -> Judge:
    """A translation is right when the classifier sees the target expression in it."""
    return lambda fake, source, target, column: {"right": classify(classifier, fake) == target.argmax(1)}


# ------------------------------------------------------------------------------------------------ the table
def happy_table(cfg: Any, results: list, task: Task) -> list[dict[str, Any]]:
    seeded = cfg.seeds is not None
    rows = []
    for m in methods(results, seeded):
        rows.append({"method": m.name, **({"seeds": m.seeds()} if seeded else {}),
                     "looks happy %": m.number(lambda r: 100 * float(r.outcomes["right"][task.valid].mean()), 1),
                     "L1 to the happy photo": m.number(lambda r: r.truth_mean("l1", task.valid), 4),
                     "classifier Frechet": m.number(lambda r: r.frechet[0], 3)})
    return rows


# ------------------------------------------------------------------------------------------------ the report
def render(record: dict[str, Any], arrays: dict[str, np.ndarray], folder: Path) -> None:
    """The table and the figure from the run record (``starbench tables`` calls this too)."""
    write_table(pd.DataFrame(record["table"]), folder, "happy", caption="Neutral -> happy", notes=record["notes"])
    save_grid_figure(arrays, [TARGET], folder)


@register_protocol(NAME, "a minimal protocol to copy: neutral RaFD test faces made happy", render=render,
                   task=lambda cfg: happy_task(load_data(cfg,
                                                         bool(cfg.train.progress))), jobs=trained_jobs, data="rafd")
def run(cfg: Any) -> ProtocolResult:
    ev = Evaluation(cfg, NAME, own_steps=2)
    data, fingerprint, task, sources = ev.load(happy_task)
    with ev.step("expression classifier"):
        classifier, info, extractor = task_classifier(cfg, data, ev.device, "expression", "onehot",
                                                   "expression classifier (ResNet-18)")
    metrics = ev.metrics(happy_judge(classifier), info["judge_key"], extractor)
    results = ev.score_all(task, sources, metrics, f"{task.n} inputs")
    with ev.step("report"):
        record = {"protocol": NAME, "table": happy_table(cfg, results, task),
                  "notes": [f"{task.n} neutral test faces of {data.index.description}."] + origin_notes(results)}
        arrays = {"inputs": task.inputs[:min(cfg.grid_inputs, task.n)].numpy(), **figure_arrays(results)}
        folder = ev.write(record, arrays, render, data={"description": data.index.description,
                                                        "fingerprint": fingerprint})
    return ProtocolResult(NAME, folder, {"happy": pd.DataFrame(record["table"])}, ev.seconds)
