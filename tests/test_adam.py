"""The blocked Adam/AdamW is torch's, bit for bit: same weights, same moments, same state_dict, at every step."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import starbench.train.adam as blocked_adam
from starbench.train.adam import BlockedAdam, BlockedAdamW


def _net(channels_last: bool) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                        nn.Conv2d(16, 32, 4, 2, 1), nn.Flatten(), nn.Linear(32 * 4 * 4, 5))
    return net.to(memory_format=torch.channels_last) if channels_last else net


def _train(net: nn.Module, opt: torch.optim.Optimizer, steps: int, sched: bool) -> None:
    g = torch.Generator().manual_seed(1)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-2, total_steps=steps) if sched else None
    for _ in range(steps):
        x = torch.randn(8, 3, 8, 8, generator=g)
        y = torch.randint(0, 5, (8,), generator=g)
        with torch.autocast("cpu", torch.bfloat16):
            out = net(x.contiguous(memory_format=torch.channels_last))
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(out.float(), y).backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()


def _same(a: torch.optim.Optimizer, b: torch.optim.Optimizer, net_a: nn.Module, net_b: nn.Module) -> None:
    for (name, x), y in zip(net_a.state_dict().items(), net_b.state_dict().values()):
        assert torch.equal(x, y), name
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for i in sa["state"]:
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(sa["state"][i][key], sb["state"][i][key]), (i, key)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("torch_cls, blocked_cls, kwargs, sched", [
    (torch.optim.Adam, BlockedAdam, {"lr": 1e-3, "betas": (0.5, 0.999)}, False),
    (torch.optim.Adam, BlockedAdam, {"lr": 1e-3, "weight_decay": 1e-2}, False),  # L2 added to the gradient
    (torch.optim.AdamW, BlockedAdamW, {"lr": 1e-3, "weight_decay": 1e-4}, True),  # the judge's: OneCycle moves betas
])
def test_bit_for_bit_torch(monkeypatch, channels_last, torch_cls, blocked_cls, kwargs, sched):
    monkeypatch.setattr(blocked_adam, "BLOCK", 100)  # every tensor of more than 100 weights goes in several blocks
    net_a = _net(channels_last)
    net_b = copy.deepcopy(net_a)
    opt_a, opt_b = torch_cls(net_a.parameters(), **kwargs), blocked_cls(net_b.parameters(), **kwargs)
    _train(net_a, opt_a, 12, sched)
    _train(net_b, opt_b, 12, sched)
    _same(opt_a, opt_b, net_a, net_b)
    changed = [not torch.equal(p, q) for p, q in zip(net_a.parameters(), _net(channels_last).parameters())]
    assert all(changed)  # every weight moved: the comparison saw real steps


def test_blocks_cut_tensors_in_their_memory_order(monkeypatch):
    monkeypatch.setattr(blocked_adam, "BLOCK", 100)
    w = torch.randn(16, 3, 3, 3).to(memory_format=torch.channels_last)  # 432 elements: 5 blocks
    parts = list(blocked_adam._blocks((w, w.clone(memory_format=torch.channels_last))))
    assert [p[0].numel() for p in parts] == [100, 100, 100, 100, 32]
    assert parts[0][0].data_ptr() == w.data_ptr()  # views of the weight itself: updated in place
    mixed = list(blocked_adam._blocks((w, w.contiguous())))  # layouts differ: one whole-tensor part
    assert len(mixed) == 1 and mixed[0][0] is w


def test_checkpoint_of_either_class_continues_in_the_other(monkeypatch):
    monkeypatch.setattr(blocked_adam, "BLOCK", 100)
    net_a = _net(False)
    opt_a = torch.optim.Adam(net_a.parameters(), 1e-3)
    _train(net_a, opt_a, 3, False)
    net_b = copy.deepcopy(net_a)
    opt_b = BlockedAdam(net_b.parameters(), 1e-3)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))  # (loading shares the tensors it is given)
    _train(net_a, opt_a, 4, False)
    _train(net_b, opt_b, 4, False)
    _same(opt_a, opt_b, net_a, net_b)


def test_options_it_does_not_restate_take_torchs_step():
    net_a = _net(False)
    net_b = copy.deepcopy(net_a)
    opt_a = torch.optim.Adam(net_a.parameters(), 1e-3, amsgrad=True)
    opt_b = BlockedAdam(net_b.parameters(), 1e-3, amsgrad=True)
    assert not opt_b._restated()
    _train(net_a, opt_a, 4, False)
    _train(net_b, opt_b, 4, False)
    _same(opt_a, opt_b, net_a, net_b)
    assert "max_exp_avg_sq" in opt_b.state_dict()["state"][0]

