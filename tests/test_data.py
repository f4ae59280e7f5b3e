"""The data module: IDX validation, the search order, offline errors, atomic downloads, batching."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import STEMS, idx_bytes, write_idx

import d2lcnn as d2l
from d2lcnn.data import DataError, DataNotFoundError, read_idx


def tiny_dataset(folder: Path, n_train: int = 60000, n_test: int = 10000, gz: bool = True,
                 distinct: bool = False) -> None:  # fmt: skip
    """Write a full-size-count IDX set: constant content (cheap: zeros compress well), or with
    ``distinct`` random images and labels (seed 0), so that a wrong or stale copy is detected."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for stem, (magic, count) in STEMS.items():
        count = n_train if count == 60000 else n_test
        if distinct:
            shape = (count, 28, 28) if magic == 2051 else (count,)
            array = rng.integers(0, 10 if magic == 2049 else 256, shape)
        else:
            array = np.zeros((count, 28, 28)) if magic == 2051 else np.arange(count) % 10
        write_idx(folder / stem, magic, array, gz=gz)


# --- read_idx ----------------------------------------------------------------------------------
def test_read_idx_plain_and_gz(tmp_path):
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    for gz in (False, True):
        path = write_idx(tmp_path / f"img{gz}", 2051, images, gz=gz)
        out = read_idx(path, 2051, 3)
        assert out.shape == (3, 28, 28) and out.dtype == np.uint8
        assert np.array_equal(out, images)


def test_read_idx_rejects_wrong_magic(tmp_path):
    path = write_idx(tmp_path / "x", 2049, np.zeros(5))
    with pytest.raises(DataError, match=r"x\.gz is not an IDX image file: magic number 2049"):
        read_idx(path, 2051)


def test_read_idx_rejects_truncated_file(tmp_path):
    path = tmp_path / "cut"
    path.write_bytes(idx_bytes(2051, np.zeros((3, 28, 28)))[:-100])
    with pytest.raises(DataError, match="cut is truncated or corrupt") as err:
        read_idx(path, 2051)
    assert "Delete" in str(err.value)  # says how to fix it


def test_read_idx_rejects_truncated_gzip(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(idx_bytes(2051, np.zeros((3, 28, 28))))[:-20])
    with pytest.raises(DataError, match="cut.gz could not be read"):
        read_idx(path, 2051)


def test_read_idx_rejects_bad_labels_count_and_shape(tmp_path):
    with pytest.raises(DataError, match="label 12, outside 0-9"):
        read_idx(write_idx(tmp_path / "l", 2049, np.array([1, 12])), 2049)
    with pytest.raises(DataError, match="holds 2 labels, expected 60000"):
        read_idx(write_idx(tmp_path / "c", 2049, np.array([1, 2])), 2049, 60000)
    with pytest.raises(DataError, match="32x32 images, expected 28x28"):
        read_idx(write_idx(tmp_path / "s", 2051, np.zeros((1, 32, 32))), 2051)


# --- where the files come from -------------------------------------------------------------------
def test_explicit_root_comes_first(isolated_data, monkeypatch):
    tiny_dataset(isolated_data / "mine")
    monkeypatch.setenv("D2LCNN_DATA", str(isolated_data / "mine"))
    s = d2l.load_arrays()
    assert s.source == str(isolated_data / "mine")
    assert s.train_images.shape == (60000, 28, 28) and s.test_labels.shape == (10000,)
    assert d2l.load_arrays() is s  # read once per process


def test_root_argument_accepts_torchvision_layout(isolated_data):
    tiny_dataset(isolated_data / "tv" / "FashionMNIST" / "raw", gz=False)
    s = d2l.load_arrays(root=isolated_data / "tv")
    assert s.source.endswith("raw")


def test_corrupt_file_is_reported_not_replaced(isolated_data):
    folder = isolated_data / "cache" / "d2lcnn" / "fashion-mnist"
    tiny_dataset(folder)
    bad = folder / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
        d2l.load_arrays()
    assert bad.read_bytes() == b"not gzip at all"  # nothing deleted behind the user's back


def _read_again():
    """load_arrays as a new process would call it (the per-process memo cleared)."""
    d2l.data._CACHE.clear()
    return d2l.load_arrays()


def _kept_files(isolated_data: Path) -> list[Path]:
    return sorted((isolated_data / "cache" / "d2lcnn" / "fashion-mnist").glob("arrays-*.npz"))


def test_decoded_arrays_are_kept_and_served_equal(isolated_data, monkeypatch):
    tiny_dataset(isolated_data / "mine", distinct=True)
    monkeypatch.setenv("D2LCNN_DATA", str(isolated_data / "mine"))
    first = d2l.load_arrays()
    assert len(_kept_files(isolated_data)) == 1

    def no_gunzip(*args, **kwargs):
        raise AssertionError("the IDX files were read again although their arrays are kept")

    monkeypatch.setattr(d2l.data, "read_idx", no_gunzip)
    again = _read_again()
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        a, b = getattr(first, name), getattr(again, name)
        assert a.dtype == b.dtype and torch.equal(a, b), name
    assert again.train_labels.dtype == torch.int64 and again.train_images.dtype == torch.uint8


def test_changed_data_files_are_read_afresh(isolated_data, monkeypatch):
    folder = isolated_data / "mine"
    tiny_dataset(folder, distinct=True)
    monkeypatch.setenv("D2LCNN_DATA", str(folder))
    d2l.load_arrays()
    labels = np.zeros(10000, dtype=np.int64) + 3  # the test labels change: same size, new content
    write_idx(folder / "t10k-labels-idx1-ubyte", 2049, labels)
    assert torch.equal(_read_again().test_labels, torch.from_numpy(labels))


def test_damaged_kept_arrays_warn_and_are_replaced(isolated_data, monkeypatch):
    tiny_dataset(isolated_data / "mine", distinct=True)
    monkeypatch.setenv("D2LCNN_DATA", str(isolated_data / "mine"))
    first = d2l.load_arrays()
    (kept,) = _kept_files(isolated_data)
    kept.write_bytes(kept.read_bytes()[:1000])  # cut short, as by a full disk
    with pytest.warns(UserWarning, match="damaged"):
        again = _read_again()
    assert torch.equal(again.train_images, first.train_images)
    with np.load(kept) as f:  # written anew, whole
        assert f["train_images"].shape == (60000, 28, 28)
    assert not list(kept.parent.glob("*.part"))


def test_unwritable_cache_warns_and_goes_on(isolated_data, monkeypatch):
    tiny_dataset(isolated_data / "mine", distinct=True)
    monkeypatch.setenv("D2LCNN_DATA", str(isolated_data / "mine"))
    (isolated_data / "cache").write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="could not keep the decoded data"):
        s = d2l.load_arrays()
    assert s.train_images.shape == (60000, 28, 28)


def test_a_data_set_attached_on_kaggle_is_found(isolated_data, monkeypatch):
    kaggle = isolated_data / "kaggle" / "input"
    monkeypatch.setattr(d2l.data, "KAGGLE_INPUT", kaggle)
    (kaggle / "some-other-data").mkdir(parents=True)
    tiny_dataset(kaggle / "fashionmnist", gz=False)  # as Kaggle serves them: uncompressed
    assert d2l.data.data_sources()[-1] == kaggle / "fashionmnist"
    assert d2l.load_arrays().source == str(kaggle / "fashionmnist")


def test_on_kaggle_without_data_the_message_says_what_to_switch_on(isolated_data, monkeypatch):
    (isolated_data / "kaggle" / "input").mkdir(parents=True)
    monkeypatch.setattr(d2l.data, "KAGGLE_INPUT", isolated_data / "kaggle" / "input")
    monkeypatch.setattr(d2l.data, "_mirrors", lambda dataset: ["http://127.0.0.1:9/"])
    with pytest.raises(DataNotFoundError, match="Kaggle: switch on Internet"):
        d2l.load_arrays()


def test_offline_and_nowhere_gives_one_clear_message(isolated_data, monkeypatch):
    monkeypatch.setattr(d2l.data, "_mirrors", lambda dataset: ["http://127.0.0.1:9/"])
    with pytest.raises(DataNotFoundError) as err:
        d2l.load_data_fashion_mnist(32)
    message = str(err.value)
    assert "could not be downloaded" in message
    assert "sudo apt install dataset-fashion-mnist" in message
    assert "D2LCNN_DATA" in message
    cache = isolated_data / "cache" / "d2lcnn" / "fashion-mnist"
    assert list(cache.glob("*")) == []  # no half-written files


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_folder(tmp_path):
    """A real HTTP server on loopback serving ``tmp_path / 'served'``."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _serve_dataset(served: Path, monkeypatch, url: str, corrupt: str | None = None) -> None:
    tiny_dataset(served)
    resources = []
    for path in sorted(served.glob("*.gz")):
        resources.append((path.name, hashlib.md5(path.read_bytes()).hexdigest()))
        if path.name.startswith(corrupt or "\0"):
            path.write_bytes(path.read_bytes()[:-10])  # served bytes no longer match the MD5
    monkeypatch.setattr(d2l.data, "_mirrors", lambda dataset: [url])
    monkeypatch.setattr(d2l.data, "_resources", lambda dataset: resources)


def test_mirrors_and_checksums_come_from_torchvision():
    for dataset in ("fashion-mnist", "mnist"):
        mirrors = d2l.data._mirrors(dataset)
        assert mirrors and all(m.startswith(("http://", "https://")) for m in mirrors)
        resources = d2l.data._resources(dataset)
        assert sorted(name for name, _ in resources) == sorted(s + ".gz" for s in STEMS)
        assert all(len(md5) == 32 for _, md5 in resources)


def test_download_verifies_checksums_then_renames(isolated_data, http_folder, monkeypatch):
    served, url = http_folder
    _serve_dataset(served, monkeypatch, url)
    s = d2l.load_arrays()
    cache = isolated_data / "cache" / "d2lcnn" / "fashion-mnist"
    assert s.source == str(cache)
    downloaded = sorted(p.name for p in cache.iterdir() if p.suffix == ".gz")
    assert downloaded == sorted(p.name for p in served.glob("*.gz"))
    assert len(list(cache.glob("arrays-*.npz"))) == 1  # and the decoded arrays kept beside them


def test_download_with_bad_checksum_leaves_nothing(isolated_data, http_folder, monkeypatch):
    served, url = http_folder
    _serve_dataset(served, monkeypatch, url, corrupt="train-images")
    with pytest.raises(DataNotFoundError, match="checksum mismatch"):
        d2l.load_arrays()
    cache = isolated_data / "cache" / "d2lcnn" / "fashion-mnist"
    assert not any(p.name.startswith("train-images") for p in cache.iterdir())
    assert not list(cache.glob("*.part"))


# --- the real data and the iterators ---------------------------------------------------------------
def test_real_fashion_mnist_is_valid():
    s = d2l.load_arrays("fashion-mnist")
    assert s.train_images.shape == (60000, 28, 28) and s.train_images.dtype == torch.uint8
    assert s.test_images.shape == (10000, 28, 28)
    assert torch.bincount(s.train_labels).tolist() == [6000] * 10
    assert torch.bincount(s.test_labels).tolist() == [1000] * 10


def test_iterators_behave_like_dataloaders(monkeypatch):
    monkeypatch.delenv("D2LCNN_QUICK", raising=False)
    train_iter, test_iter = d2l.load_data_fashion_mnist(1000, seed=0)
    assert len(train_iter) == 60 and len(test_iter) == 10
    X, y = next(iter(train_iter))
    assert X.shape == (1000, 1, 28, 28) and X.dtype == torch.float32 and y.dtype == torch.int64
    assert 0.0 <= X.min() and X.max() <= 1.0
    assert len(train_iter.dataset) == 60000
    x0, y0 = train_iter.dataset[0]
    assert x0.shape == (1, 28, 28) and isinstance(y0, int)


def test_last_partial_batch_is_kept(fashion_small):
    Xtr, ytr, _, _ = fashion_small
    it = d2l.ImageBatches(Xtr[:1000], ytr[:1000], 256)
    sizes = [len(y) for _, y in it]
    assert len(it) == 4 and sizes == [256, 256, 256, 232]


def test_shuffle_each_epoch_and_reproducible_under_seed(fashion_small):
    Xtr, ytr, _, _ = fashion_small
    a = d2l.ImageBatches(Xtr, ytr, 500, shuffle=True, seed=1)
    b = d2l.ImageBatches(Xtr, ytr, 500, shuffle=True, seed=1)
    first, second = [y for _, y in a], [y for _, y in a]
    assert not torch.equal(torch.cat(first), torch.cat(second))  # reshuffled
    assert torch.equal(torch.cat(first).sort().values, torch.cat(second).sort().values)
    assert torch.equal(torch.cat([y for _, y in b]), torch.cat(first))  # same seed, same order
    test = d2l.ImageBatches(Xtr, ytr, 500)
    assert torch.equal(torch.cat([y for _, y in test]), ytr)  # no shuffle: file order


def test_resize_happens_per_batch(fashion_small):
    Xtr, ytr, _, _ = fashion_small
    for size in (96, 224):
        X, _ = next(iter(d2l.ImageBatches(Xtr, ytr, 8, resize=size)))
        assert X.shape == (8, 1, size, size) and X.dtype == torch.float32


def test_quick_mode_uses_a_balanced_subset(monkeypatch, capsys):
    monkeypatch.setenv("D2LCNN_QUICK", "1")
    train_iter, test_iter = d2l.load_data_fashion_mnist(128)
    assert (train_iter.num_examples, test_iter.num_examples) == (1024, 512)
    train_iter, _ = d2l.load_data_fashion_mnist(256)  # the book's loop needs 5 batches an epoch
    assert train_iter.num_examples == 1280 and len(train_iter) == 5
    counts = torch.bincount(train_iter.labels)
    assert counts.max() - counts.min() <= 1
    assert "[d2lcnn quick mode]" in capsys.readouterr().err
    # the book's large inputs: fewer images (one costs what ~64 at 28x28 do), still 5 batches
    train_iter, test_iter = d2l.load_data_fashion_mnist(32, resize=224)
    assert (train_iter.num_examples, test_iter.num_examples) == (256, 128)
    train_iter, _ = d2l.load_data_fashion_mnist(128, resize=96)
    assert train_iter.num_examples == 640 and len(train_iter) == 5
    assert d2l.load_data_fashion_mnist(128, resize=64)[0].num_examples == 1024


def test_train_size_keeps_a_balanced_subset_and_the_whole_test_set(monkeypatch):
    monkeypatch.delenv("D2LCNN_QUICK", raising=False)
    train_iter, test_iter = d2l.load_data_fashion_mnist(256, train_size=5000)
    assert train_iter.num_examples == 5000 and test_iter.num_examples == 10000
    assert torch.bincount(train_iter.labels).tolist() == [500] * 10


def test_text_labels():
    assert d2l.get_fashion_mnist_labels([0, 9, 5]) == ["t-shirt", "ankle boot", "sandal"]


def test_bad_batch_size_is_explained(fashion_small):
    Xtr, ytr, _, _ = fashion_small
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        d2l.ImageBatches(Xtr, ytr, 0)


@pytest.mark.parametrize(
    "batch_size, resize, what",
    [(2.5, None, "batch_size must be a positive integer, not 2.5: use 2"), (True, None, "batch_size"),
     ("64", None, "batch_size"), (64, -5, "resize must be None, a positive integer"),
     (64, (28, 0), "resize must be"), (64, (28, 28, 28), "resize must be")],
)  # fmt: skip
def test_bad_loader_arguments_are_explained_not_coerced(batch_size, resize, what):
    with pytest.raises(ValueError, match=re.escape(what)):
        d2l.load_data_fashion_mnist(batch_size, resize=resize)
