"""A minimal trainable model to copy when you plug in a model of your own.

It is a template, not a method: one small conditional generator, trained only to give back its input while it
is shown a target label (so it learns to ignore the label; expect chance-level expression scores). Copy this
file into your own package, rename the class, and replace the networks and the losses. Everything else (data,
schedule, checkpoints, resume, mixed precision, torchrun, learning curves, the protocols' tables) comes from
starbench.

What a model declares, all in its own file:

- ``name``: the config section of its options, so ``template.width=32`` sets an option on the command line;
- ``options``: a dataclass of those options (defaults, types, a comment per option);
- ``presets``: options per scale (``smoke``, ``demo``, ``paper``), merged between the defaults and the user's
  ``key=value`` settings; ``steps``: training steps per scale when the model needs another budget than
  ``train.steps``;
- ``networks()``, ``optimizers()``, ``train_step(batch, step)`` and ``translate(x, source, target)``.

Use it as ``models=[starbench.models.template:TemplateModel]`` (your copy: ``models=[my_lab.models:MyModel]``),
or register your class under a short name with ``starbench.register_model("mine")``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from starbench.data.batches import Batch
from starbench.data.domains import DomainSpec
from starbench.models.base import TranslationModel


@dataclass
class TemplateOptions:
    """The template's options: ``template.<option>=VALUE``."""

    width: int = 16  # generator channels
    lr: float = 1e-3  # Adam learning rate (the Trainer's schedule scales it)


class TemplateModel(TranslationModel):
    """A conditional generator G(x, c) trained to reconstruct x (a template to copy, not a method)."""

    name = "template"
    options = TemplateOptions
    presets = {"smoke": {"width": 8}, "demo": {"width": 16}, "paper": {"width": 64}}
    # optional, per scale (or per scale and dataset: ``"demo/celeba"``): ``steps = {"demo": 3000}`` (its own training
    # steps, else train.steps),
    # ``decay_from = {"demo": 1.0}`` (the share of them after which its learning rate falls linearly to 0, else half;
    # 1.0: constant) and ``batch_size = {"demo": 32}`` (its own batch size, else data.batch_size); users override
    # them with train.model_steps.template=N, train.model_decay_from.template=X, train.model_batch_size.template=N

    def __init__(self, domains: DomainSpec, cfg: Any) -> None:
        super().__init__(domains, cfg)
        o, c = self.opts, domains.label_dim  # self.opts: this model's section of the config
        self.G = nn.Sequential(nn.Conv2d(3 + c, o.width, 3, padding=1), nn.ReLU(),
                               nn.Conv2d(o.width, 3, 3, padding=1), nn.Tanh())
        self._optims: dict[str, torch.optim.Optimizer] = {}

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:  # created once, after the Trainer moved G
        if not self._optims:
            self._optims = {"G": torch.optim.Adam(self.G.parameters(), self.opts.lr)}
        return self._optims

    def _g(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        labels = c.to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
        return self.G(torch.cat([x, labels], 1))

    def train_step(self, batch: Batch, step: int) -> dict[str, Any]:
        """batch.x: images in [-1, 1]; batch.label: their domain labels. Returns the losses to log."""
        target = batch.label[torch.randperm(batch.label.size(0), device=batch.label.device)]
        with self.autocast():
            loss = (self._g(batch.x, target).float() - batch.x).abs().mean()
        opt = self.optimizers()["G"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        self.grad_sync(self.G)  # averages gradients under torchrun; nothing in one process
        opt.step()
        return {"L1": loss.detach()}

    @torch.no_grad()
    def translate(self, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self._g(x, target).float()
