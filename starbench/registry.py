"""Registries of models, protocols, datasets and weight-file formats.

Adding a model, protocol, dataset or weight format means registering it under a name
(``register_model``, ``register_protocol``, ``register_dataset``, ``starbench.loading.register_format``);
nothing else dispatches on names. Models can also come from outside the package: the
``starbench.models`` entry-point group, or ``package.module:ClassName``. The built-ins register
themselves when their module is imported; a registry imports them (by name) on first use.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Generic, Iterator, Optional, TypeVar

from starbench.errors import StarbenchError

T = TypeVar("T")

# Modules whose import registers the built-in entries; imported on first use so that importing
# starbench stays cheap and free of cycles.
BUILTIN_MODULES: dict[str, tuple[str, ...]] = {
    "dataset": ("starbench.data.rafd", "starbench.data.celeba", "starbench.data.folder"),
    "model": ("starbench.models.stargan", "starbench.baselines.cyclegan", "starbench.baselines.diat",
              "starbench.baselines.icgan"),
    "protocol": ("starbench.protocols.params", "starbench.protocols.rafd_expression",
                 "starbench.protocols.celeba_attributes", "starbench.protocols.joint_training",
                 "starbench.protocols.metric_bias"),
    "weight format": ("starbench.loading",),
}
ENTRY_POINT_GROUPS = {"model": "starbench.models"}


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    description: str


class Registry(Generic[T]):
    """A name -> object table with helpful errors on unknown names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._loaded = False

    def register(self, name: str, obj: T, description: str = "") -> T:
        if name in self._entries and self._entries[name].obj is not obj:
            raise StarbenchError(f"{self.kind} '{name}' is already registered")
        doc = description or ((getattr(obj, "__doc__", None) or "").strip().splitlines() or [""])[0]
        self._entries[name] = Entry(name, obj, doc)
        return obj

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in BUILTIN_MODULES.get(self.kind, ()):
            importlib.import_module(module)
        group = ENTRY_POINT_GROUPS.get(self.kind)
        if group:
            for ep in metadata.entry_points(group=group):
                if ep.name not in self._entries:
                    try:
                        self.register(ep.name, ep.load(), f"entry point {ep.value}")
                    except Exception as exc:  # a broken plug-in must not break `starbench list`
                        raise StarbenchError(f"{self.kind} entry point '{ep.name}' ({ep.value}) failed to load: {exc}")

    def get(self, name: str) -> T:
        self._load()
        if name in self._entries:
            return self._entries[name].obj
        if ":" in name:
            return self._import_object(name)
        available = ", ".join(sorted(self._entries)) or "none registered"
        raise StarbenchError(f"unknown {self.kind} '{name}'; available: {available}")

    def _import_object(self, spec: str) -> Any:
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise StarbenchError(f"{self.kind} '{spec}': cannot import module '{module_name}': {exc}") from exc
        try:
            return getattr(module, attr)
        except AttributeError:
            raise StarbenchError(f"{self.kind} '{spec}': module '{module_name}' has no attribute '{attr}'") from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __iter__(self) -> Iterator[Entry[T]]:
        self._load()
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries


MODELS: Registry[Any] = Registry("model")
PROTOCOLS: Registry[Callable[..., Any]] = Registry("protocol")
DATASETS: Registry[Callable[..., Any]] = Registry("dataset")
FORMATS: Registry[Any] = Registry("weight format")


def register_model(name: str, description: str = "") -> Callable[[T], T]:
    """Class decorator: make a ``Translator`` / ``TranslationModel`` selectable as ``model=name``; its options are
    the config section ``name`` unless the class declares another ``name``."""
    def wrap(cls: T) -> T:
        if getattr(cls, "name", None) is None:
            cls.name = name  # type: ignore[attr-defined]
        return MODELS.register(name, cls, description)
    return wrap


def register_protocol(name: str, description: str = "", render: Optional[Callable[..., Any]] = None,
                      task: Optional[Callable[..., Any]] = None, data: Optional[str] = None,
                      jobs: Optional[Callable[..., Any]] = None) -> Callable[[T], T]:
    """Function decorator: make a protocol runnable as ``starbench run protocol=name``.

    ``render(record, arrays, folder)`` writes its tables and figures from a stored run record, so that
    ``starbench tables`` can regenerate them without running anything again. ``task(cfg)`` builds the
    protocol's translation task (``starbench.evaluate.task.Task``) without training anything, so that
    ``starbench export`` can write it for code outside starbench. ``data`` names the dataset the protocol
    runs on: ``starbench run`` sets ``data=`` to it, and a different explicit ``data=`` is an error.
    ``jobs(cfg)`` lists the trained sources the protocol would train (``starbench plan``).
    """
    def wrap(obj: T) -> T:
        if render is not None:
            obj.render = render  # type: ignore[attr-defined]
        if task is not None:
            obj.task = task  # type: ignore[attr-defined]
        obj.data = data  # type: ignore[attr-defined]
        obj.jobs = jobs  # type: ignore[attr-defined]
        return PROTOCOLS.register(name, obj, description)
    return wrap


def register_dataset(name: str, description: str = "") -> Callable[[T], T]:
    """Function decorator: make a loader selectable as ``data=name``."""
    return lambda obj: DATASETS.register(name, obj, description)
