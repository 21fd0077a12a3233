"""Protocol ``metric_bias``: how far the number of images N moves FD (FID) and KID, on real images alone.

Table 3 compares methods by distribution distances computed per target on 63 translations against 63 real
images. At that N the Fréchet distance is biased upwards, and by an amount that depends on the model
(Bińkowski et al. 2018; Chong & Forsyth 2020); KID is unbiased. This protocol shows both on sets whose true
distance is known:

- two disjoint halves of the real test images: the true distance is 0;
- real images against a lightly perturbed copy of other real images (Gaussian noise, sd ``NOISE`` grey
  levels): a small true distance, the same at every N;

for N from 10 to the largest N the test split allows (two disjoint sets of N), ``DRAWS`` random draws per N,
on the protocol classifier's features (always), Inception's (when its weights are there) and the user's
``metrics.extractor``. Features are extracted once per image set and the metrics computed on feature subsets
by torch-fidelity's own functions, with the same KID settings as the tables (``metrics.*``).

Writes ``results/metric_bias/``: ``metric_bias.csv`` (every draw), ``metric_bias.md`` (mean ± sd over draws at
a few N, the task's N = 63 among them) and ``metric_bias.png`` (value against N, a band of ± sd over draws).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from starbench.data import LoadedData
from starbench.errors import StarbenchError
from starbench.evaluate.core import Evaluation
from starbench.evaluate.task import uint8_rows
from starbench.metrics.distances import Settings, feature_distances, features
from starbench.protocols.rafd_expression import expression_classifier
from starbench.registry import register_protocol
from starbench.report import ProtocolResult, plt, write_table

NAME = "metric_bias"
DRAWS = 8  # random draws per N
NOISE = 6.0  # sd of the perturbation, in grey levels of 255
TABLE3_N = 63  # translations per target in Table 3 at demo scale (the synthetic set's neutral test inputs)
CASES = {"halves": "two disjoint halves of the real test images (true distance 0)",
         "perturbed": f"real images vs a noisy copy (sd {NOISE:g}/255) of other real images"}


def sizes(pool: int) -> list[int]:
    """N from 10 up to the largest N two disjoint sets allow, with the task's N among them."""
    top = pool // 2
    grid = [10, 15, 20, 30, 40, TABLE3_N, 100, 150, 200, 300, 500, 1000, 2000]
    return sorted({n for n in grid if n <= top} | {top})


def perturbed(images: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(images.shape, generator=g) * NOISE
    return (images.float() + noise).round().clamp(0, 255).to(torch.uint8)


def draws(pool_features: torch.Tensor, noisy_features: torch.Tensor, n: int, settings: Settings,
          rng: np.random.Generator) -> list[dict[str, Any]]:
    """FD and KID of both cases at N = n, ``DRAWS`` times: two disjoint random sets of n from the pool."""
    out = []
    for draw in range(DRAWS):
        order = rng.permutation(len(pool_features))
        a, b = order[:n], order[n:2 * n]
        for case, other in (("halves", pool_features[b]), ("perturbed", noisy_features[b])):
            d = feature_distances(pool_features[a], other, settings, seed=2020 + draw)
            out.append({"case": case, "N": n, "draw": draw, "FD": d.fd,
                        "KID x1000": None if d.kid is None else 1000 * d.kid})
    return out


def render(record: dict[str, Any], arrays: dict[str, np.ndarray], folder: Path) -> None:
    df = pd.DataFrame(record["draws"])
    df.to_csv(folder / "metric_bias.csv", index=False)
    write_table(pd.DataFrame(record["table"]), folder, "metric_bias",
                caption="FD and KID x1000 on real images against N (mean ± sd over draws)", notes=record["notes"])
    extractors = list(dict.fromkeys(df["features"]))
    pyplot = plt()
    fig, axes = pyplot.subplots(len(extractors), 2, figsize=(9, 3.4 * len(extractors)), squeeze=False)
    for row, label in zip(axes, extractors):
        sub = df[df["features"] == label]
        for ax, metric in zip(row, ("FD", "KID x1000")):
            for case, grp in sub.groupby("case", sort=False):
                stats = grp.groupby("N")[metric].agg(["mean", "std"]).reset_index()
                line, = ax.plot(stats["N"], stats["mean"], marker="o", ms=3, label=CASES[case])
                ax.fill_between(stats["N"], stats["mean"] - stats["std"], stats["mean"] + stats["std"],
                                color=line.get_color(), alpha=0.2, lw=0)
            ax.axvline(TABLE3_N, color="grey", ls=":", lw=1)
            ax.axhline(0, color="black", lw=0.5)
            ax.set_xscale("log")
            ns = sorted(set(sub["N"]))
            ax.set_xticks(ns, [str(n) for n in ns], fontsize=7)
            ax.minorticks_off()
            ax.set_xlabel("images per set N (dotted: Table 3's N)")
            ax.set_title(f"{metric} on {label} features", fontsize=9)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{record['data']}: FD is biased at small N, KID is not (bands: ± sd over {DRAWS} draws)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(folder / "metric_bias.png", dpi=120)
    pyplot.close(fig)


def summary_rows(df: pd.DataFrame, shown: list[int]) -> list[dict[str, Any]]:
    rows = []
    for (label, case), grp in df.groupby(["features", "case"], sort=False):
        row: dict[str, Any] = {"features": label, "case": case}
        for n in shown:
            at = grp[grp["N"] == n]
            for metric in ("FD", "KID x1000"):
                v = at[metric].dropna()
                row[f"{metric} N={n}"] = f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else "n/a"
        rows.append(row)
    return rows


@register_protocol(NAME, "FD vs KID on real images as N grows: how far the task's N moves each (no training)",
                   render=render, data="rafd")
def run(cfg: Any) -> ProtocolResult:
    ev = Evaluation(cfg, NAME, own_steps=4, n_sources=0)
    with ev.step("data"):
        data: LoadedData = ev.data()
        test = data.split("test")
        if len(test) < 20:
            raise StarbenchError(f"protocol {NAME} needs at least 20 test images; {data.index.root} has {len(test)}")
        pool = uint8_rows(data, test)
        noisy = perturbed(pool, cfg.seed)
    with ev.step("classifier"):
        _, _, extractor_file = expression_classifier(cfg, data, ev.device)
    settings = Settings.of(cfg)
    rows: list[dict[str, Any]] = []
    with ev.step(f"FD and KID at N = {', '.join(map(str, sizes(len(pool))))}, {DRAWS} draws each"):
        for extractor in ev.extractors(extractor_file):
            f_pool, f_noisy = features(pool, extractor), features(noisy, extractor)
            rng = np.random.default_rng(cfg.seed)
            for n in sizes(len(pool)):
                rows += [{"features": extractor.label, **r} for r in draws(f_pool, f_noisy, n, settings, rng)]
    df = pd.DataFrame(rows)
    shown = sorted({n for n in (20, TABLE3_N, sizes(len(pool))[-1]) if n in set(df["N"])})
    notes = [f"data: {data.index.description}; {len(pool)} real test images; two disjoint random sets of N per draw, "
             f"{DRAWS} draws per N; KID as in the tables (mean over {settings.kid_subsets} subsets of N/2).",
             f"halves: {CASES['halves']}; perturbed: {CASES['perturbed']}.",
             "FD at small N is biased upwards (its mean falls as N grows towards the large-N value); KID's mean stays "
             "put and only its spread shrinks. Table 3's per-target sets have N = 63.",
             "Inception: " + (f"weights from {ev.weights.source}." if ev.weights.available else
                              f"n/a ({ev.weights.problem}): the classifier's features only.")]
    record = {"protocol": NAME, "data": data.index.description, "draws": rows, "table": summary_rows(df, shown),
              "notes": notes}
    with ev.step("report"):
        folder = ev.write(record, None, render, data={"description": data.index.description, "test_images": len(pool)})
    return ProtocolResult(NAME, folder, {"metric_bias": df, "summary": pd.DataFrame(record["table"])}, ev.seconds)
