"""``starbench plan``: the training jobs a protocol needs, as commands that run anywhere sharing ``run_dir``.

One ``starbench train`` per (method, seed) that the protocol would train, each into the very run
folder the protocol will look in (``run_dir/models/<model>-<data>-<key>``), then the ``starbench run``
line that, once they are done, only evaluates. The lines are independent: a SLURM array, several GPUs
or one shell loop can run them, concurrently too (the run-folder lock keeps two jobs on one folder
from corrupting it). Each train line's config is checked here to give the run key the protocol
computes, so a plan never trains something the protocol would not reuse.
"""
from __future__ import annotations

import shlex
from typing import Any

from starbench.config import EVALUATION_ONLY, parse_overrides, resolve
from starbench.errors import StarbenchError
from starbench.evaluate.runs import PER_MODEL, run_key
from starbench.evaluate.sources import TrainedSource
from starbench.models.classes import section_of
from starbench.registry import PROTOCOLS

# The machine-only settings a train line must not inherit: each line names its own run folder, and a train line is
# one job. ``device`` and ``cache_dir`` (the rest of ``config.MACHINE_ONLY``) do travel: the training runs where the
# user asked, beside the protocol's cache.
NOT_PASSED_ON = ("run_dir", "jobs")


def dotlist(delta: dict[str, Any], prefix: str = "") -> list[str]:
    """{'seed': 1, 'train': {'keep_every': 10}} -> ['seed=1', 'train.keep_every=10'] (None as null)."""
    out = []
    for key, value in delta.items():
        if isinstance(value, dict):
            out += dotlist(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={'null' if value is None else value}")
    return out


def training_overrides(overrides: list[str]) -> list[str]:
    """The user's settings that reach a trained model: the evaluation-only ones (``config.EVALUATION_ONLY``) dropped,
    and ``NOT_PASSED_ON``."""
    keep = []
    for item, expanded in zip(overrides, parse_overrides(overrides)):
        top = expanded.split("=", 1)[0].split(".", 1)[0]
        if top not in EVALUATION_ONLY and top not in NOT_PASSED_ON:
            keep.append(item)
    return keep


def protocol_budget(source: TrainedSource, line: Any) -> list[str]:
    """The protocol's own per-model budget and schedule (``train.model_steps`` / ``model_decay_from``) where the train
    line alone would resolve others: a model's ``steps`` preset may name a dataset (``"demo/joint"``), which the
    protocol resolves for its whole run (joint training: SNG on RaFD too) and a train line for its own dataset."""
    own = section_of(source.model_name)
    out = []
    for key in PER_MODEL:
        want, got = (c.train.get(key, {}).get(own) for c in (source.cfg, line))
        if want is not None and want != got:
            out.append(f"train.{key}.{own}={want}")
    return out


def plan(overrides: list[str]) -> list[dict[str, Any]]:
    """The jobs: ``{"kind": "train", "method", "model", "seed", "run_dir", "argv", "command"}`` per trained source,
    then ``{"kind": "run", "argv", "command"}``."""
    cfg = resolve(overrides)
    if not cfg.protocol:
        raise StarbenchError(f"which protocol? give protocol=NAME; available: {', '.join(PROTOCOLS.names())}")
    jobs_of = getattr(PROTOCOLS.get(cfg.protocol), "jobs", None)
    sources: list[TrainedSource] = jobs_of(cfg) if jobs_of is not None else []
    base = training_overrides(overrides)
    out: list[dict[str, Any]] = []
    for s in sources:
        folder = s.run_folder()
        data = [] if "data" in s.delta else [f"data={s.cfg.data.name}"]
        own = dotlist({k: v for k, v in s.delta.items() if k != "model"})
        argv = ["starbench", "train", *base, *data, *own, f"model={s.model_name}", f"run_dir={folder}"]
        check = resolve(argv[2:])
        budget = protocol_budget(s, check)
        if budget:
            argv[-2:-2] = budget
            check = resolve(argv[2:])
        if run_key(check, s.model_name, s.fp) != run_key(s.cfg, s.model_name, s.fp):  # pragma: no cover - a bug
            raise StarbenchError(f"plan: the train line for {s.name} (seed {s.seed}) would not give the run the "
                                 f"protocol looks for ({folder}); please report this")
        out.append({"kind": "train", "method": s.name, "model": s.model_name, "seed": s.seed, "run_dir": str(folder),
                    "argv": argv, "command": shlex.join(argv)})
    argv = ["starbench", "run", *overrides]
    out.append({"kind": "run", "argv": argv, "command": shlex.join(argv)})
    return out
