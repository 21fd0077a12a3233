"""The judge's ResNet-18 convolves a 1x1 map with the one kernel tap that sees it (``OneTapConv2d``): the same
function as the full padded convolution, taken only where it was measured bit for bit (channels_last weights on the
CPU), the network's weights and initialisation torchvision's."""
from types import SimpleNamespace

import pytest
import torch
import torchvision
from torch import nn

import starbench.metrics.classifier as classifier_module
from starbench.metrics.classifier import OneTapConv2d, one_tap_convs, resnet18


def one_tap(conv: nn.Conv2d) -> OneTapConv2d:
    conv.__class__ = OneTapConv2d
    return conv


@pytest.fixture
def one_tap_calls(monkeypatch) -> list[tuple[int, ...]]:
    """The weight shapes of the convolutions ``OneTapConv2d`` runs as one tap (torch's own run elsewhere)."""
    calls: list[tuple[int, ...]] = []

    def conv2d(x, weight, *args):
        calls.append(tuple(weight.shape))
        return torch.nn.functional.conv2d(x, weight, *args)
    monkeypatch.setattr(classifier_module, "F", SimpleNamespace(conv2d=conv2d))
    return calls


def test_the_one_tap_is_the_tap_that_sees_a_1x1_map():
    assert one_tap(nn.Conv2d(4, 4, 3, padding=1)).tap_seeing_1x1((1, 1)) == (1, 1)
    assert one_tap(nn.Conv2d(4, 4, 3, stride=2, padding=1)).tap_seeing_1x1((1, 1)) == (1, 1)
    assert one_tap(nn.Conv2d(4, 4, 7, stride=2, padding=3)).tap_seeing_1x1((1, 1)) == (3, 3)
    assert one_tap(nn.Conv2d(4, 4, (3, 5), padding=(1, 2))).tap_seeing_1x1((1, 1)) == (1, 2)
    assert one_tap(nn.Conv2d(4, 4, 3, padding=1)).tap_seeing_1x1((2, 2)) is None  # more than one tap sees it
    assert one_tap(nn.Conv2d(4, 4, 3, padding=0)).tap_seeing_1x1((1, 1)) is None  # no output at all
    assert one_tap(nn.Conv2d(4, 4, 1, padding=1)).tap_seeing_1x1((1, 1)) is None  # a 3x3 output of one tap each
    assert one_tap(nn.Conv2d(4, 4, 3, padding=2)).tap_seeing_1x1((1, 1)) is None  # a 3x3 output
    assert one_tap(nn.Conv2d(4, 4, 3, padding=1, dilation=2)).tap_seeing_1x1((1, 1)) is None
    assert one_tap(nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect")).tap_seeing_1x1((1, 1)) is None


@pytest.mark.parametrize("bf16", [False, True])
@pytest.mark.parametrize("stride", [1, 2])
def test_on_a_1x1_map_it_computes_the_full_convolution_with_the_one_tap(bf16, stride, one_tap_calls):
    """Against the full padded convolution in float64. (torch's own bf16 convolution is no reference here: with
    stride 2 on a 1x1 map its weight gradients come out wrong, now and then 1e36; the one tap's do not.)"""
    torch.manual_seed(0)
    full = nn.Conv2d(64, 32, 3, stride=stride, padding=1).double()
    tap = one_tap(nn.Conv2d(64, 32, 3, stride=stride, padding=1)).to(memory_format=torch.channels_last)
    tap.load_state_dict(full.state_dict())
    x = torch.randn(16, 64, 1, 1).contiguous(memory_format=torch.channels_last)
    outputs = []
    for conv, xi in ((full, x.double()), (tap, x.clone())):
        xi.requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16 and conv is tap):
            y = conv(xi)
        y.double().square().sum().backward()
        outputs.append((y.detach().double(), xi.grad.double(), conv.weight.grad.double()))
    assert one_tap_calls == [(32, 64, 1, 1)]
    for a, b in zip(*outputs):
        scale = float(a.abs().max())
        assert a.shape == b.shape and float((a - b).abs().max()) <= (2e-2 if bf16 else 1e-5) * scale
    assert outputs[1][2][:, :, [0, 0, 2, 2], [0, 2, 0, 2]].eq(0).all()  # the padding's taps learn nothing
    assert outputs[1][2][:, :, 1, 1].ne(0).any()


def test_larger_maps_the_default_layout_and_1x1_kernels_keep_torchs_convolution(one_tap_calls):
    torch.manual_seed(0)
    conv = one_tap(nn.Conv2d(8, 8, 3, padding=1))
    conv(torch.randn(2, 8, 1, 1))  # contiguous weights: in fp32 torch's 1x1 kernel would round differently
    cl = conv.to(memory_format=torch.channels_last)
    cl(torch.randn(2, 8, 2, 2).contiguous(memory_format=torch.channels_last))
    one_tap(nn.Conv2d(8, 8, 1, stride=2)).to(memory_format=torch.channels_last)(torch.randn(2, 8, 1, 1))
    assert one_tap_calls == []
    cl(torch.randn(2, 8, 1, 1).contiguous(memory_format=torch.channels_last))
    assert one_tap_calls == [(8, 8, 1, 1)]  # (the spy sees the one-tap path when it is taken)


def test_the_judges_resnet_is_torchvisions_with_one_tap_convolutions():
    torch.manual_seed(3)
    ours = resnet18(5)
    torch.manual_seed(3)
    theirs = torchvision.models.resnet18(weights=None, num_classes=5)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))
    convs = [m for m in ours.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 20 and all(type(m) is OneTapConv2d for m in convs)
    # at 32 px the last stage's three 512-channel 3x3 convolutions see 1x1 maps; every other sees more (at 16 px the
    # stride-2 one of that stage, 1x1 there too, joins them, and the third stage's)
    assert one_tap_convs(32) == ["layer4.0.conv2", "layer4.1.conv1", "layer4.1.conv2"]
    assert one_tap_convs(16) == ["layer3.0.conv2", "layer3.1.conv1", "layer3.1.conv2", "layer4.0.conv1",
                                 "layer4.0.conv2", "layer4.1.conv1", "layer4.1.conv2"]
    assert one_tap_convs(64) == []
    ours = ours.eval().to(memory_format=torch.channels_last)
    theirs.load_state_dict(ours.state_dict())
    theirs = theirs.eval().to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    assert torch.allclose(ours(x), theirs(x), rtol=1e-4, atol=1e-5)
