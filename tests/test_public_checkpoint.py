"""The public StarGAN release format (the authors' code), checked against a restatement of the public generator."""
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn
from torchvision import transforms

import starbench
from starbench.cli import cli
from starbench.config import resolve
from starbench.errors import StarbenchError
from starbench.registry import PROTOCOLS


def instance_norm(dim):
    return nn.InstanceNorm2d(dim, affine=True, track_running_stats=True)


class RestatedBlock(nn.Module):
    """The paper's appendix: [conv3x3, IN, ReLU, conv3x3, IN] + identity."""

    def __init__(self, dim):
        super().__init__()
        self.main = nn.Sequential(nn.Conv2d(dim, dim, 3, 1, 1, bias=False), instance_norm(dim), nn.ReLU(inplace=True),
                                  nn.Conv2d(dim, dim, 3, 1, 1, bias=False), instance_norm(dim))

    def forward(self, x):
        return x + self.main(x)


class RestatedGenerator(nn.Module):
    """The public generator as the paper's appendix describes it; labels tiled and concatenated to the image."""

    def __init__(self, conv_dim, c_dim, repeat_num):
        super().__init__()
        layers = [nn.Conv2d(3 + c_dim, conv_dim, 7, 1, 3, bias=False), instance_norm(conv_dim), nn.ReLU(inplace=True)]
        dim = conv_dim
        for _ in range(2):
            layers += [nn.Conv2d(dim, dim * 2, 4, 2, 1, bias=False), instance_norm(dim * 2), nn.ReLU(inplace=True)]
            dim *= 2
        layers += [RestatedBlock(dim) for _ in range(repeat_num)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(dim, dim // 2, 4, 2, 1, bias=False), instance_norm(dim // 2),
                       nn.ReLU(inplace=True)]
            dim //= 2
        layers += [nn.Conv2d(dim, 3, 7, 1, 3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x, c):
        c = c.view(c.size(0), c.size(1), 1, 1).repeat(1, 1, x.size(2), x.size(3))
        return self.main(torch.cat([x, c], dim=1))


def public_file(path, c_dim, conv_dim=16, drop_batches_tracked=True):
    """A restated generator with non-trivial weights and running statistics, saved as the public code saves it."""
    torch.manual_seed(7)
    G = RestatedGenerator(conv_dim, c_dim, 6)
    for m in G.modules():
        if isinstance(m, nn.InstanceNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.2)
            m.running_mean.normal_(0, 2)
            m.running_var.uniform_(2, 5)
    state = G.state_dict()
    if drop_batches_tracked:  # files written by PyTorch 0.3 have no num_batches_tracked
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(state, path)
    return G


def test_public_generator_translates_as_the_public_test_path(tmp_path, celeba):
    G = public_file(tmp_path / "200000-G.ckpt", c_dim=5)
    assert len(torch.load(tmp_path / "200000-G.ckpt")) == 103 - 17  # 103 keys less the 17 num_batches_tracked
    image = sorted((celeba / "img_align_celeba").iterdir())[0]
    res = CliRunner().invoke(cli, ["translate", f"checkpoint={tmp_path / '200000-G.ckpt'}", f"input={image}",
                                   "target=Black_Hair,Male", f"out={tmp_path / 'out'}"])
    assert res.exit_code == 0, res.output
    got = np.asarray(Image.open(tmp_path / "out" / f"{image.stem}_Black_Hair+Male.png"), dtype=np.float64) / 255
    # the public test path: CenterCrop(178), Resize(128), ToTensor, Normalize(0.5, 0.5); G in train mode
    tf = transforms.Compose([transforms.CenterCrop(178), transforms.Resize(128), transforms.ToTensor(),
                             transforms.Normalize((0.5,) * 3, (0.5,) * 3)])
    x = tf(Image.open(image).convert("RGB"))[None]
    c = torch.tensor([[1.0, 0.0, 0.0, 1.0, 0.0]])  # Black_Hair, Blond_Hair, Brown_Hair, Male, Young
    with torch.no_grad():
        want = ((G.train()(x, c) + 1) / 2).clamp(0, 1)[0].permute(1, 2, 0).numpy()
        eval_mode = ((G.eval()(x, c) + 1) / 2).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    assert got.shape == (128, 128, 3)
    assert np.abs(got - want).max() <= 1 / 255 + 1e-6
    assert np.abs(eval_mode - want).max() > 0.1  # running statistics would give another image


def test_public_generator_in_a_protocol_and_bad_files(tmp_path):
    G = public_file(tmp_path / "200000-G.ckpt", c_dim=8, drop_batches_tracked=False)
    cfg = resolve(["scale=smoke", "fid.download=false", "train.progress=false", "data.synth_subjects=6",
                   "train.steps=4", "classifier.epochs=1", f"run_dir={tmp_path / 'runs'}",
                   f"results_dir={tmp_path / 'results'}", f"models=[stargan,stargan@{tmp_path / '200000-G.ckpt'}]"])
    PROTOCOLS.get("rafd_expression")(cfg)
    table = pd.read_csv(tmp_path / "results" / "rafd_expression" / "table3.csv", keep_default_na=False)
    row = table.set_index("method").loc["stargan@200000-G.ckpt"]
    assert row["parameters"] == f"{sum(p.numel() for p in G.parameters()) / 1e6:.2f}M x 1"
    assert row["McNemar p vs stargan"] != "-"
    assert "stargan@200000-G.ckpt: weights from 200000-G.ckpt (PublicStarGAN), not trained here; its parameters " \
           "count the networks it holds (G)." in (
        tmp_path / "results" / "rafd_expression" / "table3.md").read_text()
    # the starbench checkpoint the protocol trained is accepted the same way
    run = next((tmp_path / "runs" / "models").glob("stargan-rafd-*")) / "checkpoint.pt"
    cfg2 = resolve(["scale=smoke", "fid.download=false", "train.progress=false", "data.synth_subjects=6",
                    "classifier.epochs=1", f"run_dir={tmp_path / 'runs2'}", f"results_dir={tmp_path / 'results2'}",
                    f"models=[stargan@{run}]"])
    PROTOCOLS.get("rafd_expression")(cfg2)
    again = pd.read_csv(tmp_path / "results2" / "rafd_expression" / "table3.csv", keep_default_na=False)
    same = ["classification error % [95% CI]", "classifier Frechet (not FID)", "L1 to ground truth", "SSIM",
            "parameters"]
    assert again.iloc[0][same].tolist() == table.iloc[0][same].tolist()  # the numbers of the row it was trained for
    assert not (tmp_path / "runs2" / "models").exists()  # nothing was trained

    # 3 labels: names are needed
    public_file(tmp_path / "3-G.ckpt", c_dim=3)
    with pytest.raises(StarbenchError, match="takes 3 labels, which fit neither .* domains=\\[name1,name2"):
        starbench.load_translator(tmp_path / "3-G.ckpt")
    named = starbench.load_translator(tmp_path / "3-G.ckpt", domains=["calm", "joy", "shock"])
    assert named.model.domains.kind == "onehot"
    # a state dict of something else: the first key and its shape are named
    torch.save({"encoder.weight": torch.zeros(4, 2)}, tmp_path / "other.ckpt")
    with pytest.raises(StarbenchError, match=r"fits no weight format starbench knows \(its first key is "
                                             r"'encoder.weight', shape \(4, 2\)\)"):
        starbench.load_translator(tmp_path / "other.ckpt")
    # a public-looking file with a layer of the wrong shape
    state = torch.load(tmp_path / "200000-G.ckpt")
    state["main.3.weight"] = torch.zeros(5, 5, 4, 4)
    torch.save(state, tmp_path / "bent-G.ckpt")
    with pytest.raises(StarbenchError,
                       match=r"key 'main.3.weight' has shape \(5, 5, 4, 4\).* expects \(32, 16, 4, 4\)"):
        starbench.load_translator(tmp_path / "bent-G.ckpt")
    # the discriminator file given by mistake
    torch.save({"main.0.weight": torch.zeros(64, 3, 4, 4), "main.0.bias": torch.zeros(64)}, tmp_path / "200000-D.ckpt")
    with pytest.raises(StarbenchError, match="looks like the public discriminator"):
        starbench.load_translator(tmp_path / "200000-D.ckpt")
    # a public CelebA generator cannot score the RaFD task
    public_file(tmp_path / "celeba-G.ckpt", c_dim=5)
    with pytest.raises(StarbenchError, match="takes 5 labels; this task's domains have 8"):
        PROTOCOLS.get("rafd_expression")(resolve(["scale=smoke", "fid.download=false", "train.progress=false",
                                                  "data.synth_subjects=6", "classifier.epochs=1",
                                                  f"run_dir={tmp_path / 'runs'}", f"results_dir={tmp_path / 'r3'}",
                                                  f"models=[stargan@{tmp_path / 'celeba-G.ckpt'}]"]))
