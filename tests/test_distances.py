"""Distribution metrics with known answers: FD, KID (x1000, ± over subsets) and precision/recall through
torch-fidelity, on a classifier's features (offline), including the input order convention and small sets."""
import pytest
import torch

from starbench.metrics.classifier import resnet18
from starbench.metrics.distances import Extractor, Settings, feature_distances, features, set_distances
from starbench.metrics.extractors import register_extractor


@pytest.fixture
def extractor(tmp_path):
    torch.manual_seed(0)
    f = tmp_path / "clf.extractor.pt"
    torch.save({"state": resnet18(8).state_dict(), "num_outputs": 8, "image_size": 32}, f)
    return Extractor.classifier(f)


def faces(n, seed, shift=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 200, (n, 3, 32, 32), dtype=torch.int32, generator=g)
    return (base + shift).clamp(0, 255).to(torch.uint8)


def test_identical_sets_independent_sets_far_sets_and_the_input_order(extractor, tmp_path):
    real, settings = faces(40, 1), Settings()
    far = set_distances(faces(40, 2, shift=55), real, extractor, settings, tmp_path / "cache")
    assert far.fd > 1 and far.kid > 5 * far.kid_sd  # another distribution: far from 0 in units of its sd
    same = set_distances(real, real.clone(), extractor, settings, tmp_path / "cache")
    assert same.fd == pytest.approx(0.0, abs=1e-5) and same.precision == 1.0 and same.recall == 1.0
    # One set against itself is not two independent samples: subsets share images, and KID's expectation is then
    # 2 (mean k(x, x') - mean k(x, x)) / n, slightly below 0; tiny beside a real difference.
    assert -0.1 * far.kid < same.kid <= 0
    # Two independent samples of one distribution: KID is 0 within its spread, FD is not (its small-N bias)
    for seed in (9, 17):
        indep = set_distances(faces(40, seed), real, extractor, settings, tmp_path / "cache")
        assert abs(indep.kid) <= indep.kid_sd and indep.fd > 0.3 * far.fd
    # generated = input1, real = input2: copies of a few real images (a collapsed model: 4 faces, 10 times each) are
    # precise but recall little of the real set; the other order would swap the two
    few = real[:4].repeat(10, 1, 1, 1)
    collapsed = set_distances(few, real, extractor, settings, tmp_path / "cache")
    assert collapsed.precision == 1.0 and collapsed.recall == pytest.approx(4 / 40)
    swapped = set_distances(real, few, extractor, settings, tmp_path / "cache")
    assert swapped.recall == 1.0 and swapped.precision == pytest.approx(4 / 40)


def test_small_sets_give_reasons_not_exceptions(extractor, tmp_path):
    settings = Settings(min_images=8)
    small = set_distances(faces(5, 3), faces(40, 1), extractor, settings, tmp_path / "cache")
    assert small.fd is not None and small.kid is None and small.precision is None
    assert "5 images in the smaller set, fewer than metrics.min_images=8" in small.note
    one = set_distances(faces(1, 3), faces(40, 1), extractor, settings, tmp_path / "cache")
    assert one.fd is None and "1 image(s)" in one.note
    assert Settings(kid_subset_size=1000).kid_subset(63, 63) == 31 and Settings().kid_subset(5000, 3000) == 1000


def test_features_path_matches_the_image_path_and_an_extractor_by_name(extractor, tmp_path):
    """The bias study's feature-level metrics equal the tables' image-level ones, and a torch-fidelity extractor
    registered under another name (metrics.extractor=NAME) gives the same numbers as the classifier's."""
    a, b, settings = faces(30, 4), faces(30, 5, shift=20), Settings()
    direct = set_distances(a, b, extractor, settings, tmp_path / "cache")
    via = feature_distances(features(a, extractor), features(b, extractor), settings, prc=True)
    assert via.fd == pytest.approx(direct.fd, rel=1e-4) and via.kid == pytest.approx(direct.kid, rel=1e-3)
    assert (via.precision, via.recall) == (direct.precision, direct.recall)
    register_extractor("starbench-classifier-2")
    named = Extractor.named("starbench-classifier-2", str(extractor.weights))
    other = set_distances(a, b, named, settings, tmp_path / "cache")
    assert other.fd == pytest.approx(direct.fd, rel=1e-4) and other.kid == pytest.approx(direct.kid, rel=1e-3)
    from starbench.errors import StarbenchError
    with pytest.raises(StarbenchError, match="'no-such-net' is not a torch-fidelity feature extractor"):
        Extractor.named("no-such-net", None)
