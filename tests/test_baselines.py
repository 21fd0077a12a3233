"""DIAT, CycleGAN and IcGAN behind the model interface and Trainer; pairwise routing; params protocol."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from starbench.baselines.cyclegan import CycleGAN
from starbench.baselines.diat import DIAT
from starbench.baselines.icgan import IcGAN
from starbench.baselines.networks import ImagePool, PatchDiscriminator, ResnetGenerator
from starbench.baselines.pairwise import resolve_pairs
from starbench.config import resolve
from starbench.data.domains import DomainSpec
from starbench.data.rafd import rafd_domains
from starbench.errors import StarbenchError
from starbench.evaluate.parallel import torch_threads
from starbench.registry import PROTOCOLS
from starbench.train.trainer import Trainer

CELEBA5 = DomainSpec.multilabel(["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"])
TINY = ["scale=smoke", "data.synth_subjects=4", "data.synth_size=32", "data.image_size=16", "data.batch_size=4",
        "train.progress=false", "train.steps=4", "train.sample_every=0", "diat.identity_epochs=1"]


def count(m):
    return sum(p.numel() for p in m.parameters())


def test_one_direction_is_52_6_million_at_128px():
    per_direction = count(ResnetGenerator(64, 6)) + count(PatchDiscriminator(64, 6))
    assert count(ResnetGenerator(64, 6)) == 7_837_699 and count(PatchDiscriminator(64, 6)) == 44_721_088
    assert abs(per_direction - 52.6e6) / 52.6e6 < 0.01


def test_default_pairs():
    rafd = rafd_domains()
    assert resolve_pairs(rafd, None, True) == [("neutral", e) for e in rafd.names if e != "neutral"]
    assert len(resolve_pairs(rafd, None, False)) == 7
    celeba_bi = resolve_pairs(CELEBA5, None, True)
    assert ("-Male", "Male") in celeba_bi and ("Young", "-Young") in celeba_bi and len(celeba_bi) == 5
    assert len(resolve_pairs(CELEBA5, None, False)) == 10
    assert resolve_pairs(rafd, "neutral,happy", False) == [("neutral", "happy")]
    with pytest.raises(StarbenchError, match="unknown domain 'joyful'; available: angry"):
        resolve_pairs(rafd, "neutral,joyful", True)


def test_instance_counts_match_the_paper_protocol():
    cfg = resolve(["scale=smoke"])
    assert len(CycleGAN(rafd_domains(), cfg).instance_parameter_counts()) == 14
    assert len(DIAT(rafd_domains(), cfg).instance_parameter_counts()) == 7


@pytest.mark.parametrize("model", ["cyclegan", "diat", "icgan"])
def test_each_baseline_trains_through_the_trainer(model, tmp_path):
    res = Trainer(resolve(TINY + [f"model={model}"]), tmp_path / model).fit()
    assert res.step == 4
    import json
    rows = [json.loads(line) for line in (tmp_path / model / "losses.jsonl").read_text().splitlines()]
    values = [v for k, v in rows[-1].items() if k not in ("step", "lr_factor", "it_per_s")]
    assert values and all(math.isfinite(v) for v in values)
    # the checkpoint resumes through the same interface
    res2 = Trainer(resolve(TINY + [f"model={model}", "train.steps=6"]), tmp_path / model).fit()
    assert res2.step == 6


def test_diats_identity_network_is_cached_per_thread_count(tmp_path):
    """Another thread count trains another network (another reduction order): it is cached apart, as the judge is,
    so a run never picks up an identity network of other arithmetic than its own."""
    settings = TINY + ["model=diat", "train.steps=1", f"cache_dir={tmp_path / 'cache'}"]
    keys = []
    for run, threads in (("a", 1), ("b", 2), ("c", 1)):
        with torch_threads(threads):
            Trainer(resolve(settings), tmp_path / run).fit()
        keys.append(torch.load(tmp_path / run / "checkpoint.pt", weights_only=True)["extra"]["identity_network"]["key"])
    assert keys[0] != keys[1] and keys[2] == keys[0]
    assert len(list((tmp_path / "cache" / "classifiers").glob("*.pt"))) == 2


def test_pairwise_dispatch_and_missing_instance(tmp_path):
    cfg = resolve(TINY + ["model=cyclegan"])
    model = CycleGAN(rafd_domains(), cfg)
    dom = rafd_domains()
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    neutral = torch.from_numpy(np.stack([dom.label("neutral")] * 3))
    happy = torch.from_numpy(np.stack([dom.label("happy")] * 3))
    inst = model.instances["neutral<->happy"]
    with torch.no_grad():
        np.testing.assert_allclose(model.translate(x, neutral, happy), inst.forward_ab(x), atol=1e-6)
        np.testing.assert_allclose(model.translate(x, happy, neutral), inst.forward_ba(x), atol=1e-6)
    sad = torch.from_numpy(np.stack([dom.label("sad")] * 3))
    with pytest.raises(StarbenchError,
                       match="no instance chain from happy to sad; available translations: neutral -> angry"):
        model.translate(x, happy, sad)
    diat = DIAT(dom, cfg)
    with pytest.raises(StarbenchError, match="from happy to neutral"):
        diat.translate(x, happy, neutral)  # DIAT is one-directional


def test_celeba_edits_chain_instances():
    cfg = resolve(TINY)
    model = CycleGAN(CELEBA5, cfg)
    src = torch.tensor([[1.0, 0, 0, 0, 1]])  # black-haired young woman
    tgt = torch.tensor([[0.0, 1, 0, 1, 1]])  # blond man
    route = model.route(src[0], tgt[0])
    assert [(i.a, i.b, d) for i, d in route] == [("Black_Hair", "Blond_Hair", "ab"), ("-Male", "Male", "ab")]
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        want = model.instances["-Male<->Male"].forward_ab(model.instances["Black_Hair<->Blond_Hair"].forward_ab(x))
        np.testing.assert_allclose(model.translate(x, src, tgt), want, atol=1e-6)


def test_image_pool_keeps_history():
    import random
    random.seed(0)
    pool = ImagePool(4)
    first = torch.zeros(4, 3, 2, 2)
    assert torch.equal(pool.query(first), first)
    out = pool.query(torch.ones(8, 3, 2, 2))
    assert (out.flatten(1).mean(1) == 0).any() and (out.flatten(1).mean(1) == 1).any()


def test_icgan_encoders_invert_the_generator():
    """E_z learns to recover z from generated images; reconstruction runs through both encoders."""
    torch.manual_seed(0)
    cfg = resolve(["scale=smoke", "data.image_size=16"])
    model = IcGAN(rafd_domains(), cfg)
    opt = torch.optim.Adam(model.E_z.parameters(), 1e-3)
    y = torch.eye(8)[torch.randint(0, 8, (32,))]

    def ez_error():
        z = torch.randn(32, cfg.icgan.z_dim)
        with torch.no_grad():
            x = model.generate(z, y)
            return float(((model.E_z.eval()(x) - z) ** 2).mean())

    before = ez_error()
    for _ in range(150):
        z = torch.randn(32, cfg.icgan.z_dim)
        with torch.no_grad():
            x = model.generate(z, y)
        loss = ((model.E_z.train()(x) - z) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert ez_error() < 0.8 * before
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    z, y_hat = model.encode(x)
    assert z.shape == (4, cfg.icgan.z_dim) and torch.all(y_hat.sum(1) == 1)
    rec = model.translate(x, y_hat, y_hat)
    assert rec.shape == x.shape and rec.abs().max() <= 1


def test_icgan_encoder_checkpoint_must_match(tmp_path):
    Trainer(resolve(TINY + ["model=icgan"]), tmp_path / "a").fit()
    other = IcGAN(rafd_domains(), resolve(TINY + ["icgan.z_dim=50"]))
    with pytest.raises(StarbenchError, match="encoder E_z does not match this IcGAN generator"):
        other.load_encoders(tmp_path / "a" / "checkpoint.pt")
    same = IcGAN(rafd_domains(), resolve(TINY))
    same.load_encoders(tmp_path / "a" / "checkpoint.pt")


def test_params_protocol_matches_the_paper_column(tmp_path):
    res = PROTOCOLS.get("params")(resolve([f"results_dir={tmp_path}"]))
    table = pd.read_csv(tmp_path / "params" / "params.csv")
    by = table.set_index("method")
    for m in ("stargan", "diat", "cyclegan"):
        assert by.loc[m, "starbench"] == by.loc[m, "paper"]
    assert by.loc["stargan", "parameters per instance"] == "53,226,560"
    assert by.loc["cyclegan", "instances (RaFD)"] == 14 and by.loc["diat", "instances (RaFD)"] == 7
    sweep = pd.read_csv(tmp_path / "params" / "params_vs_domains.csv")
    for k in (2, 5, 10):
        row = sweep[(sweep.k == k) & (sweep.method == "diat")].iloc[0]
        assert row["instances"] == k * (k - 1)
        assert sweep[(sweep.k == k) & (sweep.method == "stargan")].iloc[0]["instances"] == 1
    for f in ("params.md", "params.tex", "params.png", "provenance.json"):
        assert (tmp_path / "params" / f).is_file()
    assert res.folder == tmp_path / "params"
    # regenerated from the record, byte for byte
    from starbench.report import rerender
    files = sorted(p.name for p in (tmp_path / "params").iterdir())
    before = {f: (tmp_path / "params" / f).read_bytes() for f in files}
    rerender(tmp_path, "params", PROTOCOLS.get("params").render)
    assert {f: (tmp_path / "params" / f).read_bytes() for f in files} == before
