"""Protocol ``params``: parameter counts of every method, beside the paper's Table 3 column.

Counts the networks at the paper's sizes (128 px, every built-in model's default widths and depths,
whatever ``scale`` and the model keys say), built on PyTorch's meta device so nothing is allocated and no data is
read. Writes ``results/params/``:

- ``params.csv|md|tex``: per method, the parameters of one instance (and its networks), the
  instances needed for RaFD's 8 expressions with the paper's neutral-to-all protocol, the total,
  and the paper's column;
- ``params_vs_domains.csv`` and ``params.png``: total parameters for all-pairs translation among k
  domains, k = 2..10 (StarGAN and IcGAN stay one model; DIAT needs k(k-1) one-directional models,
  CycleGAN k(k-1)/2 bidirectional ones, i.e. k(k-1) directions).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from omegaconf import OmegaConf

from starbench.baselines.pairwise import Pairwise, resolve_pairs
from starbench.config import schema_for, sections_for
from starbench.data.domains import DomainSpec
from starbench.data.rafd import rafd_domains
from starbench.files import write_json
from starbench.paper import TABLE3_PARAMS, params_text
from starbench.registry import MODELS, register_protocol
from starbench.report import ProtocolResult, plt, provenance, results_folder, save_record, write_table
from starbench.train.trainer import build_model

PAPER_SIZE = 128
KS = range(2, 11)


def paper_sized(cfg: Any) -> Any:
    """The config with every compared model's options at their paper defaults (its ``paper`` preset over the
    defaults its class declares) and 128 px images."""
    defaults = OmegaConf.structured(schema_for(cfg.models))
    paper = {s.name: OmegaConf.merge(defaults[s.name], s.presets.get("paper", {})) for s in sections_for(cfg.models)}
    return OmegaConf.merge(cfg, paper, {"data": {"image_size": PAPER_SIZE}, "pair": None})


def counts_for(name: str, domains: DomainSpec, cfg: Any) -> tuple[list[int], dict[str, int]]:
    """(parameters of each instance, parameters per network of one instance), built on the meta device.

    Two-domain models have identical instances, so one pair is built and counted once per instance.
    """
    cls = MODELS.get(name)
    n_instances = 1
    if isinstance(cls, type) and issubclass(cls, Pairwise):
        pairs = resolve_pairs(domains, None, cls.instance_class.bidirectional)
        a, b = pairs[0]
        cfg = OmegaConf.merge(cfg, {"pair": f"{a},{b}"})
        n_instances = len(pairs)
    with torch.device("meta"):
        model = build_model(name, domains, cfg)
    if isinstance(model, Pairwise):
        inst = next(iter(model.instances.values()))
        directions = inst.instance_networks()
        per_direction = [sum(p.numel() for n in names for p in inst.nets[n].parameters())
                         for names in directions.values()]
        first = next(iter(directions.values()))
        nets = {n: sum(p.numel() for p in inst.nets[n].parameters()) for n in first}
        return per_direction * n_instances, nets
    return [sum(model.parameter_counts().values())], model.parameter_counts()


def millions(n: float) -> str:
    return f"{n / 1e6:.1f}M"


NOTES = [
    "RaFD instances follow the paper's protocol: neutral -> each of the 7 other expressions (DIAT one-directional: 7; "
    "CycleGAN bidirectional: 7 pairs, 14 directions).",
    "A two-domain instance counts one direction's generator and discriminator. DIAT's identity network F is not "
    "counted (fixed, auxiliary); IcGAN's encoders E_z and E_y are (editing needs them).",
    "IcGAN's paper figure (67.8M) could not be derived from the paper's text; the layer sizes used are "
    "documented in starbench/baselines/icgan.py.",
]


def render(record: dict[str, Any], arrays: dict[str, Any], folder: Path) -> None:
    """params.{csv,md,tex}, params_vs_domains.csv and params.png from the run record."""
    write_table(pd.DataFrame(record["params"]), folder, "params",
                caption="Parameters per method (128 px, RaFD's 8 expressions)", notes=NOTES)
    sweep_df = pd.DataFrame(record["sweep"])
    sweep_df.to_csv(folder / "params_vs_domains.csv", index=False)
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(6, 4))
    styles = [("-", "o", 6), ("--", "s", 9), (":", "^", 5), ("-.", "d", 6)]
    for i, (name, grp) in enumerate(sweep_df.groupby("method", sort=False)):
        ls, marker, size = styles[i % len(styles)]
        ax.plot(grp["k"], grp["total parameters"] / 1e6, linestyle=ls, marker=marker, markersize=size,
                fillstyle="none" if i % 2 else "full", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("number of domains k (all-pairs translation)")
    ax.set_ylabel("total parameters (millions, log scale)")
    ax.set_title("Models needed to translate among k domains")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "params.png", dpi=120, metadata={"Software": None})
    pyplot.close(fig)


@register_protocol("params", "parameter counts per method and instance vs the paper's Table 3 (no data, seconds)",
                   render=render)
def run(cfg: Any) -> ProtocolResult:
    start = time.perf_counter()
    pcfg = paper_sized(cfg)
    rows = []
    for name in cfg.models:
        per_instance, nets = counts_for(name, rafd_domains(), pcfg)
        one = per_instance[0]
        rows.append({
            "method": name,
            "networks per instance": " + ".join(f"{k} {v:,}" for k, v in nets.items()),
            "parameters per instance": f"{one:,}",
            "instances (RaFD)": len(per_instance),
            "total": f"{sum(per_instance):,}",
            "starbench": f"{millions(one)} x {len(per_instance)}",
            "paper": params_text(name) or "-",
        })
    table = pd.DataFrame(rows)
    sweep = []
    for k in KS:
        domains = DomainSpec.onehot([f"d{i}" for i in range(k)])
        for name in cfg.models:
            per_instance, _ = counts_for(name, domains, pcfg)
            sweep.append({"k": k, "method": name, "instances": len(per_instance),
                          "total parameters": sum(per_instance)})
    sweep_df = pd.DataFrame(sweep)
    record = {"protocol": "params", "params": rows, "sweep": sweep}
    with results_folder(cfg.results_dir, "params") as folder:
        save_record(folder, record)
        render(record, {}, folder)
        write_json(folder / "provenance.json", provenance(pcfg, protocol="params", image_size=PAPER_SIZE,
                                                          paper_params=TABLE3_PARAMS,
                                                          wall_seconds=round(time.perf_counter() - start, 2)))
    return ProtocolResult("params", folder.parent / "params", {"params": table, "params_vs_domains": sweep_df},
                          time.perf_counter() - start)
