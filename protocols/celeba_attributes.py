"""Protocol ``celeba_attributes``: an automatic stand-in for the paper's CelebA user study (Tables 1, 2).

The paper asked Amazon Mechanical Turk workers to pick the best of four outputs; no program can
re-run that. This protocol measures what a program can, on CelebA test images:

- an attribute classifier (ResNet-18, multi-label over the five attributes) trained on the train split;
- edits: hair colour to black / blond / brown, gender flipped, aged (young -> old), and the
  multi-attribute edits H+G, H+A, G+A, H+G+A (hair to the next colour in black -> blond -> brown ->
  black); inputs are test images with exactly one of the three hair colours (and young for edits
  that age); two-domain baselines chain their instances for multiple edits, as the paper did;
- per method and edit: target-attribute accuracy (the classifier finds every edited attribute as
  asked), preservation (it finds every other attribute unchanged), FID against real test images
  that carry the target attributes (same Inception weights resolution as rafd_expression), the
  classifier-feature Fréchet distance (not comparable with FID), and L1 to the input (identity proxy);
- ``results/celeba_attributes/table1.*`` (single edits) and ``table2.*`` (multiple) with the paper's
  vote percentages in their own columns, labelled as a human study these measures do not reproduce;
  ``translations.png`` like the paper's Figure 4.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd
import torch

from starbench.data import LoadedData, load_data
from starbench.data.batches import to_float
from starbench.errors import StarbenchError
from starbench.evaluate.classifiers import task_classifier
from starbench.evaluate.core import Evaluation
from starbench.evaluate.curves import render_curve
from starbench.evaluate.score import Judge, Scores
from starbench.evaluate.seeds import by_method, firsts, mean_of
from starbench.evaluate.sources import seeds_of, trained_jobs
from starbench.evaluate.task import Task, uint8_rows
from starbench.metrics.classifier import predict_logits
from starbench.metrics.distances import CLASSIFIER, INCEPTION
from starbench.paper import TABLE1_VOTES, TABLE2_VOTES
from starbench.protocols.figures import figure_arrays, save_grid_figure
from starbench.protocols.tables import (
    budget_note,
    convergence_notes,
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

NAME = "celeba_attributes"
ATTRS = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
HAIRS = ATTRS[:3]
HAIR_NAMES = {"Black_Hair": "black", "Blond_Hair": "blond", "Brown_Hair": "brown"}


def _hair(label: np.ndarray) -> int:
    return int(np.argmax(label[:3]))


def _next_hair(label: np.ndarray) -> int:
    return (_hair(label) + 1) % 3


def _set_hair(t: np.ndarray, h: int) -> None:
    t[:3] = 0
    t[h] = 1


# An edit: (name, group, edited attribute indices, applies to this input?, target label from input label)
Edit = tuple[str, str, list[int], Callable[[np.ndarray], bool], Callable[[np.ndarray], np.ndarray]]


def _edit(fn: Callable[[np.ndarray], None]) -> Callable[[np.ndarray], np.ndarray]:
    def apply(label: np.ndarray) -> np.ndarray:
        t = label.copy()
        fn(t)
        return t
    return apply


def _flip_gender(t: np.ndarray) -> None:
    t[3] = 1 - t[3]


def _age(t: np.ndarray) -> None:
    t[4] = 0


def edits() -> list[Edit]:
    out: list[Edit] = []
    for h, attr in enumerate(HAIRS):
        out.append((f"hair->{HAIR_NAMES[attr]}", "hair colour", [0, 1, 2], lambda lab, h=h: _hair(lab) != h,
                    _edit(lambda t, h=h: _set_hair(t, h))))
    out.append(("gender", "gender", [3], lambda lab: True, _edit(_flip_gender)))
    out.append(("aged", "aged", [4], lambda lab: lab[4] > 0.5, _edit(_age)))
    nh = lambda t: _set_hair(t, _next_hair(t))  # noqa: E731
    out.append(("H+G", "H+G", [0, 1, 2, 3], lambda lab: True, _edit(lambda t: (nh(t), _flip_gender(t)))))
    out.append(("H+A", "H+A", [0, 1, 2, 4], lambda lab: lab[4] > 0.5, _edit(lambda t: (nh(t), _age(t)))))
    out.append(("G+A", "G+A", [3, 4], lambda lab: lab[4] > 0.5, _edit(lambda t: (_flip_gender(t), _age(t)))))
    out.append(("H+G+A", "H+G+A", [0, 1, 2, 3, 4], lambda lab: lab[4] > 0.5,
                _edit(lambda t: (nh(t), _flip_gender(t), _age(t)))))
    return out


GROUP_COLUMNS = ["target %", "kept %", "FID", "classifier Frechet", "classifier KID x1000", "L1 to input"]
SINGLE_GROUPS = ["hair colour", "gender", "aged"]
MULTI_GROUPS = ["H+G", "H+A", "G+A", "H+G+A"]
PAPER_GROUP_KEY = {"hair colour": "hair", "gender": "gender", "aged": "aged"}


def check_inputs(cfg: Any) -> None:
    if cfg.data.name != "celeba":
        raise StarbenchError(f"protocol {NAME} runs on CelebA: data=celeba (got data={cfg.data.name})")
    missing = [a for a in ATTRS if a not in list(cfg.data.attributes)]
    if missing or list(cfg.data.attributes) != ATTRS:
        raise StarbenchError(f"protocol {NAME} needs data.attributes={ATTRS} in this order "
                             f"(got {list(cfg.data.attributes)}; missing: {', '.join(missing) or 'none'})")


def edit_task(data: LoadedData) -> Task:
    """Test images with exactly one of the three hair colours x the edits that apply to each (aging: young only);
    per edit the real references are the test images whose edited attributes match one of its targets."""
    test = data.split("test")
    labels = data.labels
    inputs = test[labels[test][:, :3].sum(1) == 1]
    if len(inputs) < 4:
        raise StarbenchError(f"CelebA data in {data.index.root}: {len(inputs)} test image(s) with exactly one "
                             f"of {', '.join(HAIRS)}; the protocol needs at least 4")
    src = labels[inputs]
    edit_list = edits()
    valid = np.array([[applies(lab) for (_, _, _, applies, _) in edit_list] for lab in src])
    targets = np.stack([np.stack([target_of(lab) if ok else lab for ok, (*_, target_of) in zip(row, edit_list)])
                        for lab, row in zip(src, valid)])
    refs = []
    for k, (_, _, edited, _, _) in enumerate(edit_list):
        patterns = {tuple(t[edited]) for t in targets[valid[:, k], k]}
        refs.append(test[[tuple(labels[r][edited]) in patterns for r in test]])
    return Task(NAME, data, data.domains, inputs, [e[0] for e in edit_list], targets, valid, refs)


def build_task(cfg: Any) -> Task:
    check_inputs(cfg)
    return edit_task(load_data(cfg, show_progress=bool(cfg.train.progress)))


def attribute_classifier(cfg: Any, data: LoadedData, device: torch.device) -> tuple[torch.nn.Module, dict, Path]:
    return task_classifier(cfg, data, device, "attributes", "multilabel", "attribute classifier (ResNet-18)",
                           attrs=ATTRS)


def predict(net: torch.nn.Module, images_u8: torch.Tensor) -> np.ndarray:
    """0/1 attribute predictions; hair colour as one-of-three (as the paper's CelebA experiments do)."""
    logits = predict_logits(net, to_float(images_u8.clone())).numpy()
    out = (logits > 0).astype(np.float32)
    out[:, :3] = 0
    out[np.arange(len(out)), logits[:, :3].argmax(1)] = 1
    return out


def attribute_judge(clf: torch.nn.Module) -> Judge:
    """target: every edited attribute is seen as asked; kept: every other attribute is seen as in the input."""
    edit_list = edits()

    def judge(fake: torch.Tensor, src: np.ndarray, tgt: np.ndarray, k: int) -> dict[str, np.ndarray]:
        edited = edit_list[k][2]
        kept = [i for i in range(len(ATTRS)) if i not in edited]
        pred = predict(clf, fake)
        return {"target": (pred[:, edited] == tgt[:, edited]).all(1),
                "kept": (pred[:, kept] == src[:, kept]).all(1) if kept else np.ones(len(pred), bool)}
    return judge


def per_edit_rows(r: Scores, task: Task, with_seed: bool = False) -> list[dict[str, Any]]:
    if r.diverged:
        return []
    seed = {"seed": "-" if r.seed is None else r.seed} if with_seed else {}
    out = []
    for k, (ename, group, _, _, _) in enumerate(edits()):
        rows = task.rows_of(k)
        out.append({"method": r.name, **seed, "edit": ename, "group": group, "n": int(len(rows)),
                    "n real": int(len(task.reference_rows[k])),
                    "target %": 100 * float(r.outcomes["target"][rows, k].mean()),
                    "kept %": 100 * float(r.outcomes["kept"][rows, k].mean()),
                    "L1 to input": float(r.l1_input[rows, k].mean()), **edit_distances(r, k)})
    return out


def edit_distances(r: Scores, k: int) -> dict[str, Optional[float]]:
    """Edit ``k``'s distribution metrics: FD and KID x1000 per extractor, the classifier's precision and recall."""
    def x1000(v: Optional[float]) -> Optional[float]:
        return None if v is None else 1000 * v

    out: dict[str, Optional[float]] = {"classifier Frechet": r.frechet[k], "FID": r.fid[k],
                                       "classifier KID x1000": x1000(r.dist(CLASSIFIER, "kid")[k]),
                                       "classifier KID sd x1000": x1000(r.dist(CLASSIFIER, "kid_sd")[k]),
                                       "KID x1000": x1000(r.dist(INCEPTION, "kid")[k]),
                                       "precision": r.dist(CLASSIFIER, "precision")[k],
                                       "recall": r.dist(CLASSIFIER, "recall")[k]}
    for label in [k_ for k_ in r.distances if k_ not in (INCEPTION, CLASSIFIER)]:
        out[f"{label} FD"], out[f"{label} KID x1000"] = r.dist(label, "fd")[k], x1000(r.dist(label, "kid")[k])
    return out


def edit_summary(scores: Scores, task: Task) -> dict[str, Optional[float]]:
    """The learning curve's metrics: target-attribute error (100 - target %) over every edit, classifier Fréchet and
    FID."""
    kid = scores.kid(CLASSIFIER)[0]
    return {"error %": 100 * (1 - float(scores.outcomes["target"][task.valid].mean())),
            "classifier Frechet": mean_of([v for v in scores.frechet if v is not None]),
            "classifier KID x1000": None if kid is None else 1000 * kid,
            "FID": mean_of([v for v in scores.fid if v is not None])}


def group_values(df: pd.DataFrame, m: str, g: str, seed: Any = None) -> dict[str, Optional[float]]:
    """A method's measures over the edits of group ``g`` (weighted by the inputs each edit applies to)."""
    sub = df[(df.method == m) & (df.group == g)]
    if seed is not None:
        sub = sub[sub.seed == seed]
    w = sub["n"].to_numpy()
    avg = lambda col: float(np.average(sub[col].astype(float), weights=w))  # noqa: E731
    return {"target %": avg("target %"), "kept %": avg("kept %"),
            "FID": mean_of([v for v in sub["FID"] if v is not None]),
            "classifier Frechet": mean_of([v for v in sub["classifier Frechet"] if v is not None]),
            "classifier KID x1000": mean_of([v for v in sub["classifier KID x1000"] if pd.notna(v)]),
            "L1 to input": avg("L1 to input")}


GROUP_DIGITS = {"target %": 1, "kept %": 1, "FID": 2, "classifier Frechet": 3, "classifier KID x1000": 2,
                "L1 to input": 4}


def group_table(results: list[Scores], df: pd.DataFrame, groups: list[str], votes: dict[str, dict[str, Any]],
                key_of: Callable[[str], str], seeded: bool, valid: np.ndarray,
                first: Optional[dict[str, str]] = None) -> list[dict]:
    """Table 1 or 2: per method the target error over the table's edits (one seed: with its Clopper-Pearson
    interval; several: mean ± sd, the t-interval over seeds and the pooled interval) and McNemar's exact test
    against StarGAN on the same translations, each group's measures (one seed: its values; several: mean ± sd over
    seeds) beside the paper's vote percentages, and with several seeds how often the method ranked first."""
    out = []
    missed = lambda r: ~r.outcomes["target"][valid]  # noqa: E731  # the plateau test's error: a target not reached
    here = [k for k, edit in enumerate(edits()) if edit[1] in groups]
    missed_here = lambda r: ~r.outcomes["target"][:, here][valid[:, here]]  # noqa: E731  # this table's edits
    by_name = by_method(results)
    for m in methods(results, seeded):
        row: dict[str, Any] = {"method": m.name, **({"seeds": m.seeds()} if seeded else {})}
        row.update({k.replace("classification error %", "target error %"): v for k, v in m.error(missed_here).items()})
        row.update(m.mcnemar_vs(by_name, missed_here))
        for g in groups:
            for c in GROUP_COLUMNS:
                row[f"{g}: {c}"] = m.number(
                    lambda r: group_values(df, m.name, g, ("-" if r.seed is None else r.seed) if seeded else None)[c],
                    GROUP_DIGITS[c])
            if m.status:
                row[f"{g}: target %"] = m.status
            vote = votes.get(m.name, {}).get(key_of(g))
            row[f"{g}: paper votes % (human study)"] = vote.text("{:.1f}") if vote else "-"
        if seeded:
            row["first (highest target %)"] = (first or {})[m.name]
        row.update(m.budget(missed))
        out.append(row)
    return out


# the columns each table measures over its own edits (the rest of a row is per group, or the method's budget)
PER_TABLE = ("target error %", "McNemar p")


def seed_row(seed: int, rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One seed's rows of both tables as one row of per_seed.csv, the per-table columns named by their table (both
    tables have a target error and a McNemar p, over different edits: one must not overwrite the other)."""
    out: dict[str, Any] = {"seed": seed}
    for table, row in rows.items():
        out.update({f"{table}: {k}" if k.startswith(PER_TABLE) else k: v for k, v in row.items()})
    return out


def render(record: dict[str, Any], arrays: dict[str, np.ndarray], folder: Path) -> None:
    write_table(pd.DataFrame(record["table1"]), folder, "table1",
                caption="Table 1 (CelebA, single-attribute edits): automatic measures beside the paper's user study",
                notes=record["notes"])
    write_table(pd.DataFrame(record["table2"]), folder, "table2",
                caption="Table 2 (CelebA, multi-attribute edits): automatic measures beside the paper's user study",
                notes=record["notes"])
    pd.DataFrame(record["per_edit"]).to_csv(folder / "per_edit.csv", index=False)
    save_grid_figure(arrays, record["columns"], folder)
    render_curve(record, folder)


@register_protocol(NAME, "CelebA attribute edits (stand-in for the paper's Tables 1-2): accuracy, preservation, FID",
                   render=render, task=build_task, jobs=trained_jobs, data="celeba")
def run(cfg: Any) -> ProtocolResult:
    check_inputs(cfg)
    ev = Evaluation(cfg, NAME, own_steps=3)

    data, fp, task, sources = ev.load(edit_task)
    test = data.split("test")

    with ev.step("attribute classifier"):
        clf, clf_info, extractor = attribute_classifier(cfg, data, ev.device)
        real_pred = predict(clf, uint8_rows(data, test))
        real_acc = float((real_pred == data.labels[test]).all(1).mean())
        real_attr_acc = {a: float((real_pred[:, i] == data.labels[test][:, i]).mean()) for i, a in enumerate(ATTRS)}

    metrics = ev.metrics(attribute_judge(clf), clf_info["judge_key"], extractor)
    results = ev.score_all(task, sources, metrics, f"{task.n} inputs x {len(task.columns)} edits",
                           summarize=edit_summary)
    seeded = cfg.seeds is not None
    per_edit = [row for r in results for row in per_edit_rows(r, task, seeded)]

    with ev.step("report"):
        df = pd.DataFrame(per_edit)
        first = firsts(by_method(results), lambda r: float(r.outcomes["target"][task.valid].mean()),
                       lower_is_better=False) if seeded else None
        table1 = group_table(results, df, SINGLE_GROUPS, TABLE1_VOTES, lambda g: PAPER_GROUP_KEY[g], seeded,
                             task.valid, first)
        table2 = group_table(results, df, MULTI_GROUPS, TABLE2_VOTES, lambda g: g, seeded, task.valid, first)
        per_seed, seed_notes = None, one_seed_note(cfg, results)
        if seeded:
            per_seed = []
            for seed in seeds_of(cfg):
                sub, sub_df = [r for r in results if r.seed in (seed, None)], df[df.seed.isin([seed, "-"])]
                rows1 = group_table(sub, sub_df, SINGLE_GROUPS, TABLE1_VOTES, lambda g: PAPER_GROUP_KEY[g], False,
                                    task.valid)
                rows2 = group_table(sub, sub_df, MULTI_GROUPS, TABLE2_VOTES, lambda g: g, False, task.valid)
                per_seed += [seed_row(seed, {"Table 1": r1, "Table 2": r2}) for r1, r2 in zip(rows1, rows2)]
            seed_notes = seeds_notes(cfg, "the highest target % over all edits")
        weights = ev.weights
        notes = [
            f"scale={cfg.scale}, {task.size} px; data: {data.index.description}; {task.n} test inputs with "
            f"one of the three hair colours (edits that age use the young ones).",
            "The paper's columns are % of Amazon Mechanical Turk votes for the best of four methods: a human study. "
            "starbench's automatic measures do not reproduce it and are not comparable with it.",
            f"target %: the attribute classifier ({judge_words(cfg)}) finds every edited attribute as asked; "
            "kept %: it finds every other attribute as in the input's labels; L1 to input: identity proxy.",
            "target error %: 100 - target % over every translation of the table's edits (the error that the 95% "
            "intervals and McNemar's exact test against StarGAN on the same translations are about; the "
            "converged column's curve is the target error over every edit of both tables).",
            f"Attribute classifier on real test images: all five attributes right {100 * real_acc:.1f}%; per attribute "
            + ", ".join(f"{a} {100 * v:.1f}%" for a, v in real_attr_acc.items()) + ".",
            ("FID: " + (f"torch-fidelity InceptionV3 ({weights.source})" if weights.available else
                        "n/a: " + str(weights.problem)))
            + "; against real test images carrying the edit's target attributes. classifier Frechet: on "
            + judge_features(cfg, "the attribute classifier")
            + "; needs no download; not comparable with FID.",
            *distribution_notes(cfg, "the edit's translations against the real test images with its target attributes"
                                " (per_edit.csv; the group columns average its edits)"),
            *convergence_notes(results, "target error: 100 - target % over every edit"),
            "Two-domain baselines chain their instances (hair, gender, age) for multiple edits, as the paper did.",
            "translations.png: where an edit does not apply to an input (aging an aged face, dyeing hair its own "
            "colour) the input itself is shown.",
            "Paper numbers marked (recalled) were not re-checked against the paper's text.",
        ] + seed_notes + budget_note(results) + origin_notes(results)
        per_edit_rows_out = [{k: (round(v, 4) if isinstance(v, float) else ("n/a" if v is None else v))
                              for k, v in r.items()} for r in per_edit]
        record = {"protocol": NAME, "table1": table1, "table2": table2, "per_edit": per_edit_rows_out, "notes": notes,
                  "columns": task.columns, **seed_records(per_seed, results)}
        arrays = {"inputs": task.inputs[:min(cfg.grid_inputs, task.n)].numpy(), **figure_arrays(results)}
        folder = ev.write(record, arrays, render,
                          dataset={"data": data.index.description, "fingerprint": fp, "notes": data.index.notes,
                                   "split": {s: int(len(data.split(s))) for s in data.index.splits()}},
                          n={"inputs": int(task.n), "real_test_images": int(len(test))},
                          classifier={**clf_info, "real_all_correct": real_acc, "real_per_attribute": real_attr_acc},
                          runs=runs_provenance(results))
    return ProtocolResult(NAME, folder, {"table1": pd.DataFrame(table1), "table2": pd.DataFrame(table2),
                                         "per_edit": df},
                          ev.seconds)
