"""Protocol ``joint_training``: StarGAN-SNG (RaFD only) versus StarGAN-JNT (CelebA + RaFD, mask vector).

REFERENCE §3: the paper shows that training one StarGAN on both datasets with the mask vector
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

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from starbench.config import cache_dir
from starbench.data import load_data
from starbench.data.domains import DomainSpec
from starbench.data.rafd import rafd_domains
from starbench.errors import StarbenchError
from starbench.metrics import fid as fidm
from starbench.metrics.classifier import default_device
from starbench.metrics.stats import error_rate, mcnemar
from starbench.protocols.common import (PairedTruth, Steps, classify, data_fingerprint, fmt, inception_weights,
                                       save_grid_figure, train_method, translate_grid, uint8_rows)
from starbench.protocols.rafd_expression import SOURCE, expression_classifier
from starbench.registry import register_protocol
from starbench.report import ProtocolResult, provenance, results_folder, save_record, write_json, write_table

NAME = "joint_training"
VARIANTS = {"StarGAN-SNG": "rafd", "StarGAN-JNT": "joint"}


def variant_cfg(cfg: Any, data_name: str) -> Any:
    rafd_root = cfg.data.rafd_root or cfg.data.root
    if data_name == "rafd":
        return OmegaConf.merge(cfg, {"model": "stargan", "data": {"name": "rafd", "root": rafd_root}})
    return OmegaConf.merge(cfg, {"model": "stargan", "data": {"name": "joint", "root": None, "rafd_root": rafd_root}})


def render(record: dict[str, Any], arrays: dict[str, np.ndarray], folder: Path) -> None:
    write_table(pd.DataFrame(record["table"]), folder, "joint",
                caption="Joint training with the mask vector: RaFD expression translation, SNG vs JNT",
                notes=record["notes"])
    save_grid_figure(arrays, record["columns"], folder)


@register_protocol(NAME, "StarGAN-SNG vs StarGAN-JNT (mask vector) on RaFD; CelebA faces given RaFD expressions",
                   render=render)
def run(cfg: Any) -> ProtocolResult:
    start = time.perf_counter()
    steps = Steps(5)
    device = default_device(cfg.device)
    show = bool(cfg.train.progress)
    weights = inception_weights(cfg)
    sng_cfg, jnt_cfg = variant_cfg(cfg, "rafd"), variant_cfg(cfg, "joint")
    dom = rafd_domains()
    targets = [e for e in dom.names if e != SOURCE]

    with steps("data"):
        rafd = load_data(sng_cfg, show_progress=show)
        celeba_cfg = OmegaConf.merge(cfg, {"data": {"name": "celeba", "root": cfg.data.celeba_root}})
        try:
            celeba = load_data(celeba_cfg, show_progress=show)
        except StarbenchError as exc:
            raise StarbenchError(f"joint training needs both CelebA and RaFD; celeba: {exc}") from exc
        test = rafd.split("test")
        expr = np.array([r.meta.get("expression") for r in rafd.index.records])
        neutral = test[expr[test] == SOURCE]
        if len(neutral) < 2:
            raise StarbenchError(f"RaFD data in {rafd.index.root}: {len(neutral)} neutral test image(s); need 2")
        inputs = uint8_rows(rafd, neutral)
        celeba_test = celeba.split("test")
        celeba_inputs = uint8_rows(celeba, celeba_test[:max(1, cfg.grid_inputs)])

    with steps("expression classifier"):
        clf, clf_info, extractor = expression_classifier(sng_cfg, rafd, device)

    joint = DomainSpec.joint({"celeba": celeba.domains, "rafd": dom})
    fakes, runs, grid = {}, {}, {}
    with steps("train or load StarGAN-SNG and StarGAN-JNT"):
        for variant, vcfg in (("StarGAN-SNG", sng_cfg), ("StarGAN-JNT", jnt_cfg)):
            model, _, info = train_method(vcfg, "stargan", data_fingerprint(rafd) + (
                "+" + data_fingerprint(celeba) if variant.endswith("JNT") else ""), show)
            runs[variant] = info
            if variant.endswith("SNG"):
                labels = [dom.label(t) for t in targets]
            else:
                labels = [joint.embed("rafd", dom.label(t)[None])[0] for t in targets]
                right = [joint.embed("rafd", dom.label(t)[None])[0] for t in dom.names]
                wrong = [lab.copy() for lab in right]
                for w in wrong:  # the CelebA mask while asking for an RaFD expression
                    w[joint.mask_slice()] = [1.0, 0.0]
                grid["JNT, RaFD mask"] = translate_grid(model, celeba_inputs, right[0], right)
                grid["JNT, CelebA mask (wrong)"] = translate_grid(model, celeba_inputs, wrong[0], wrong)
            fakes[variant] = translate_grid(model, inputs, labels[0], labels)
            del model

    with steps("metrics"):
        truth = PairedTruth(rafd, neutral, targets)
        target_idx = np.array([dom.index(t) for t in targets])
        fid_root = cache_dir(cfg) / "fidelity"
        wrong_by, rows = {}, []
        for variant, fake in fakes.items():
            pred = classify(clf, fake.reshape(-1, *fake.shape[2:])).reshape(fake.shape[:2])
            wrong_by[variant] = pred != target_idx[None, :]
            cfds, fids = [], []
            for t, name in enumerate(targets):
                real = uint8_rows(rafd, test[expr[test] == name])
                cfds.append(fidm.classifier_frechet(fake[:, t].contiguous(), real, extractor, fid_root))
                if weights.available:
                    fids.append(fidm.inception_fid(fake[:, t].contiguous(), real, weights, fid_root, cfg.fid.batch_size))
            l1v, psnrv, ssimv = truth.scores(fake)
            rows.append((variant, float(np.mean(cfds)), float(np.mean(fids)) if fids else None, l1v, psnrv, ssimv))

    with steps("report"):
        test_vs = mcnemar(wrong_by["StarGAN-SNG"].ravel(), wrong_by["StarGAN-JNT"].ravel())
        table = []
        for variant, cfd, fidv, l1v, psnrv, ssimv in rows:
            table.append({
                "model": variant,
                "trained on": "RaFD" if variant.endswith("SNG") else "CelebA + RaFD (mask vector)",
                "classification error % [95% CI]": error_rate(wrong_by[variant].ravel()).text(),
                "FID (mean of 7 targets)": fmt(fidv) if fidv is not None else "n/a",
                "classifier Frechet (not FID)": fmt(cfd, 3),
                "L1 to ground truth": fmt(l1v, 4), "PSNR dB": fmt(psnrv), "SSIM": fmt(ssimv, 3),
                "McNemar p (JNT vs SNG)": "-" if variant.endswith("SNG") else fmt(test_vs.p_value, 4),
            })
        notes = [
            f"scale={cfg.scale}, {int(rafd.images.shape[-1])} px; {len(neutral)} RaFD neutral test inputs x 7 targets "
            f"= {len(neutral) * 7} translations per model, the same inputs for both.",
            f"McNemar exact test: only SNG wrong {test_vs.only_a_wrong}, only JNT wrong {test_vs.only_b_wrong}.",
            "The paper reports that joint training improves RaFD results (REFERENCE §3); this table is what "
            "starbench measured at this scale, whichever way it comes out.",
            ("FID: n/a: " + str(weights.problem)) if not weights.available else f"FID: InceptionV3 ({weights.source}).",
            "Training budget: " + "; ".join(f"{v} {r['steps']} iterations, {r['train_seconds']:.0f} s"
                                            for v, r in runs.items())
            + " (a JNT iteration takes one CelebA and one RaFD batch).",
            "translations.png: CelebA test faces translated to the 8 RaFD expressions by the joint model, with the "
            "RaFD mask (right) and with the CelebA mask (wrong) for the same expression labels.",
        ]
        columns = list(dom.names)
        record = {"protocol": NAME, "table": table, "notes": notes, "columns": columns}
        arrays = {"inputs": celeba_inputs.numpy(), **{f"fake:{k}": v.numpy() for k, v in grid.items()}}
        with results_folder(cfg.results_dir, NAME) as folder:
            save_record(folder, record, arrays)
            render(record, arrays, folder)
            write_json(folder / "provenance.json", provenance(
                cfg, protocol=NAME, seed=cfg.seed, runs=runs, classifier=clf_info, inception=weights.describe(),
                n={"neutral_test_inputs": int(len(neutral)), "celeba_figure_inputs": int(len(celeba_inputs))},
                datasets={"rafd": {"root": str(rafd.index.root), "fingerprint": data_fingerprint(rafd)},
                          "celeba": {"root": str(celeba.index.root), "fingerprint": data_fingerprint(celeba)}},
                wall_seconds_per_step=steps.times, wall_seconds=round(time.perf_counter() - start, 2)))
    return ProtocolResult(NAME, Path(cfg.results_dir) / NAME, {"joint": pd.DataFrame(table)},
                          time.perf_counter() - start)
