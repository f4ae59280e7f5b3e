"""Fixtures shared by the unit tests: an isolated data search path and a real Fashion-MNIST subset."""

from __future__ import annotations

import pytest

import d2lcnn as d2l


@pytest.fixture
def isolated_data(tmp_path, monkeypatch):
    """No D2LCNN_DATA, an empty user cache, no Debian directory and no Kaggle input: only what a
    test provides."""
    monkeypatch.delenv("D2LCNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fake = dict(d2l.data._DATASETS)
    tv_name, _ = fake["fashion-mnist"]
    fake["fashion-mnist"] = (tv_name, tmp_path / "no-debian")
    monkeypatch.setattr(d2l.data, "_DATASETS", fake)
    monkeypatch.setattr(d2l.data, "KAGGLE_INPUT", tmp_path / "no-kaggle")
    monkeypatch.setattr(d2l.data, "_CACHE", {})
    return tmp_path


@pytest.fixture(scope="session")
def fashion_small():
    """A real, class-balanced Fashion-MNIST subset: 3,000 train / 1,000 test images."""
    s = d2l.load_arrays("fashion-mnist")
    tr = d2l.data.balanced_subset(s.train_labels, 3000)
    te = d2l.data.balanced_subset(s.test_labels, 1000)
    return s.train_images[tr], s.train_labels[tr], s.test_images[te], s.test_labels[te]


@pytest.fixture
def small_iters(fashion_small):
    Xtr, ytr, Xte, yte = fashion_small
    train = d2l.ImageBatches(Xtr, ytr, 128, shuffle=True, seed=0)
    test = d2l.ImageBatches(Xte, yte, 256)
    return train, test


@pytest.fixture(autouse=True)
def measure_afresh(monkeypatch):
    """Every unit test times 'auto' afresh (D2LCNN_REMEASURE), as before decisions were
    remembered: a test that patches the timing, or trains the same network with another
    precision patched in, must not get a decision another test left in the user cache.
    tests/test_reproducible.py unsets it where it tests the remembering itself."""
    monkeypatch.setenv("D2LCNN_REMEASURE", "1")
