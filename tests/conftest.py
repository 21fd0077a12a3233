"""Shared fixtures: small synthetic datasets in every real layout, and an isolated cache."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from starbench.data import synth


@pytest.fixture(scope="session")
def shared_cache_parts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic sets and the trained classifiers, shared by every test's cache: both are keyed by what decides
    them (generator parameters; the images, train rows and labels, recipe, precision and threads), so sharing
    changes no result, and a judge is trained once per session instead of once per test. (Before the judge's key
    held its train rows and threads, one CI run had a test judged by a classifier another test had cached under the
    same key, with NaN features.)"""
    root = tmp_path_factory.mktemp("shared_cache")
    for part in ("synth", "classifiers"):
        (root / part).mkdir()
    return root


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
                   shared_cache_parts: Path) -> Path:
    """Every test gets its own cache folder (decoded images, feature caches), so nothing leaks into ~/.cache; the
    synthetic sets and classifiers in it are the session's shared ones."""
    path = tmp_path_factory.mktemp("cache")
    for part in ("synth", "classifiers"):
        (path / part).symlink_to(shared_cache_parts / part, target_is_directory=True)
    monkeypatch.setenv("STARBENCH_CACHE", str(path))
    return path


@pytest.fixture(scope="session")
def rafd_raw_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth.write_rafd(tmp_path_factory.mktemp("rafd_raw") / "RaFD", subjects=5, size=40, seed=3)


@pytest.fixture(scope="session")
def rafd_split_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth.write_rafd(tmp_path_factory.mktemp("rafd_split") / "RaFD", subjects=5, size=40, seed=3,
                            layout="split")


@pytest.fixture(scope="session")
def celeba_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth.write_celeba(tmp_path_factory.mktemp("celeba") / "CelebA", count=40, seed=5)


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


@pytest.fixture
def rafd_raw(rafd_raw_master: Path, tmp_path: Path) -> Path:
    """A private copy of a 5-subject raw-layout RaFD set that a test may damage."""
    return _copy(rafd_raw_master, tmp_path)


@pytest.fixture
def rafd_split(rafd_split_master: Path, tmp_path: Path) -> Path:
    return _copy(rafd_split_master, tmp_path)


@pytest.fixture
def celeba(celeba_master: Path, tmp_path: Path) -> Path:
    return _copy(celeba_master, tmp_path)


@pytest.fixture
def folder_data(tmp_path: Path, rafd_raw_master: Path) -> Path:
    """A user folder with three domains, made from synthetic faces."""
    root = tmp_path / "mine"
    for domain, expression in (("calm", "neutral"), ("joy", "happy"), ("shock", "surprised")):
        (root / domain).mkdir(parents=True)
        for p in sorted(rafd_raw_master.glob(f"*_{expression}_*.jpg"))[:10]:
            shutil.copy(p, root / domain / p.name)
    return root
