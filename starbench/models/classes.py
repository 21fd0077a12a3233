"""Model classes by name: what can translate (``Translator``) and what can also be trained.

Classes come from the model registry (``registry.MODELS``: registered names, ``package.module:Class`` and the
``starbench.models`` entry points), never from an import of a model module, so the Trainer and the evaluation can
look a model up without depending on it.
"""
from __future__ import annotations

from starbench.errors import StarbenchError
from starbench.models.base import TranslationModel, Translator
from starbench.registry import MODELS

INTERFACE_METHODS = ("networks", "train_step", "translate")  # a TranslationModel's; a Translator needs translate


def translator_class(name: str) -> type[Translator]:
    """The registered (or ``package.module:Class``) class, checked against the ``Translator`` interface."""
    cls = MODELS.get(name)
    if not isinstance(cls, type) or not issubclass(cls, Translator):
        missing = [m for m in INTERFACE_METHODS if not callable(getattr(cls, m, None))]
        what = (f"does not implement {', '.join(missing)} (a Translator needs translate, a TranslationModel all "
                f"three)" if missing
                else "is not a subclass of starbench.models.base.Translator (or TranslationModel)")
        raise StarbenchError(f"model '{name}' ({getattr(cls, '__qualname__', cls)!r}) {what}; see README "
                             f"'Plugging in a model'")
    abstract = sorted(getattr(cls, "__abstractmethods__", ()))
    if abstract:
        raise StarbenchError(f"model '{name}' does not implement {', '.join(abstract)}")
    return cls


def is_trainable(cls: type) -> bool:
    return isinstance(cls, type) and issubclass(cls, TranslationModel)


def model_class(name: str) -> type[TranslationModel]:
    """The class of a model the Trainer can train (a translate-only ``Translator`` is refused, with why)."""
    cls = translator_class(name)
    if not is_trainable(cls):
        raise StarbenchError(f"model '{name}' only translates (a Translator, not a TranslationModel): it cannot be "
                             f"trained by starbench; protocols evaluate it as it is, or with its weights as "
                             f"models=[{name}@PATH]")
    return cls  # type: ignore[return-value]


def section_of(name: str) -> str:
    """The config section (and ``train.model_steps`` key) of model ``name``: its class's ``name``, else ``name``."""
    return getattr(MODELS.get(name), "name", None) or name
