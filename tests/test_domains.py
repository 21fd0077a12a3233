import numpy as np
import pytest

from starbench.data.domains import DomainSpec
from starbench.data.rafd import rafd_domains
from starbench.errors import StarbenchError

CELEBA5 = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]


def test_onehot_and_multilabel_labels():
    rafd = rafd_domains()
    assert rafd.names[0] == "angry" and rafd.names[-1] == "surprised"  # ImageFolder order
    assert rafd.label("happy").tolist() == [0, 0, 0, 0, 1, 0, 0, 0]
    with pytest.raises(StarbenchError, match="exactly one"):
        rafd.label(["happy", "sad"])
    with pytest.raises(StarbenchError, match="valid: angry"):
        rafd.label("bored")
    celeba = DomainSpec.multilabel(CELEBA5)
    assert celeba.label(["Blond_Hair", "Young"]).tolist() == [0, 1, 0, 0, 1]


def test_joint_layout_matches_the_mask_vector_of_the_paper():
    joint = DomainSpec.joint({"celeba": DomainSpec.multilabel(CELEBA5), "rafd": rafd_domains()})
    assert joint.label_dim == 15 and joint.class_dim == 13
    assert joint.slice_of("celeba") == slice(0, 5) and joint.slice_of("rafd") == slice(5, 13)
    assert joint.mask_slice() == slice(13, 15)
    c = joint.embed("celeba", np.array([[1, 0, 0, 1, 1]]))
    assert c.tolist() == [[1, 0, 0, 1, 1] + [0] * 8 + [1, 0]]
    r = joint.embed("rafd", rafd_domains().label("sad")[None])
    assert r.tolist() == [[0] * 5 + [0, 0, 0, 0, 0, 0, 1, 0] + [0, 1]]
    with pytest.raises(StarbenchError, match=r"expected \(N, 8\)"):
        joint.embed("rafd", np.zeros((2, 5)))
    with pytest.raises(StarbenchError, match="not part"):
        joint.slice_of("mnist")
