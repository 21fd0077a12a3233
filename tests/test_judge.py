"""The judge as an ensemble (``classifier.members``): it reads as the mean probability of its members, and each
member is the very classifier a single judge of that seed would be (same cache entry, same weights)."""
import os
import threading
import time

import pandas as pd
import pytest
import torch
from torch import nn

from starbench.config import resolve
from starbench.data import LoadedData, load_data
from starbench.data.batches import to_float
from starbench.errors import StarbenchError
from starbench.files import save_torch
from starbench.locks import exclusive
from starbench.metrics.classifier import (
    ClassifierRecipe,
    Ensemble,
    cached_classifier,
    resnet18,
    resnet_fast_path,
    strided_convs_on_1x1,
    train_classifier,
)
from starbench.progress import console
from starbench.protocols.rafd_expression import expression_classifier
from starbench.registry import PROTOCOLS
from starbench.train.speed import FastPath
from starbench.train.trainer import LOCK_FILE

SMOKE = ["protocol=rafd_expression", "scale=smoke", "fid.download=false", "train.progress=false",
         "data.synth_subjects=6", "classifier.epochs=1"]


class Constant(nn.Module):
    """A 'classifier' that gives the same logits for every image."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(x), -1)


def test_an_ensemble_judges_by_the_mean_probability_not_by_a_vote():
    x = torch.zeros(2, 3, 8, 8)
    # one-of-K: one member sure of class 0, two leaning to class 1; the vote says 1, the mean probability 0
    probs = [[0.98, 0.01, 0.01], [0.40, 0.59, 0.01], [0.40, 0.59, 0.01]]
    onehot = Ensemble([Constant(torch.tensor(p).log().tolist()) for p in probs], "onehot")
    out = onehot(x)
    assert torch.allclose(out.softmax(-1), torch.tensor(probs).mean(0).expand(2, -1), atol=1e-6)
    assert out.argmax(1).tolist() == [0, 0]
    # attributes: sigmoid 0.9, 0.3, 0.4 average to 0.533: present (logit > 0), though two of three say absent
    sig = torch.tensor([[0.9], [0.3], [0.4]])
    multilabel = Ensemble([Constant(torch.logit(s).tolist()) for s in sig], "multilabel")
    out = multilabel(x)
    assert torch.allclose(torch.sigmoid(out), sig.mean(0).expand(2, -1), atol=1e-6)
    assert (out > 0).all()
    with pytest.raises(ValueError):
        Ensemble([Constant([0.0])], "regression")


def test_members_are_the_single_classifiers_of_their_seeds():
    one = resolve(SMOKE)
    two = resolve(SMOKE + ["classifier.members=2"])
    data = load_data(one, show_progress=False)
    cpu = torch.device("cpu")
    ensemble, info, extractor = expression_classifier(two, data, cpu)
    single, single_info, single_extractor = expression_classifier(one, data, cpu)
    other, other_info, _ = expression_classifier(resolve(SMOKE + ["classifier.seed=1"]), data, cpu)
    # member 0 is the seed-0 judge (its cache entry, its extractor file); member 1 the seed-1 judge
    assert [m["seed"] for m in info["members"]] == [0, 1]
    assert [m["key"] for m in info["members"]] == [single_info["key"], other_info["key"]]
    assert info["key"] == single_info["key"] and extractor == single_extractor
    assert single_info["cached"] and other_info["cached"]  # trained once, by the ensemble
    for member, alone in zip(ensemble.members, (single, other)):
        assert all(torch.equal(a, b) for a, b in zip(member.state_dict().values(), alone.state_dict().values()))
    # ... and the ensemble's verdict is their mean probability
    x = to_float(torch.from_numpy(data.images[data.split("test")[:16]]))
    with torch.no_grad():
        mean = (single(x).softmax(-1) + other(x).softmax(-1)) / 2
        assert torch.allclose(ensemble(x).softmax(-1), mean, atol=1e-5)
        assert not torch.allclose(single(x), other(x))  # two seeds, two networks


def test_an_empty_ensemble_is_refused():
    with pytest.raises(StarbenchError, match="classifier.members"):
        resolve(SMOKE + ["classifier.members=0"])


def test_learning_curve_points_are_cached_per_judge(tmp_path):
    """A kept checkpoint's score is cached beside it for the judge that gave it: another judge scores it anew (the
    same numbers as in a run folder of its own), and the first judge's cache is still there for it."""
    base = SMOKE + ["train.tensorboard=false", "train.steps=8", "models=[stargan]", "curve_every=3"]

    def curve(run_dir, judge_seed):
        folder = tmp_path / f"results-{run_dir}-{judge_seed}"
        PROTOCOLS.get("rafd_expression")(resolve(base + [f"run_dir={tmp_path / run_dir}", f"results_dir={folder}",
                                                         f"classifier.seed={judge_seed}"]))
        return pd.read_csv(folder / "rafd_expression" / "curve.csv")

    first, second = curve("shared", 0), curve("shared", 1)
    alone = curve("own", 1)  # judge 1 on a run trained in a folder of its own: nothing cached by judge 0
    assert second[["step", "error %"]].equals(alone[["step", "error %"]])
    assert first[["step", "error %"]].equals(curve("shared", 0)[["step", "error %"]])
    kept = next((tmp_path / "shared" / "models").glob("stargan-*")) / "kept"
    checkpoints = sorted(kept.glob("step_*.pt"))  # one cached score per judge beside each
    assert len(checkpoints) == 2 and all(len(list(kept.glob(f"{c.stem}.*.json"))) == 2 for c in checkpoints)


def test_learning_curve_points_are_cached_per_generator_weights(tmp_path):
    """A kept checkpoint holds the last weights and their average: a re-score with generator_weights=last scores
    its curve points with the last weights (as in a run folder of its own), not the average's cached points."""
    base = SMOKE + ["train.tensorboard=false", "train.steps=8", "models=[stargan]", "curve_every=3",
                    "train.ema_window=0.5"]

    def curve(run_dir, weights):
        folder = tmp_path / f"results-{run_dir}-{weights}"
        PROTOCOLS.get("rafd_expression")(resolve(base + [f"run_dir={tmp_path / run_dir}", f"results_dir={folder}",
                                                         f"generator_weights={weights}"]))
        points = pd.read_csv(folder / "rafd_expression" / "curve.csv")
        return points[points["step"] < 8][["step", "error %", "L1 to ground truth"]].reset_index(drop=True)

    averaged, last = curve("shared", "average"), curve("shared", "last")
    assert last.equals(curve("own", "last"))  # the same points as where no average was scored first
    assert not averaged["L1 to ground truth"].equals(last["L1 to ground truth"])
    kept = next((tmp_path / "shared" / "models").glob("stargan-*")) / "kept"
    checkpoints = sorted(kept.glob("step_*.pt"))
    assert len(checkpoints) == 2 and all(len(list(kept.glob(f"{c.stem}.*.json"))) == 2 for c in checkpoints)


def test_curve_points_go_to_the_runs_tensorboard_events_once(tmp_path):
    """The learning curve is logged beside the run's losses in TensorBoard, each point once: the values the curve
    file holds, at their steps, and a second command (its points read from their cache) logs none again."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    base = SMOKE + ["train.tensorboard=true", "train.steps=8", "models=[stargan]", "curve_every=3",
                    f"run_dir={tmp_path / 'runs'}"]
    PROTOCOLS.get("rafd_expression")(resolve(base + [f"results_dir={tmp_path / 'first'}"]))
    run = next((tmp_path / "runs" / "models").glob("stargan-*"))

    def logged() -> list[tuple[int, float]]:
        events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
        events.Reload()
        return [(e.step, round(e.value, 4)) for e in events.Scalars("curve/rafd_expression/error %")]

    curve = pd.read_csv(tmp_path / "first" / "rafd_expression" / "curve.csv")
    kept = curve[curve["step"] < 8]  # the final model's point is the table's, not a kept checkpoint's
    assert logged() == [(int(s), round(float(e), 4)) for s, e in zip(kept["step"], kept["error %"])]
    assert [s for s, _ in logged()] == [3, 6]
    PROTOCOLS.get("rafd_expression")(resolve(base + [f"results_dir={tmp_path / 'second'}"]))
    assert [s for s, _ in logged()] == [3, 6]  # read from the cache, not logged twice


def test_curve_checkpoints_are_scored_while_their_run_trains_in_another_process(tmp_path):
    """While the only run left is held by another process (a helper training it), the protocol scores the
    checkpoints that run has kept so far instead of waiting idle; once the run is let go (here unfinished: the
    protocol trains it again, to the same bits), its curve reads those scores from their cache, and the curve is the
    one a command that waited gives."""
    base = SMOKE + ["train.tensorboard=false", "train.steps=8", "models=[stargan]", "curve_every=3",
                    f"run_dir={tmp_path / 'runs'}"]
    PROTOCOLS.get("rafd_expression")(resolve(base + [f"results_dir={tmp_path / 'waited'}"]))
    run = next((tmp_path / "runs" / "models").glob("stargan-*"))
    scores = sorted((run / "kept").glob("step_*.json"))
    assert len(scores) == 2
    for f in [*scores, *run.glob("checkpoint*.pt")]:  # as if the run were still training: checkpoints kept, none
        f.unlink()                                        # scored yet, the run not finished
    holding = threading.Event()
    scored_while_held = []

    def hold_until_scored() -> None:  # a helper's hold on the run folder, as the Trainer takes it
        with exclusive(run / LOCK_FILE, f"run folder {run}"):
            holding.set()
            deadline = time.monotonic() + 30  # without the feature the protocol waits for the lock: let go anyway
            while time.monotonic() < deadline and len(list((run / "kept").glob("step_*.json"))) < 2:
                time.sleep(0.1)
            scored_while_held.append(len(list((run / "kept").glob("step_*.json"))))

    helper = threading.Thread(target=hold_until_scored)
    helper.start()
    holding.wait()
    try:
        with console.capture() as out:
            PROTOCOLS.get("rafd_expression")(resolve(base + [f"results_dir={tmp_path / 'meanwhile'}"]))
    finally:
        helper.join()
    assert scored_while_held == [2]
    assert f"waiting for runs in training elsewhere (stargan by process {os.getpid()} on " in out.get()
    assert "scoring its learning-curve checkpoints as they are kept" in out.get()
    waited = pd.read_csv(tmp_path / "waited" / "rafd_expression" / "curve.csv")
    meanwhile = pd.read_csv(tmp_path / "meanwhile" / "rafd_expression" / "curve.csv")
    assert meanwhile.drop(columns="train seconds").equals(waited.drop(columns="train seconds"))
    assert [int(s) for s in meanwhile["step"]] == [3, 6, 8]
    # a limit on waiting (train.lock_timeout) stays the lock's: nothing is scored meanwhile, the wait fails in time
    for f in [*(run / "kept").glob("step_*.json"), *run.glob("checkpoint*.pt")]:
        f.unlink()
    with exclusive(run / LOCK_FILE, f"run folder {run}"):
        with pytest.raises(StarbenchError, match=r"still in use by .* after waiting 0.5 s \(train.lock_timeout\)"):
            PROTOCOLS.get("rafd_expression")(resolve(base + [f"results_dir={tmp_path / 'limited'}",
                                                             "train.lock_timeout=0.5"]))
    assert not list((run / "kept").glob("step_*.json"))


def test_the_judge_key_holds_its_train_rows_and_its_threads(monkeypatch):
    """A cached judge is found again only by a command that would train the very same one: the same images, the same
    train rows and labels, the same recipe and arithmetic. Another split (same images) or another thread count
    (other bits) is another judge."""
    import starbench.evaluate.classifiers as classifiers
    from starbench.metrics.classifier import resnet18

    keys = []

    def record(root, key, n, device, train):
        keys.append(key)
        return resnet18(n), {"key": key, "recipe": {"seed": 0}, "cached": True}

    monkeypatch.setattr(classifiers, "cached_classifier", record)
    base = ["scale=smoke", "data.synth_subjects=6", "classifier.members=1"]
    before = torch.get_num_threads()
    try:
        for threads, extra in ((1, []), (1, []), (2, []), (1, ["data.test_fraction=0.3"])):
            torch.set_num_threads(threads)
            cfg = resolve(base + extra)
            classifiers.task_classifier(cfg, load_data(cfg, show_progress=False), torch.device("cpu"), "expression",
                                        "onehot", "judge")
    finally:
        torch.set_num_threads(before)
    same, again, other_threads, other_split = keys
    assert same == again and len({same, other_threads, other_split}) == 3


def test_a_judge_trains_with_a_training_process_threads_whether_or_not_methods_train_beside_it(monkeypatch):
    """metric_bias trains no method, so no helper shares the cores with it; with jobs=2 its judge must still be the
    one rafd_expression trains beside a helper (one training process's share of the cores), not a judge of other
    arithmetic. With jobs=1 the judge keeps the process's own count. The count is given back afterwards."""
    import starbench.evaluate.classifiers as classifiers
    import starbench.evaluate.parallel as parallel
    from starbench.metrics.classifier import resnet18

    seen = []

    def record(root, key, n, device, train):
        seen.append((key, torch.get_num_threads()))
        return resnet18(n), {"key": key, "recipe": {"seed": 0}, "cached": True}

    monkeypatch.setattr(classifiers, "cached_classifier", record)
    monkeypatch.setattr(parallel, "cpu_cores", lambda: 4)  # jobs=2: 2 threads a process
    base = ["scale=smoke", "data.synth_subjects=6", "classifier.members=1"]
    data = load_data(resolve(base), show_progress=False)
    before = torch.get_num_threads()
    after = []
    try:
        for threads, jobs in ((3, 2), (2, 2), (3, 1)):  # alone; inside side_by_side (which sets 2); jobs=1
            torch.set_num_threads(threads)
            classifiers.task_classifier(resolve(base + [f"jobs={jobs}"]), data, torch.device("cpu"), "expression",
                                        "onehot", "judge")
            after.append(torch.get_num_threads())
    finally:
        torch.set_num_threads(before)
    (alone_key, alone_threads), (beside_key, beside_threads), (one_key, one_threads) = seen
    assert alone_threads == beside_threads == 2 and alone_key == beside_key
    assert one_threads == 3 and one_key != alone_key
    assert after == [3, 2, 3]


def test_a_judge_that_could_only_guess_is_refused(tmp_path):
    """A judge is refused, naming what is wrong, rather than judging at random: an expression with no training image,
    too few training images, a loss that stops being finite, and a cached network holding NaN weights (the file is
    left as it is)."""
    cfg = resolve(SMOKE)
    data = load_data(cfg, show_progress=False)
    cpu = torch.device("cpu")
    train = data.split("train")
    # every training image of 'happy' relabelled 'neutral': the judge could never say 'happy'
    names = list(data.domains.names)
    labels = data.labels.copy()
    happy = train[labels[train, names.index("happy")] == 1]
    assert len(happy) > 0
    labels[happy] = 0
    labels[happy, names.index("neutral")] = 1
    with pytest.raises(StarbenchError, match="happy has no training image"):
        expression_classifier(cfg, LoadedData(data.index, data.images, labels), cpu)
    recipe = ClassifierRecipe(epochs=1, batch_size=8, seed=0)
    with pytest.raises(StarbenchError, match="judge X: 1 training image"):
        train_classifier(data.images, data.labels, train[:1], "onehot", recipe, cpu, "judge X", show_progress=False)
    with pytest.raises(StarbenchError, match=r"judge Y: the training loss is (nan|inf)"):
        train_classifier(data.images, data.labels, train[:64], "onehot", ClassifierRecipe(epochs=2, batch_size=8,
                         lr=1e30), cpu, "judge Y", show_progress=False)
    net = resnet18(8)
    state = net.state_dict()
    state["bn1.running_var"] = torch.full_like(state["bn1.running_var"], float("nan"))
    save_torch(tmp_path / "classifiers" / "k.pt", {"state": state, "info": {}})
    before = (tmp_path / "classifiers" / "k.pt").read_bytes()
    with pytest.raises(StarbenchError, match=r"k\.pt: the cached classifier's bn1.running_var hold NaN"):
        cached_classifier(tmp_path, "k", 8, cpu, lambda: pytest.fail("a cached classifier is not trained again"))
    assert (tmp_path / "classifiers" / "k.pt").read_bytes() == before


def test_a_resnet_judge_on_small_images_trains_in_fp32_where_bf16_would_train_a_layer_wrongly():
    """torch's bf16 CPU convolution gives a padded stride-2 layer on a 1x1 map nondeterministic, sometimes non-finite
    weight gradients (benchmarks/results/bf16_strided_conv_cpu_amx.txt; a CI run's 16 px test judge stopped on a NaN
    loss). The ResNet-18 has such a layer at 16 px and below, none at the demo's 32 px: bf16 is dropped there only,
    and the cache key's precision follows."""
    assert strided_convs_on_1x1(16) == ["layer4.0.conv1"]
    assert strided_convs_on_1x1(8) == ["layer3.0.conv1", "layer4.0.conv1"]
    assert strided_convs_on_1x1(17) == strided_convs_on_1x1(32) == strided_convs_on_1x1(128) == []
    bf16 = FastPath(torch.bfloat16, True)
    assert resnet_fast_path(bf16, 16) == FastPath(None, True)
    assert resnet_fast_path(bf16, 32) == bf16
    assert resnet_fast_path(FastPath(None, False), 16) == FastPath(None, False)
