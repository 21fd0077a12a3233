"""Packed two-domain baselines: packed steps give the parameters the separate instances' steps give.

Checkpoints need no test of their own here: the instances' modules hold the parameters in both modes
(the packed weights are concatenated from them in each forward), so a checkpoint is the same file either way.
"""
import copy
import random

import pytest
import torch

from starbench.config import resolve
from starbench.train.trainer import Trainer


def setup(model, *extra):
    trainer = Trainer(resolve(["scale=smoke", "data.synth_subjects=4", "train.progress=false", f"model={model}",
                               *extra]), "unused")
    trainer._setup()
    return trainer


def params(model):
    return {f"{n}.{k}": v for n, net in model.networks().items() for k, v in net.state_dict().items()}


@pytest.mark.parametrize("model,pack", [("diat", True), ("diat", None), ("cyclegan", True)])
def test_packed_steps_equal_separate_steps(model, pack):
    trainer = setup(model, "cyclegan.pool_size=2")
    separate = trainer.model
    separate.autocast_dtype = None
    for net in separate.networks().values():
        net.double()  # float64: Adam's first steps then show differences of summation order only, not sign flips
    if model == "diat":
        separate.instances[next(iter(separate.instances))].identity.double()
    packed = copy.deepcopy(separate)
    separate.cfg.train.pack, packed.cfg = False, copy.deepcopy(separate.cfg)
    packed.cfg.train.pack = pack
    assert separate.packed is False and packed.packed is pack and len(packed.instances) == 7
    for step in range(3):
        batches = trainer.data.batches(step)
        for b in batches:
            b.x = b.x.double()
        random.seed(step)  # the image pools draw from Python's random: the same draws for both
        lost_a = separate.train_batches(batches, step)
        random.seed(step)
        lost_b = packed.train_batches(batches, step)
        assert lost_a.keys() == lost_b.keys()
        for k in lost_a:
            assert float(lost_a[k]) == pytest.approx(float(lost_b[k]), rel=1e-9, abs=1e-12), k
    pa, pb = params(separate), params(packed)
    assert pa.keys() == pb.keys()
    for k in pa:
        assert torch.allclose(pa[k], pb[k], rtol=1e-9, atol=1e-12), k
    # and training moved the weights (the comparison is not of untouched networks)
    fresh = setup(model, "cyclegan.pool_size=2").model
    assert any(not torch.allclose(pa[k].float(), v.float()) for k, v in params(fresh).items())
