"""What the protocols' tables share: number formatting, rows for methods without metrics, and the notes on how
a table was made (training budget, seeds, where each source came from)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from starbench.evaluate.curves import TAIL, learned_verdict, plateau
from starbench.evaluate.parallel import as_this_command_saw_it
from starbench.evaluate.score import Scores
from starbench.evaluate.seeds import by_method, error_cells, mean_of, mean_sd, paired_over_seeds
from starbench.metrics.distances import CLASSIFIER, INCEPTION
from starbench.metrics.stats import error_rate


def fmt(x: Optional[float], digits: int = 2) -> str:
    """A table number: 'n/a' for missing or NaN, 'inf' for infinity (identical images' PSNR), no '-0.000'."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "n/a"
    if isinstance(x, float) and np.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = f"{x:.{digits}f}"
    return text.lstrip("-") if float(text) == 0 else text


def failed_row(r: Any, columns: list[str], status_column: str, **known: str) -> dict[str, str]:
    """A table row for a method with no metrics: its name (first column), 'diverged at step N' in
    ``status_column``, the ``known`` cells, n/a elsewhere."""
    row = {c: "n/a" for c in columns}
    row.update({columns[0]: r.name, status_column: r.status, **known})
    return row


def budget_note(results: list, end: str = ".") -> list[str]:
    """'Training budget per method: ...' for the sources trained here (none: no note); over seeds, the total."""
    trained: dict[str, list[dict]] = {}
    for r in results:
        if r.info["kind"] == "trained" and not r.diverged:
            trained.setdefault(r.name, []).append(r.info)
    if not trained:
        return []

    def schedule(run: dict) -> str:
        start = run.get("lr_decay_start")
        if start is None:
            return ""
        return " (constant lr)" if start >= run["steps"] else f" (lr falls to 0 from step {start})"

    def batch(run: dict) -> str:  # records made before the batch size was noted have none
        return f" at batch {run['batch_size']}" if run.get("batch_size") else ""

    def budget(m: str, runs: list[dict]) -> str:
        steps = f"{m} {runs[0]['steps']} steps{batch(runs[0])}{schedule(runs[0])}"
        if len(runs) == 1:
            return f"{steps}, {runs[0]['train_seconds']:.0f} s"
        return f"{steps} x {len(runs)} seeds, {sum(r['train_seconds'] for r in runs):.0f} s in all"
    return ["Training budget per method: " + "; ".join(budget(m, runs) for m, runs in trained.items()) + end]


def runs_provenance(results: list) -> dict[str, dict]:
    """Each source's provenance by row name (and seed, when a row has several)."""
    names = [r.name for r in results]
    return {(f"{r.name} (seed {r.seed})" if names.count(r.name) > 1 else r.name): as_this_command_saw_it(r.info)
            for r in results}


def seed_records(per_seed: Optional[list], results: list) -> dict[str, Any]:
    """What a record adds for seeds and learning curves (nothing in a single-seed run without a curve)."""
    out: dict[str, Any] = {}
    if per_seed is not None:
        out["per_seed"] = per_seed
    curve = [{"method": r.name, "seed": "-" if r.seed is None else r.seed, **point}
             for r in results for point in r.curve]
    if curve:
        out["curve"] = curve
    return out


def judge_words(cfg: Any) -> str:
    """How the protocol's classifier (the judge) was made, for the table notes."""
    n, s = cfg.classifier.members, cfg.classifier.seed
    if n == 1:
        return f"one ResNet-18 trained from scratch on the train split (classifier.seed={s})"
    return (f"an ensemble of {n} ResNet-18s trained from scratch on the train split (classifier.seed={s} to "
            f"{s + n - 1}), judging by the mean of their probabilities")


def judge_features(cfg: Any, classifier: str = "the classifier") -> str:
    """Whose 512-d features the classifier Fréchet distance and KID use (``classifier``: what the notes call it)."""
    return f"{classifier}'s 512-d features" if cfg.classifier.members == 1 else \
        "the first ensemble member's 512-d features"


def seeds_notes(cfg: Any, first: str) -> list[str]:
    """How a table over training seeds was made (``first``: what ranking first means in this protocol)."""
    seeds = ", ".join(str(s) for s in cfg.seeds)
    return [
        f"Training seeds {seeds}: every trained method was trained once per seed (its run key includes the seed, so "
        f"runs are shared with single-seed runs of the same seed). Cells give the mean ± sample sd over seeds; "
        f"per_seed.csv holds every seed's own rows. The classifier (classifier.seed={cfg.classifier.seed}, "
        f"{cfg.classifier.members} member(s)) and the "
        f"real-images row do not depend on the training seed. Sources not trained here have one value.",
        "95% CI over seeds (t): Student-t interval of the per-seed errors (clipped to 0-100), i.e. how far training "
        "luck moves a method; "
        "pooled 95% CI: Clopper-Pearson on all seeds' translations together, the test-set sampling error alone.",
        "McNemar p (pooled over seeds): exact McNemar test on (seed, input, target) triples, each seed's translations "
        "paired with StarGAN's of the same seed on the same inputs (a source not trained here against every StarGAN "
        "seed). It pools seeds as more paired data and so tests the difference on these inputs for these training "
        "runs; it does not treat the seed as the unit of replication: where the t-intervals over seeds overlap, read "
        "the difference as within training-seed noise.",
        f"first: in how many seeds the method had {first}.",
    ]


def one_seed_note(cfg: Any, results: list) -> list[str]:
    """What a single-seed table's intervals do not cover (none when nothing was trained here or seeds were given)."""
    if cfg.seeds is not None or not any(r.info["kind"] == "trained" for r in results):
        return []
    return [f"One training seed (seed={cfg.seed}): the 95% intervals and McNemar p are the test set's sampling error "
            "alone; they leave out how far another training seed, or another machine's arithmetic, moves each "
            "trained method. seeds=[0,1,2] measures that (t-intervals over seeds); read a single-seed difference "
            "as a draw, not a ranking."]


def origin_notes(results: list) -> list[str]:
    """Where each source that was not trained here came from, and what it noted (resized images)."""
    notes = []
    for r in results:
        if r.info["kind"] == "checkpoint":
            nets = ", ".join(r.info.get("networks") or []) or "none"
            notes.append(f"{r.name}: weights from {r.info['file']} ({r.info['format']}), not trained here; its "
                         f"parameters count the networks it holds ({nets}).")
        elif r.info["kind"] == "translator":
            notes.append(f"{r.name}: a translate-only model, evaluated as it is (not trained here).")
        elif r.info["kind"] == "folder":
            notes.append(f"{r.name}: {r.info['images']} translations read from the folder {r.info['folder']} "
                         f"(made outside starbench).")
        notes += r.notes
    return notes


@dataclass
class Method:
    """One table row: a method's scores (one per training seed; one in a single-seed run) and its cells.

    Every protocol builds its tables with one builder for one seed or several: a number is the value itself with one
    seed, the mean ± sample sd over seeds with several (``seeded``), and the same row code serves both."""

    name: str
    results: list[Scores]
    seeded: bool

    @property
    def ok(self) -> list[Scores]:
        """The seeds that have metrics (not diverged)."""
        return [r for r in self.results if not r.diverged]

    @property
    def status(self) -> Optional[str]:
        """'diverged at step N' when no seed has metrics."""
        return None if self.ok else self.results[0].status

    def number(self, value: Callable[[Scores], Optional[float]], digits: int = 2) -> str:
        values = [value(r) for r in self.ok]
        if self.seeded:
            return mean_sd(values, digits)
        return fmt(values[0], digits) if values else "n/a"

    def kid(self, label: str) -> str:
        """KID x1000 on extractor ``label``'s features averaged over the columns: with one seed its mean ± the sd of
        that mean over KID's subsets; with several the mean ± sd over seeds of each seed's average."""
        if self.seeded:
            return mean_sd([None if r.kid(label)[0] is None else 1000 * r.kid(label)[0] for r in self.ok], 2)
        mean, sd = self.ok[0].kid(label) if self.ok else (None, None)
        return "n/a" if mean is None else f"{1000 * mean:.2f} ± {1000 * (sd or 0.0):.2f}"

    def distribution(self, labels: Sequence[str], fd_column: dict[str, str]) -> dict[str, str]:
        """The distribution columns, averaged over the task's columns: per extractor its FD (named by
        ``fd_column``, else '<label> FD') and its KID x1000, then the classifier's precision and recall."""
        out: dict[str, str] = {}
        for label in labels:
            out[fd_column.get(label, f"{label} FD")] = self.number(lambda r: mean_of(r.dist(label, "fd")),
                                                                   3 if label == CLASSIFIER else 2)
            out[f"KID x1000 ({label})" if label == INCEPTION else f"{label} KID x1000"] = self.kid(label)
        out["classifier precision"] = self.number(lambda r: mean_of(r.dist(CLASSIFIER, "precision")), 3)
        out["classifier recall"] = self.number(lambda r: mean_of(r.dist(CLASSIFIER, "recall")), 3)
        return out

    def budget(self, wrong: Callable[[Scores], np.ndarray], not_learned: Optional[float] = None) -> dict[str, str]:
        """How far the method was trained and whether it had converged: steps, generator updates, training seconds
        (per seed) and the plateau test (``evaluate.curves``) on its seed-mean error curve against the final error's
        pooled 95% interval. '-' for sources not trained here.

        ``not_learned`` (error %): at or above it the method did not learn the task, and the cell says so first
        (``evaluate.curves.learned_verdict``)."""
        runs = [r for r in self.ok if r.info.get("kind") == "trained"]
        if not runs:
            return {"steps": "-", "G updates": "-", "train s": "-", "converged": "-" if self.ok else "n/a"}
        info = runs[0].info
        seconds = float(np.mean([r.info.get("train_seconds", 0.0) for r in runs]))
        pooled = error_rate(np.concatenate([wrong(r) for r in runs]))
        by_step: dict[int, list[float]] = {}
        for r in runs:
            for point in r.curve:
                if point.get("error %") is not None:
                    by_step.setdefault(int(point["step"]), []).append(float(point["error %"]))
        curve = [(s, float(np.mean(v))) for s, v in sorted(by_step.items()) if len(v) == len(runs)]
        verdict = plateau(curve, 100 * (pooled.high - pooled.low) / 2).text()
        return {"steps": str(info["steps"]), "G updates": str(info.get("generator_updates", "-")),
                "train s": f"{seconds:.0f}", "converged": learned_verdict(verdict, 100 * pooled.rate, not_learned)}

    def seeds(self) -> str:
        """'3' or '3 (1 diverged)': the seeds column."""
        failed = len(self.results) - len(self.ok)
        return str(len(self.ok)) + (f" ({failed} diverged)" if failed else "")

    def mcnemar_vs(self, groups: dict[str, list[Scores]], wrong: Callable[[Scores], np.ndarray],
                   reference: str = "stargan") -> dict[str, str]:
        """McNemar's exact test against ``reference``'s row on the same translations (pooled over (seed, cell)
        pairs with several seeds), as its column: '-' for the reference itself, or where it is not in ``groups``."""
        test = (paired_over_seeds(groups[reference], self.results, wrong)
                if reference in groups and self.name != reference else None)
        column = f"McNemar p vs {reference}" + (" (pooled over seeds)" if self.seeded else "")
        return {column: fmt(test.p_value, 4) if test else "-"}

    def error(self, wrong: Callable[[Scores], np.ndarray]) -> dict[str, str]:
        """The classification error: with its Clopper-Pearson interval (one seed), or mean ± sd with the t-interval
        over seeds and the pooled interval (several); the status of a method that diverged."""
        if self.seeded:
            return error_cells(self.results, wrong)
        return {"classification error % [95% CI]": error_rate(wrong(self.ok[0])).text() if self.ok else self.status}


def methods(results: Sequence[Scores], seeded: bool) -> list[Method]:
    """The table's rows, in the order the methods first appear."""
    return [Method(name, rs, seeded) for name, rs in by_method(results).items()]


def distribution_labels(cfg: Any) -> list[str]:
    """The extractors whose columns a table shows, in order: Inception (n/a without weights), the classifier, and
    the user's ``metrics.extractor``."""
    return [INCEPTION, CLASSIFIER] + ([str(cfg.metrics.extractor)] if cfg.metrics.extractor else [])


def distribution_notes(cfg: Any, n_per_target: str) -> list[str]:
    """How the KID and precision/recall columns were made (``n_per_target``: the set sizes, in words)."""
    m = cfg.metrics
    extra = (f" {m.extractor}: the same FD and KID on that torch-fidelity extractor's features"
             f"{' (weights ' + Path(m.extractor_weights).name + ')' if m.extractor_weights else ''}."
             if m.extractor else "")
    return [f"KID x1000 (Bińkowski et al. 2018; unbiased at any N, so slightly negative values mean 'no detectable "
            f"difference'): per target on {n_per_target}, mean ± sd over {m.kid_subsets} random subsets of half the "
            f"smaller set, averaged over targets (one seed: ± the sd of that average; several: ± sd over seeds). FD "
            f"is biased upwards at this N by an amount that depends on the model: compare methods by KID; "
            f"`starbench run protocol=metric_bias` shows how far N moves each.",
            f"classifier precision / recall (Kynkäänniemi et al. 2019, k = {m.prc_neighborhood}): the share of "
            f"translations inside the real images' feature manifold / of real images inside the translations', "
            f"on the classifier's features, averaged over targets; sets under {m.min_images} images give n/a." + extra]


def convergence_notes(results: Sequence[Scores], error: str) -> list[str]:
    """How the steps / converged columns were made, and what trained methods translated with (``error``: the
    curve's error in words)."""
    trained = [r for r in results if r.info.get("kind") == "trained" and not r.diverged]
    if not trained:
        return []
    notes = [f"converged: the plateau test on each method's learning curve ({error}, the mean over seeds; "
             f"starbench/evaluate/curves.py): over the curve points in the last {100 * TAIL:g}% of its training, yes "
             f"when the straight line fitted through them changes by less than the half-width h of the final "
             f"error's pooled 95% interval and they scatter around it with an sd below h / 1.96; NO (trend) marks a "
             f"method whose number was still moving, NO (swings) one whose number depends on the step it was taken "
             f"at, unknown one with too few curve points (curve_points); 'did not learn' comes first where the error "
             f"is at the protocol's no-learning level (the RaFD expression tables: 75%, an 8-way judge guessing "
             f"87.5%; CelebA's tables have none), where a flat curve passes the test. G updates: generator updates "
             f"in those steps (StarGAN: one per n_critic steps). train s: training wall time per seed."]
    weights = {r.name: r.info.get("weights", "last") for r in trained}
    if set(weights.values()) == {"last"}:
        notes.append("Trained methods translate with their last weights.")
    else:
        notes.append("Trained methods translate with an exponential moving average of the weights of the networks "
                     f"their translation uses, every method alike ({'; '.join(f'{k}: {v}' for k, v in weights.items())}"
                     f"; generator_weights=last for the last weights, as the paper's code evaluates).")
    return notes

