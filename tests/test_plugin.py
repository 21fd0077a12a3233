"""A model defined outside starbench, plugged in by module:Class, trained and evaluated by rafd_expression."""
import textwrap

import pandas as pd
import pytest

from starbench.config import resolve
from starbench.errors import StarbenchError
from starbench.registry import PROTOCOLS
from starbench.train.trainer import build_model

PLUGIN = textwrap.dedent('''
    """A user's own model: a small conditional network trained to reconstruct its input."""
    import torch
    from torch import nn
    from starbench.models.base import TranslationModel


    class TinyConditional(TranslationModel):
        def __init__(self, domains, cfg):
            super().__init__(domains, cfg)
            c = domains.label_dim
            self.G = nn.Sequential(nn.Conv2d(3 + c, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1), nn.Tanh())
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
