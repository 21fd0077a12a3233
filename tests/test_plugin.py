"""A model defined outside starbench, plugged in by module:Class, trained and evaluated by rafd_expression."""
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from starbench.config import model_section, preset, resolve
from starbench.errors import StarbenchError
from starbench.registry import PROTOCOLS
from starbench.train.checkpoint import read_checkpoint
from starbench.train.trainer import build_model

PLUGIN = textwrap.dedent('''
    """A user's own model: a small conditional network trained to reconstruct its input."""
    import torch
    from torch import nn
    from starbench.models.base import TranslationModel, Translator


    class TinyConditional(TranslationModel):
        def __init__(self, domains, cfg):
            super().__init__(domains, cfg)
            c = domains.label_dim
            self.G = nn.Sequential(nn.Conv2d(3 + c, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1),
                                   nn.Tanh())
            self.opt = None

        def networks(self):
            return {"G": self.G}

        def optimizers(self):
            if self.opt is None:
                self.opt = torch.optim.Adam(self.G.parameters(), 1e-3)
                for g in self.opt.param_groups:
                    g.setdefault("initial_lr", g["lr"])
            return {"G": self.opt}

        def _g(self, x, c):
            return self.G(torch.cat([x, c[:, :, None, None].expand(-1, -1, x.size(2), x.size(3))], 1))

        def train_step(self, batch, step):
            loss = (self._g(batch.x, batch.label) - batch.x).abs().mean()
            self.optimizers()["G"].zero_grad()
            loss.backward()
            self.grad_sync(self.G)
            self.optimizers()["G"].step()
            return {"L1": loss.detach()}

        @torch.no_grad()
        def translate(self, x, source, target):
            return self._g(x, target)


    class NotAModel:
        def networks(self):
            return {}


    class Brighter(Translator):
        """A model from another code base: it only translates, with weights in its own file format."""

        def __init__(self, domains, cfg):
            super().__init__(domains, cfg)
            self.gain = 0.0

        def load(self, path):
            self.gain = float(open(path).read())

        @torch.no_grad()
        def translate(self, x, source, target):
            return (x + self.gain).clamp(-1, 1)
''')


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "my_lab_models.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_lab_models"


def test_plugin_model_gets_its_own_row(tmp_path, plugin):
    cfg = resolve(["scale=smoke", "fid.download=false", "train.progress=false", "data.synth_subjects=6",
                   "train.steps=6", "classifier.epochs=1", f"run_dir={tmp_path / 'runs'}",
                   f"results_dir={tmp_path / 'results'}", f"models=[stargan,{plugin}:TinyConditional]"])
    PROTOCOLS.get("rafd_expression")(cfg)
    table = pd.read_csv(tmp_path / "results" / "rafd_expression" / "table3.csv", keep_default_na=False)
    assert list(table["method"]) == ["stargan", f"{plugin}:TinyConditional", "real images"]
    row = table.set_index("method").loc[f"{plugin}:TinyConditional"]
    assert row["paper error %"] == "-" and row["parameters"].endswith("x 1")
    assert row["McNemar p vs stargan"] != "-"


def test_plugin_that_misses_the_interface(plugin):
    cfg = resolve(["scale=smoke"])
    with pytest.raises(StarbenchError, match="does not implement train_step, translate"):
        build_model(f"{plugin}:NotAModel", None, cfg)
    with pytest.raises(StarbenchError, match="has no attribute 'Nothing'"):
        build_model(f"{plugin}:Nothing", None, cfg)


def test_translate_only_model_is_evaluated_without_training(tmp_path, plugin):
    (tmp_path / "gain.txt").write_text("0.5")
    cfg = resolve(["scale=smoke", "fid.download=false", "train.progress=false", "data.synth_subjects=6",
                   "train.steps=4", "classifier.epochs=1", f"run_dir={tmp_path / 'runs'}",
                   f"results_dir={tmp_path / 'results'}",
                   f"models=[{plugin}:Brighter,{plugin}:Brighter@{tmp_path / 'gain.txt'}]"])
    PROTOCOLS.get("rafd_expression")(cfg)
    out = tmp_path / "results" / "rafd_expression"
    table = pd.read_csv(out / "table3.csv", keep_default_na=False).set_index("method")
    plain, brighter = table.loc[f"{plugin}:Brighter"], table.loc[f"{plugin}:Brighter@gain.txt"]
    assert float(brighter["L1 to ground truth"]) > float(plain["L1 to ground truth"]) > 0
    assert plain["parameters"] == "-" and plain["McNemar p vs stargan"] == "-"  # no stargan row to test against
    assert not (tmp_path / "runs" / "models").exists()
    notes = (out / "table3.md").read_text()
    assert f"{plugin}:Brighter: a translate-only model, evaluated as it is" in notes
    assert f"{plugin}:Brighter@gain.txt: weights from gain.txt (Brighter)" in notes
    # the Trainer refuses it with the reason
    from click.testing import CliRunner

    from starbench.cli import cli
    res = CliRunner().invoke(cli, ["train", f"model={plugin}:Brighter", "scale=smoke", f"run_dir={tmp_path / 'r'}"])
    assert res.exit_code == 2 and "only translates" in res.output and f"models=[{plugin}:Brighter@PATH]" in res.output


OPTIONED = textwrap.dedent('''
    """A lab's model in its own package, with options of its own (set as tiny.width=... on the command line)."""
    from dataclasses import dataclass

    import torch
    from torch import nn
    from starbench.models.base import TranslationModel


    @dataclass
    class TinyOptions:
        width: int = 8  # generator channels
        lr: float = 1e-3  # Adam learning rate


    class Tiny(TranslationModel):
        name = "tiny"
        options = TinyOptions
        presets = {"smoke": {"width": 4}}
        steps = {"smoke": 3, "smoke/celeba": 5}  # its budget at smoke scale; on CelebA its own
        batch_size = {"smoke": 4}  # its batches at smoke scale (the others': data.batch_size, 8)

        def __init__(self, domains, cfg):
            super().__init__(domains, cfg)
            c = domains.label_dim
            self.G = nn.Sequential(nn.Conv2d(3 + c, self.opts.width, 3, padding=1), nn.ReLU(),
                                   nn.Conv2d(self.opts.width, 3, 3, padding=1), nn.Tanh())
            self._opt = None

        def networks(self):
            return {"G": self.G}

        def optimizers(self):  # no initial_lr here: the Trainer sets it
            if self._opt is None:
                self._opt = torch.optim.Adam(self.G.parameters(), self.opts.lr)
            return {"G": self._opt}

        def _g(self, x, c):
            return self.G(torch.cat([x, c[:, :, None, None].expand(-1, -1, x.size(2), x.size(3))], 1))

        def train_step(self, batch, step):
            loss = (self._g(batch.x, batch.label) - batch.x).abs().mean()
            self._opt.zero_grad()
            loss.backward()
            self._opt.step()
            return {"L1": loss.detach(), "batch": float(batch.x.size(0))}

        @torch.no_grad()
        def translate(self, x, source, target):
            return self._g(x, target)
''')


def test_a_plugin_model_has_options_of_its_own(tmp_path, monkeypatch):
    """A model from a package outside starbench declares two options and a smoke preset; one option set on the
    command line reaches the model, its run key and the provenance, and a misspelt one is an error naming the
    closest keys. No file of starbench is edited for it."""
    import json

    from click.testing import CliRunner

    import starbench
    from starbench.cli import cli
    from starbench.evaluate.runs import run_folder

    package = tmp_path / "lab" / "my_lab"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(OPTIONED)
    monkeypatch.syspath_prepend(str(tmp_path / "lab"))
    spec = "my_lab.models:Tiny"
    settings = {"scale": "smoke", "fid.download": False, "train.progress": False, "data.synth_subjects": 6,
                "classifier.epochs": 1, "run_dir": str(tmp_path / "runs"), "results_dir": str(tmp_path / "results"),
                "models": [spec]}
    default = starbench.configure(**settings)
    assert default.tiny.width == 4 and default.tiny.lr == 1e-3 and default.train.model_steps.tiny == 3  # the preset
    # a budget of its own on one dataset: named by data= or by a protocol's dataset; a setting still wins
    assert starbench.configure(**settings, **{"data.name": "celeba"}).train.model_steps.tiny == 5
    assert starbench.configure(**settings, protocol="celeba_attributes").train.model_steps.tiny == 5
    assert starbench.configure(**settings, protocol="celeba_attributes",
                               **{"train.model_steps.tiny": 7}).train.model_steps.tiny == 7
    assert default.train.model_batch_size.tiny == 4 and default.data.batch_size == 8  # its batch; the others' 8
    base = [f"{k}={v}" for k, v in settings.items() if k != "models"] + [f"models=[{spec}]"]
    res = CliRunner().invoke(cli, ["run", "protocol=rafd_expression", *base, "tiny.width=6"])
    assert res.exit_code == 0, res.output
    prov = json.loads((tmp_path / "results" / "rafd_expression" / "provenance.json").read_text())
    assert prov["config"]["tiny"] == {"width": 6, "lr": 0.001}
    run = prov["runs"][spec]
    assert run["steps"] == 3 and run["reused"] is False
    wide = starbench.configure(**settings, tiny={"width": 6})
    data = prov["dataset"]["fingerprint"]
    assert run["run_dir"] == str(run_folder(wide, spec, data)) != str(run_folder(default, spec, data))
    # it trained on batches of its own size, and its checkpoint says so (as a run with data.batch_size=4 would)
    logged = [json.loads(line) for line in (Path(run["run_dir"]) / "losses.jsonl").read_text().splitlines()]
    assert logged and {entry["batch"] for entry in logged} == {4.0}
    assert read_checkpoint(Path(run["run_dir"]) / "checkpoint.pt")["config"]["data"]["batch_size"] == 4
    assert run["batch_size"] == 4  # and so does the table's note on how each method was trained
    notes = (tmp_path / "results" / "rafd_expression" / "table3.md").read_text()
    assert f"Training budget per method: {spec} 3 steps at batch 4" in notes
    table = pd.read_csv(tmp_path / "results" / "rafd_expression" / "table3.csv", keep_default_na=False)
    assert table["method"].tolist() == [spec, "real images"]
    # 765 parameters at width 6: (3 + 8 labels) x 6 x 3 x 3 + 6 and 6 x 3 x 3 x 3 + 3
    assert table.set_index("method").loc[spec, "parameters"] == "0.00M x 1"
    # the model's options are listed; a misspelt one is refused with the closest valid keys
    listed = CliRunner().invoke(cli, ["list", f"model={spec}"])
    assert listed.exit_code == 0 and "tiny.width" in listed.output and "generator channels" in listed.output
    assert "training steps (train.model_steps.tiny=N): smoke 3, smoke/celeba 5" in " ".join(listed.output.split())
    assert "batch size (train.model_batch_size.tiny=N): smoke 4; else data.batch_size" in " ".join(
        listed.output.split())
    bad = CliRunner().invoke(cli, ["run", "protocol=rafd_expression", *base, "tiny.widht=6"])
    assert bad.exit_code == 2 and "unknown config key 'tiny.widht'; closest valid keys: tiny.width" in bad.output


def test_a_misnamed_budget_is_refused(tmp_path, monkeypatch):
    """A ``steps`` key that names no scale, or no dataset, would be a budget silently never used: refused, named."""
    (tmp_path / "budgets.py").write_text("class Typo:\n    name = 'typo'\n    steps = {'demo': 5, 'demo/celba': 9}\n"
                                         "class Fine:\n    name = 'fine'\n    steps = {'demo': 5, 'demo/celeba': 9}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(StarbenchError, match="model 'budgets:Typo': steps key 'demo/celba' is neither a scale"):
        model_section("budgets:Typo")
    assert model_section("budgets:Fine").steps == {"demo": 5, "demo/celeba": 9}
    (tmp_path / "batches.py").write_text("class Typo:\n    name = 'typo2'\n    batch_size = {'demo/celba': 4}\n")
    with pytest.raises(StarbenchError, match="model 'batches:Typo': batch_size key 'demo/celba' is neither a scale"):
        model_section("batches:Typo")
    (tmp_path / "schedules.py").write_text("class Typo:\n    name = 'typo3'\n    decay_from = {'demo/celba': 0.5}\n"
                                           "from dataclasses import dataclass\n"
                                           "@dataclass\nclass Opts:\n    width: int = 4\n"
                                           "class Fine:\n    name = 'fine3'\n    options = Opts\n"
                                           "    decay_from = {'demo/celeba': 0.5}\n")
    with pytest.raises(StarbenchError, match="model 'schedules:Typo': decay_from key 'demo/celba' is neither a scale"):
        model_section("schedules:Typo")
    # a dataset's own schedule applies on that dataset only; elsewhere the scale's (constant at demo)
    assert preset("demo", ["schedules:Fine"], "celeba")["train"]["model_decay_from"] == {"fine3": 0.5}
    assert "fine3" not in preset("demo", ["schedules:Fine"], "rafd")["train"].get("model_decay_from", {})
