"""Metrics: paired distances, error statistics, FID through torch-fidelity (offline)."""
import math

import numpy as np
import pytest
import torch
from scipy import linalg

from starbench.config import resolve
from starbench.errors import StarbenchError
from starbench.metrics import extractors as fidm
from starbench.metrics import paired
from starbench.metrics.distances import Extractor, Settings, feature_distances, set_distances
from starbench.metrics.stats import error_rate, mcnemar


def test_l1_psnr_ssim_known_values():
    a = torch.full((2, 3, 16, 16), 100, dtype=torch.uint8)
    b = torch.full((2, 3, 16, 16), 110, dtype=torch.uint8)
    assert torch.allclose(paired.l1(a, b), torch.full((2,), 10 / 255, dtype=torch.float64))
    assert torch.allclose(paired.psnr(a, b), torch.full((2,), 10 * math.log10(1 / (10 / 255) ** 2),
                                                        dtype=torch.float64))
    assert torch.isinf(paired.psnr(a, a)).all()
    # constant images: only SSIM's luminance term remains, (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1)
    ma, mb, c1 = 100 / 255, 110 / 255, 0.01 ** 2
    assert torch.allclose(paired.ssim(a, b), torch.full((2,), (2 * ma * mb + c1) / (ma ** 2 + mb ** 2 + c1),
                                                         dtype=torch.float64))
    x = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    assert paired.ssim(x, x).item() == pytest.approx(1.0)
    noisy = (x.int() + torch.randint(-40, 41, x.shape)).clamp(0, 255).to(torch.uint8)
    noisier = (x.int() + torch.randint(-120, 121, x.shape)).clamp(0, 255).to(torch.uint8)
    assert 1.0 > paired.ssim(x, noisy).item() > paired.ssim(x, noisier).item()
    assert paired.ssim(x, noisy).item() == pytest.approx(paired.ssim(noisy, x).item())
    # float inputs in [-1, 1] are the same images
    f = x.float() / 127.5 - 1
    assert paired.l1(f, noisy).item() == pytest.approx(paired.l1(x, noisy).item())


def test_error_rate_interval_and_mcnemar():
    e = error_rate(np.array([1] * 5 + [0] * 95))
    assert e.errors == 5 and e.n == 100 and e.rate == 0.05
    assert e.low == pytest.approx(0.01643, abs=1e-4) and e.high == pytest.approx(0.11284, abs=1e-4)  # Clopper-Pearson
    assert e.text() == "5.00 [1.64, 11.28]"
    a = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0], bool)
    b = np.zeros(10, bool)
    t = mcnemar(a, b)
    assert (t.only_a_wrong, t.only_b_wrong) == (6, 0) and t.p_value == pytest.approx(2 * 0.5 ** 6)
    assert mcnemar(a, a).p_value == 1.0


def test_frechet_distance_agrees_with_the_closed_form_for_two_gaussians():
    rng = np.random.default_rng(0)
    d = 4
    mu1, mu2 = np.zeros(d), np.array([1.0, -0.5, 0.25, 2.0])
    A = rng.normal(size=(d, d))
    s1, s2 = np.eye(d), A @ A.T / d + 0.5 * np.eye(d)
    x1 = rng.multivariate_normal(mu1, s1, size=200_000)
    x2 = rng.multivariate_normal(mu2, s2, size=200_000)
    covmean = linalg.sqrtm(s1 @ s2).real
    exact = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    settings = Settings(min_images=10**9)  # FD alone
    assert feature_distances(torch.from_numpy(x1), torch.from_numpy(x2), settings).fd == pytest.approx(exact, rel=0.02)
    assert feature_distances(torch.from_numpy(x1), torch.from_numpy(x1), settings).fd == pytest.approx(0.0, abs=1e-8)


def fid_cfg(**kw):
    return resolve([f"fid.{k}={v}" for k, v in kw.items()]).fid


def test_weights_resolution_order_and_hash_check(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv(fidm.ENV_WEIGHTS, raising=False)
    none = fidm.resolve_inception_weights(fid_cfg(download="false"))
    assert not none.available and "no Inception weights (fid.weights=PATH)" in none.problem
    bad = tmp_path / "random.pth"
    bad.write_bytes(b"not inception")
    with pytest.raises(StarbenchError, match="sha256 .* expected one starting with 6726825d"):
        fidm.resolve_inception_weights(fid_cfg(weights=str(bad)))
    monkeypatch.setenv(fidm.ENV_WEIGHTS, str(bad))
    w = fidm.resolve_inception_weights(fid_cfg(check_hash="false"))
    assert w.available and w.source == f"${fidm.ENV_WEIGHTS}" and not w.standard
    # an explicit path wins over the environment variable
    other = tmp_path / "other.pth"
    other.write_bytes(b"x")
    assert fidm.resolve_inception_weights(fid_cfg(weights=str(other), check_hash="false")).path == other
    with pytest.raises(StarbenchError, match="do not exist"):
        fidm.resolve_inception_weights(fid_cfg(weights=str(tmp_path / "missing.pth")))
    # the torch hub cache file is found when nothing else is given
    monkeypatch.delenv(fidm.ENV_WEIGHTS)
    hub = fidm.hub_cache_file()
    hub.parent.mkdir(parents=True)
    hub.write_bytes(b"y")
    w = fidm.resolve_inception_weights(fid_cfg(check_hash="false", download="false"))
    assert w.path == hub and w.source == "torch hub cache"


def test_random_inception_weights_drive_torch_fidelity_offline(tmp_path, monkeypatch):
    """Labelled: RANDOMLY INITIALISED Inception weights, only to run torch-fidelity's real code path offline;
    the numbers mean nothing."""
    import torch_fidelity.feature_extractor_inceptionv3 as inc

    monkeypatch.setattr(inc, "load_state_dict_from_url", lambda *a, **k: None)
    monkeypatch.setattr(inc.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None)
    torch.manual_seed(0)
    model = inc.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    monkeypatch.undo()
    path = tmp_path / "random-inception.pth"
    torch.save(model.state_dict(), path)
    w = fidm.resolve_inception_weights(fid_cfg(weights=str(path), check_hash="false"))
    g = torch.Generator().manual_seed(1)
    real = torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8, generator=g)
    fake = torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8, generator=g)
    inception = Extractor.inception(w)
    d_same = set_distances(real, real, inception, Settings(), tmp_path / "cache", batch_size=12).fd
    d_other = set_distances(fake, real, inception, Settings(), tmp_path / "cache", batch_size=12).fd
    assert abs(d_same) < 1e-3 and d_other > d_same
    # real-side statistics are cached under a key with the images' fingerprint
    assert any(fidm.images_fingerprint(real) in p.name for p in (tmp_path / "cache").iterdir())


def test_classifier_frechet_through_a_registered_extractor(tmp_path):
    from starbench.metrics.classifier import resnet18

    torch.manual_seed(0)
    net = resnet18(8)
    f = tmp_path / "clf.pt"
    torch.save({"state": net.state_dict(), "num_outputs": 8, "image_size": 32}, f)
    g = torch.Generator().manual_seed(2)
    real = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=g)
    dark = (real // 4).contiguous()
    same = set_distances(real, real, Extractor.classifier(f), Settings(), tmp_path / "c").fd
    far = set_distances(dark, real, Extractor.classifier(f), Settings(), tmp_path / "c").fd
    assert abs(same) < 1e-6 and far > 0
    # agrees with starbench's own features + the Fréchet distance
    from starbench.metrics.classifier import features
    with torch.no_grad():
        fr = features(net.eval(), real.float() / 127.5 - 1).double().numpy()
        fd = features(net.eval(), dark.float() / 127.5 - 1).double().numpy()
    assert far == pytest.approx(feature_distances(torch.from_numpy(fd), torch.from_numpy(fr), Settings()).fd, rel=1e-3)
