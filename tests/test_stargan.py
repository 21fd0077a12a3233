"""StarGAN networks, losses and the mask vector (the paper's Section 3 and appendix)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from starbench.config import resolve
from starbench.data.batches import Batch
from starbench.data.domains import DomainSpec
from starbench.data.rafd import rafd_domains
from starbench.errors import StarbenchError
from starbench.models.stargan import Discriminator, Generator, StarGAN, classification_loss, gradient_penalty
from starbench.train.schedule import lr_factor
from starbench.train.trainer import decay_start_of

CELEBA5 = DomainSpec.multilabel(["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"])
JOINT = DomainSpec.joint({"celeba": CELEBA5, "rafd": rafd_domains()})


def count(m):
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_match_the_paper_networks():
    assert count(Generator(64, 5, 6)) == 8_430_528
    assert count(Discriminator(128, 64, 5, 6)) == 44_762_048
    assert count(Generator(64, 8, 6)) + count(Discriminator(128, 64, 8, 6)) == 53_226_560
    # joint: G sees 3 + 15 channels, D classifies 13 outputs (256 px discriminator)
    cfg = resolve(["scale=paper", "data.image_size=256"])
    model = StarGAN(JOINT, cfg)
    assert model.parameter_counts() == {"G": 8_461_888, "D": 45_147_072}


def test_networks_scale_down_and_shapes():
    G, D = Generator(8, 8, 1), Discriminator(32, 8, 8, 4)
    x, c = torch.randn(2, 3, 32, 32), torch.eye(8)[:2]
    y = G(x, c)
    assert y.shape == x.shape and y.abs().max() <= 1
    src, cls = D(y)
    assert src.shape == (2, 1, 2, 2) and cls.shape == (2, 8)


def test_classification_losses():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    onehot = DomainSpec.onehot(["a", "b", "c"])
    lab = torch.tensor([[0.0, 1.0, 0.0]])
    assert torch.isclose(classification_loss(logits, lab, onehot), F.cross_entropy(logits, torch.tensor([1])))
    multi = DomainSpec.multilabel(["a", "b", "c"])
    logits2 = torch.randn(4, 3)
    lab2 = (torch.rand(4, 3) > 0.5).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits2, lab2, reduction="none").sum() / 4
    assert torch.isclose(classification_loss(logits2, lab2, multi), bce)


def test_mask_vector_restricts_classification_to_the_known_dataset():
    logits = torch.randn(4, 13, requires_grad=True)
    labels = torch.from_numpy(JOINT.embed("rafd", np.eye(8, dtype=np.float32)[[0, 3, 5, 7]]))
    assert labels.shape == (4, 15) and labels[:, 13:].tolist() == [[0, 1]] * 4
    classification_loss(logits, labels, JOINT, "rafd").backward()
    assert torch.all(logits.grad[:, :5] == 0) and torch.any(logits.grad[:, 5:] != 0)
    logits.grad = None
    celeb = torch.from_numpy(JOINT.embed("celeba", np.array([[1, 0, 0, 1, 1]] * 4, dtype=np.float32)))
    classification_loss(logits, celeb, JOINT, "celeba").backward()
    assert torch.all(logits.grad[:, 5:] == 0) and torch.any(logits.grad[:, :5] != 0)


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic():
    class Linear(torch.nn.Module):  # D_src(x) = w . x with ||w|| = 1: gradient norm exactly 1
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(3 * 4 * 4))
            with torch.no_grad():
                self.w /= self.w.norm()

        def forward(self, x):
            return (x.flatten(1) @ self.w).view(-1, 1, 1, 1), None

    D = Linear()
    assert gradient_penalty(D, torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)).item() == pytest.approx(0, abs=1e-10)
    with torch.no_grad():
        D.w *= 3
    assert gradient_penalty(D, torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)).item() == pytest.approx(4.0)


def test_schedule_is_constant_then_linear_to_zero():
    assert lr_factor(0, 100) == 1 and lr_factor(49, 100) == 1
    assert lr_factor(75, 100) == pytest.approx(0.5)
    assert lr_factor(100, 100) == 0
    assert lr_factor(99, 100, decay_start=90) == pytest.approx(0.1)


def test_schedule_per_scale_per_model_or_as_the_user_sets_it():
    demo = resolve([])  # demo scale: a constant rate for every method
    assert [decay_start_of(demo, m, n) for m, n in (("stargan", 6000), ("diat", 320))] == [6000, 320]
    assert [lr_factor(s, 320, decay_start_of(demo, "diat", 320)) for s in (0, 200, 319)] == [1, 1, 1]
    smoke = resolve(["scale=smoke"])  # elsewhere the paper's: half, then linear to 0
    assert decay_start_of(smoke, "stargan", 41) == 20 == 41 // 2
    assert lr_factor(30, 40, decay_start_of(smoke, "stargan", 40)) == pytest.approx(0.5)
    mine = resolve(["train.model_decay_from.stargan=0.75", "train.decay_from=0.5"])  # a model's own share first
    assert decay_start_of(mine, "stargan", 6000) == 4500 and decay_start_of(mine, "diat", 320) == 160
    fixed = resolve(["train.decay_start=100", "train.model_decay_from.icgan=1.0"])  # a step beats a scale's share
    assert decay_start_of(fixed, "stargan", 6000) == 100 and decay_start_of(fixed, "icgan", 6000) == 6000
    for bad in ("train.model_decay_from.diat=1.5", "train.decay_from=-0.1"):
        with pytest.raises(StarbenchError, match=bad.split("=")[0].replace(".", r"\.") + ".*expected a share"):
            resolve([bad])


def test_joint_train_step_updates_with_both_datasets():
    cfg = resolve(["scale=smoke", "stargan.n_critic=1"])
    model = StarGAN(JOINT, cfg)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    c = torch.from_numpy(JOINT.embed("celeba", np.array([[1, 0, 0, 1, 1], [0, 1, 0, 0, 1]] * 2, dtype=np.float32)))
    r = torch.from_numpy(JOINT.embed("rafd", np.eye(8, dtype=np.float32)[[0, 1, 2, 3]]))
    l1 = model.train_step(Batch(x, c, torch.arange(4), "celeba"), 0)
    l2 = model.train_step(Batch(x, r, torch.arange(4), "rafd"), 0)
    for losses in (l1, l2):
        assert set(losses) >= {"D/real", "D/fake", "D/cls", "D/gp", "G/fake", "G/cls", "G/rec"}
        assert all(torch.isfinite(torch.as_tensor(v)) for v in losses.values())
