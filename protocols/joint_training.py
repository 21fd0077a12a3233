"""Protocol ``joint_training``: StarGAN-SNG (RaFD only) versus StarGAN-JNT (CelebA + RaFD, mask vector).

The paper (its CelebA+RaFD experiment) shows that training one StarGAN on both datasets with the mask vector
improves its RaFD results. Both models are trained by the Trainer (SNG on ``data=rafd``, JNT on
``data=joint``, the same number of iterations: JNT's iterations each take one CelebA and one RaFD
batch), then translate the same RaFD neutral test images to the 7 other expressions and are measured
as in ``rafd_expression``: classification error by the same expression classifier (95% intervals),
McNemar's paired test between them, FID when Inception weights are available, the classifier
Fréchet distance, and L1/PSNR/SSIM to the real photo of the target expression.

``translations.png``: CelebA test faces translated to the RaFD expressions by the joint model with the
right mask (RaFD) and, next to it, with the wrong mask (CelebA's mask while asking for an
expression), the paper's illustration of what the mask vector does.

Data: ``data.rafd_root`` (or ``data.root``) and ``data.celeba_root``; absent: the synthetic sets.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from starbench.data import LoadedData, load_data
from starbench.data.domains import DomainSpec
from starbench.data.rafd import rafd_domains
from starbench.errors import StarbenchError
from starbench.evaluate.core import Evaluation
from starbench.evaluate.curves import render_curve
from starbench.evaluate.runs import data_fingerprint, index_fingerprint
from starbench.evaluate.score import Scores
from starbench.evaluate.seeds import by_method, firsts, paired_over_seeds
from starbench.evaluate.sources import (
    FolderSource,
    ModelSource,
    Source,
    TrainedSource,
    check_curve,
    seeds_of,
    training_delta,
)
from starbench.evaluate.task import Task
from starbench.protocols.figures import save_grid_figure
from starbench.protocols.rafd_expression import (
    FD_COLUMNS,
    NOT_LEARNED,
    expression_classifier,
    expression_judge,
    expression_summary,
    expression_task,
)
from starbench.protocols.tables import (
    convergence_notes,
    distribution_labels,
    distribution_notes,
    fmt,
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

NAME = "joint_training"
VARIANTS = {"StarGAN-SNG": "rafd", "StarGAN-JNT": "joint"}


def variant_delta(cfg: Any, data_name: str) -> dict[str, Any]:
    """What a variant's config changes in the protocol's: the model and the dataset it trains on."""
    rafd_root = cfg.data.rafd_root or cfg.data.root
    if data_name == "rafd":
        return {"model": "stargan", "data": {"name": "rafd", "root": rafd_root}}
    return {"model": "stargan", "data": {"name": "joint", "root": None, "rafd_root": rafd_root}}


def variant_cfg(cfg: Any, data_name: str) -> Any:
    return OmegaConf.merge(cfg, variant_delta(cfg, data_name))


def load_celeba(cfg: Any, show: bool) -> LoadedData:
    celeba_cfg = OmegaConf.merge(cfg, {"data": {"name": "celeba", "root": cfg.data.celeba_root}})
    try:
        return load_data(celeba_cfg, show_progress=show)
    except StarbenchError as exc:
        raise StarbenchError(f"joint training needs both CelebA and RaFD; celeba: {exc}") from exc


def build_task(cfg: Any) -> Task:
    """The RaFD task both variants are scored on (the same as rafd_expression's)."""
    return expression_task(load_data(variant_cfg(cfg, "rafd"), show_progress=bool(cfg.train.progress)), NAME)


def mask_figure_task(celeba: LoadedData, joint: DomainSpec, rows: int) -> Task:
    """CelebA test faces x the 8 RaFD expressions, with the right (RaFD) mask and with the wrong (CelebA) one."""
    dom = rafd_domains()
    right = [joint.embed("rafd", dom.label(t)[None])[0] for t in dom.names]
    wrong = [lab.copy() for lab in right]
    for w in wrong:  # the CelebA mask while asking for an RaFD expression
        w[joint.mask_slice()] = [1.0, 0.0]
    inputs = celeba.split("test")[:max(1, rows)]
    labels = np.stack(right + wrong)
    n = len(inputs)
    return Task(NAME, celeba, joint, inputs, [f"{k}:{t}" for k in ("right", "wrong") for t in dom.names],
                np.broadcast_to(labels, (n,) + labels.shape).copy(), np.ones((n, len(labels)), bool),
                [np.zeros(0, np.int64)] * len(labels),
                source_labels=np.stack([right[0]] * n), )


def trained_sources(cfg: Any, rafd_fp: str, celeba_fp: str, device: Any) -> list[Source]:
    """StarGAN-SNG and StarGAN-JNT, once per training seed."""
    fps = {"StarGAN-SNG": rafd_fp, "StarGAN-JNT": rafd_fp + "+" + celeba_fp}
    return [TrainedSource(variant, "stargan", cfg, {**variant_delta(cfg, data), **training_delta(cfg, seed, "stargan")},
                          fps[variant], device) for variant, data in VARIANTS.items() for seed in seeds_of(cfg)]


def jobs(cfg: Any) -> list[Source]:
    """StarGAN-SNG and StarGAN-JNT per seed, from the file lists alone (``starbench plan``)."""
    check_curve(cfg, "stargan")
    celeba_cfg = OmegaConf.merge(cfg, {"data": {"name": "celeba", "root": cfg.data.celeba_root}})
    return trained_sources(cfg, index_fingerprint(variant_cfg(cfg, "rafd")), index_fingerprint(celeba_cfg), "cpu")


def render(record: dict[str, Any], arrays: dict[str, np.ndarray], folder: Path) -> None:
    write_table(pd.DataFrame(record["table"]), folder, "joint",
                caption="Joint training with the mask vector: RaFD expression translation, SNG vs JNT",
                notes=record["notes"])
    save_grid_figure(arrays, record["columns"], folder)
    render_curve(record, folder)


@register_protocol(NAME, "StarGAN-SNG vs StarGAN-JNT (mask vector) on RaFD; CelebA faces given RaFD expressions",
                   render=render, task=build_task, jobs=jobs, data="joint")
def run(cfg: Any) -> ProtocolResult:
    check_curve(cfg, "stargan")
    ev = Evaluation(cfg, NAME, own_steps=4, n_sources=len(VARIANTS) * len(seeds_of(cfg)) + len(cfg.translations))
    sng_cfg = variant_cfg(cfg, "rafd")
    dom = rafd_domains()

    with ev.step("data"):
        rafd = load_data(sng_cfg, show_progress=ev.show)
        celeba = load_celeba(cfg, ev.show)
        task = expression_task(rafd, NAME)
        folders: list[Source] = [FolderSource(Path(d).expanduser()) for d in cfg.translations]
        for f in folders:
            f.prepare(task)
        joint = DomainSpec.joint({"celeba": celeba.domains, "rafd": dom})
        figure = mask_figure_task(celeba, joint, cfg.grid_inputs)

    with ev.step("expression classifier"):
        clf, clf_info, extractor = expression_classifier(sng_cfg, rafd, ev.device)

    metrics = ev.metrics(expression_judge(clf), clf_info["judge_key"], extractor)
    grid: dict[str, np.ndarray] = {}

    def mask_grid(source: Source) -> None:
        """The figure: the joint model (its first seed) on CelebA faces, right mask then wrong mask."""
        if source.name != "StarGAN-JNT" or source.seed != seeds_of(cfg)[0]:
            return
        assert isinstance(source, ModelSource) and source.model is not None
        shown = ModelSource(source.name, ev.device)
        ev.translate_at([shown])
        shown.use(source.model, figure)
        cells = np.stack([shown.column(figure, t).numpy() for t in range(len(figure.columns))], 1)
        grid["JNT, RaFD mask"], grid["JNT, CelebA mask (wrong)"] = cells[:, :len(dom.names)], cells[:, len(dom.names):]

    sources: list[Source] = trained_sources(cfg, data_fingerprint(rafd), data_fingerprint(celeba), ev.device) + folders
    ev.translate_at(sources)
    results = ev.score_all(task, sources, metrics, f"{task.n} inputs x {len(task.columns)} targets",
                           on_ready=mask_grid, summarize=expression_summary)

    with ev.step("metrics"):
        table, jnt_test, per_seed = joint_table(cfg, results, task)
        seed_notes = (seeds_notes(cfg, "the lowest classification error") if cfg.seeds is not None
                      else one_seed_note(cfg, results))

    with ev.step("report"):
        runs = runs_provenance(results)
        weights = ev.weights
        notes = [
            f"scale={cfg.scale}, {task.size} px; {task.n} RaFD neutral test inputs x 7 targets "
            f"= {task.n * 7} translations per model, the same inputs for both.",
            (f"McNemar exact test{' pooled over seeds' if cfg.seeds is not None else ''}: only SNG wrong "
             f"{jnt_test.only_a_wrong}, only JNT wrong {jnt_test.only_b_wrong}."
             if jnt_test else "McNemar exact test: n/a (a variant diverged)."),
            f"Classification error: the RaFD expression classifier of rafd_expression, {judge_words(cfg)}.",
            "The paper reports that joint training improves RaFD results (its CelebA+RaFD experiment); this table is "
            "what "
            "starbench measured at this scale, whichever way it comes out.",
            ("FID: n/a: " + str(weights.problem)) if not weights.available else f"FID: InceptionV3 ({weights.source}).",
            "Training budget: " + "; ".join(budget(results, v) for v in VARIANTS)
            + " (a JNT iteration takes one CelebA and one RaFD batch).",
            *distribution_notes(cfg, "the expression's translations against its real test images"),
            *convergence_notes(results, "classification error"),
            "translations.png: CelebA test faces translated to the 8 RaFD expressions by the joint model, with the "
            "RaFD mask (right) and with the CelebA mask (wrong) for the same expression labels.",
        ] + seed_notes + origin_notes(results) + (["McNemar p of a translations folder's row: against StarGAN-SNG."]
                                                   if folders else [])
        record = {"protocol": NAME, "table": table, "notes": notes, "columns": list(dom.names),
                  **seed_records(per_seed, results)}
        arrays = {"inputs": figure.inputs.numpy(), **{f"fake:{k}": v for k, v in grid.items()}}
        folder = ev.write(record, arrays, render, runs=runs, classifier=clf_info,
                          n={"neutral_test_inputs": int(task.n), "celeba_figure_inputs": int(figure.n)},
                          datasets={"rafd": {"data": rafd.index.description, "fingerprint": data_fingerprint(rafd)},
                                    "celeba": {"data": celeba.index.description,
                                               "fingerprint": data_fingerprint(celeba)}})
    return ProtocolResult(NAME, folder, {"joint": pd.DataFrame(table)}, ev.seconds)


TRAINED_ON = {"StarGAN-SNG": "RaFD", "StarGAN-JNT": "CelebA + RaFD (mask vector)"}


def budget(results: list[Scores], variant: str) -> str:
    runs = [r.info for r in results if r.name == variant and not r.diverged]
    if not runs:
        return f"{variant} diverged"
    if len(runs) == 1:
        return f"{variant} {runs[0]['steps']} iterations, {runs[0]['train_seconds']:.0f} s"
    return (f"{variant} {runs[0]['steps']} iterations x {len(runs)} seeds, "
            f"{sum(r['train_seconds'] for r in runs):.0f} s in all")


def joint_table(cfg: Any, results: list[Scores], task: Task
                ) -> tuple[list[dict[str, Any]], Any, Optional[list[dict[str, Any]]]]:
    """The SNG vs JNT table, one row per variant (and per translations folder), with McNemar's exact test against
    StarGAN-SNG (pooled over (seed, input, target) triples with several seeds); SNG vs JNT's test; and with
    several seeds every seed's own rows (per_seed.csv)."""
    seeded = cfg.seeds is not None
    wrong = lambda r: r.outcomes["wrong"][task.valid]  # noqa: E731
    error = lambda r: 100 * float(wrong(r).mean())  # noqa: E731
    groups = by_method(results)
    first = firsts(groups, error) if seeded else {}
    rows, jnt_test = [], None
    for m in methods(results, seeded):
        test = paired_over_seeds(groups["StarGAN-SNG"], m.results, wrong) \
            if "StarGAN-SNG" in groups and m.name != "StarGAN-SNG" else None
        if m.name == "StarGAN-JNT":
            jnt_test = test
        row: dict[str, Any] = {"model": m.name, "trained on": TRAINED_ON.get(m.name, "-"),
                               **({"seeds": m.seeds()} if seeded else {}), **m.error(wrong),
                               **m.budget(wrong, 100 * NOT_LEARNED),
                               **m.distribution(distribution_labels(cfg), FD_COLUMNS),
                               "L1 to ground truth": m.number(lambda r: r.truth_mean("l1", task.valid), 4),
                               "PSNR dB": m.number(lambda r: r.truth_mean("psnr", task.valid), 2),
                               "SSIM": m.number(lambda r: r.truth_mean("ssim", task.valid), 3)}
        if seeded:
            row["McNemar p vs SNG (pooled over seeds)"] = fmt(test.p_value, 4) if test else "-"
            row["first (lowest error)"] = first[m.name]
        else:
            row["McNemar p (JNT vs SNG)"] = "n/a" if m.status else fmt(test.p_value, 4) if test else "-"
        rows.append(row)
    per_seed = None
    if seeded:
        per_seed = [{"seed": seed, **row} for seed in seeds_of(cfg) for row in
                    joint_table(OmegaConf.merge(cfg, {"seeds": None}), [r for r in results if r.seed in (seed, None)],
                                task)[0]]
    return rows, jnt_test, per_seed
