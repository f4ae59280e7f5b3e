"""Fashion-MNIST and MNIST: find the files, validate them, keep them as uint8 tensors, batch them.

Where the IDX files come from, in this order:

1. ``root=`` or the ``D2LCNN_DATA`` environment variable;
2. the user cache, ``$XDG_CACHE_HOME/d2lcnn/<dataset>`` (default ``~/.cache/d2lcnn/<dataset>``);
3. Debian/Ubuntu's ``dataset-fashion-mnist`` package, read in place from
   ``/usr/share/datasets/fashion-mnist``;
4. on Kaggle, a data set attached to the notebook that holds the IDX files (``/kaggle/input/...``,
   up to three folders deep; e.g. Zalando's "fashionmnist");
5. a download from torchvision's mirrors into the cache: each file goes to a temporary file, its
   MD5 checksum is verified, and only then is it renamed into place.

Each split is read once per process. The first read of a folder also keeps the decoded arrays in
the user cache (``<cache>/<dataset>/arrays-<key>.npz``, uncompressed, written atomically; the key
names the source files, their sizes and times), which later processes load in about a tenth of
the time gunzip takes (``benchmarks/results/cpu-startup-phases.md``, "data"). A damaged or
unwritable cache gets a warning; the files are then read as before. Batches are made by slicing
the uint8 tensor (no per-sample transforms); images are converted to float32 in [0, 1] and
resized per batch, on the device where the data lives.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .settings import (
    QUICK_TEST,
    QUICK_TEST_LARGE,
    QUICK_TRAIN,
    QUICK_TRAIN_LARGE,
    cache_root,
    is_quick,
    quick_banner,
)

__all__ = [
    "FASHION_MNIST_LABELS",
    "DataError",
    "DataNotFoundError",
    "ImageBatches",
    "Splits",
    "data_sources",
    "get_fashion_mnist_labels",
    "load_arrays",
    "load_data_fashion_mnist",
    "load_data_mnist",
    "read_idx",
]

FASHION_MNIST_LABELS = (
    "t-shirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
)  # fmt: skip

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
#: where Kaggle mounts the data sets attached to a notebook (read-only)
KAGGLE_INPUT = Path("/kaggle/input")

# dataset name -> (name of the torchvision.datasets class that holds its mirrors and MD5s, which
# is also torchvision's folder name; Debian directory or None). torchvision is imported only to
# download: it costs about a second of start-up (it loads torch._dynamo).
_DATASETS = {
    "fashion-mnist": ("FashionMNIST", DEBIAN_DIR),
    "mnist": ("MNIST", None),
}
_SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}
_IMAGE_MAGIC, _LABEL_MAGIC = 2051, 2049
_DOWNLOAD_TIMEOUT_S = 20


class DataError(RuntimeError):
    """A data file exists but is not a valid IDX file of the expected shape."""


class DataNotFoundError(FileNotFoundError):
    """The data set is nowhere on this machine and could not be downloaded."""


@dataclass(frozen=True)
class Splits:
    """A data set in memory: uint8 images (N, 28, 28) and int64 labels (N,) per split."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str  #: the folder the files were read from


def _check_name(dataset: str) -> str:
    key = dataset.lower().replace("_", "-")
    if key in {"fashion", "fashionmnist"}:
        key = "fashion-mnist"
    if key not in _DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}: choose 'fashion-mnist' or 'mnist'.")
    return key


def cache_dir(dataset: str = "fashion-mnist") -> Path:
    """The user cache folder for ``dataset`` (created only when a download needs it)."""
    return cache_root() / _check_name(dataset)


def data_sources(
    dataset: str = "fashion-mnist", root: str | os.PathLike | None = None
) -> list[Path]:
    """The folders searched for ``dataset``'s files, in order (existing or not)."""
    dataset = _check_name(dataset)
    folders: list[Path] = []
    explicit = root if root is not None else os.environ.get("D2LCNN_DATA") or None
    if explicit is not None:
        base = Path(explicit).expanduser()
        tv_name = _DATASETS[dataset][0]
        folders += [base, base / dataset, base / tv_name / "raw"]
    folders.append(cache_dir(dataset))
    debian = _DATASETS[dataset][1]
    if debian is not None:
        folders.append(debian)
    images = _SPLITS["train"][0]
    for pattern in ("*", "*/*", "*/*/*"):  # attached Kaggle data sets that hold the files
        folders += [f for f in sorted(KAGGLE_INPUT.glob(pattern)) if _find(f, images) is not None]
    return folders


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx(path: str | os.PathLike, magic: int, count: int | None = None) -> np.ndarray:
    """Read one IDX file (plain or ``.gz``) and validate it.

    ``magic`` is 2051 for images (returns uint8 (N, 28, 28)) or 2049 for labels (returns
    (N,)). Raises :class:`DataError`, naming the file, if it is truncated, corrupt or has an
    unexpected magic number, shape or count.
    """
    path = Path(path)
    fix = (
        f"Delete {path} and run again to download a fresh copy, or reinstall the data "
        "(Debian/Ubuntu: sudo apt install --reinstall dataset-fashion-mnist)."
    )
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise DataError(
            f"{path} could not be read ({err}): it is truncated or corrupt. {fix}"
        ) from err
    what = "image" if magic == _IMAGE_MAGIC else "label"
    ndim = 3 if magic == _IMAGE_MAGIC else 1
    header = 4 + 4 * ndim
    found_magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found_magic != magic:
        raise DataError(
            f"{path} is not an IDX {what} file: magic number {found_magic}, expected {magic}. {fix}"
        )
    if len(raw) < header:
        raise DataError(f"{path} is truncated: {len(raw)} bytes, shorter than an IDX header. {fix}")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if ndim == 3 and dims[1:] != [28, 28]:
        raise DataError(f"{path} holds {dims[1]}x{dims[2]} images, expected 28x28. {fix}")
    if count is not None and dims[0] != count:
        raise DataError(f"{path} holds {dims[0]} {what}s, expected {count}. {fix}")
    expected = header + math.prod(dims)
    if len(raw) != expected:
        raise DataError(
            f"{path} is truncated or corrupt: its header promises {expected} bytes, "
            f"the file holds {len(raw)}. {fix}"
        )
    data = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
    if magic == _LABEL_MAGIC and data.size and int(data.max()) > 9:
        raise DataError(f"{path} has label {int(data.max())}, outside 0-9. {fix}")
    return data


def _torchvision_class(dataset: str) -> type:
    import torchvision.datasets  # here, not at the top: only a download needs it

    return getattr(torchvision.datasets, _DATASETS[dataset][0])


def _mirrors(dataset: str) -> list[str]:
    """The base URLs to download ``dataset``'s files from, in order (torchvision's)."""
    return list(_torchvision_class(dataset).mirrors)


def _resources(dataset: str) -> list[tuple[str, str]]:
    """``(file name, MD5)`` of each of ``dataset``'s four files (torchvision's)."""
    return list(_torchvision_class(dataset).resources)


def _download(dataset: str, folder: Path) -> None:
    """Download the four files into ``folder`` atomically; raise DataNotFoundError offline."""
    from torchvision.datasets.utils import check_integrity

    folder.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    for filename, md5 in _resources(dataset):
        target = folder / filename
        if check_integrity(str(target), md5):
            continue
        for mirror in _mirrors(dataset):
            url = mirror + filename
            fd, tmp = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=folder)
            try:
                with (
                    os.fdopen(fd, "wb") as out,
                    urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response,
                ):
                    shutil.copyfileobj(response, out)
                if not check_integrity(tmp, md5):
                    raise DataError(f"checksum mismatch for {url}")
                os.replace(tmp, target)
                break
            except (OSError, urllib.error.URLError, DataError) as err:
                errors.append(f"{url}: {getattr(err, 'reason', err)}")
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
        else:
            raise DataNotFoundError(_not_found_message(dataset, errors))


def _not_found_message(dataset: str, errors: Sequence[str]) -> str:
    stems = [s for split in _SPLITS.values() for s in split[:2]]
    lines = [f"{dataset} was not found on this machine and could not be downloaded."]
    lines.append("Looked in: " + ", ".join(str(p) for p in data_sources(dataset)))
    if errors:
        lines.append("Download failed: " + "; ".join(errors[:3]))
    lines.append("Get the data in one of these ways:")
    if dataset == "fashion-mnist":
        lines.append("  - Debian/Ubuntu, offline: sudo apt install dataset-fashion-mnist")
    if KAGGLE_INPUT.is_dir():
        lines.append(
            "  - Kaggle: switch on Internet in the notebook's Settings, or attach a data set that "
            "holds the four files (Add Input, e.g. zalando-research/fashionmnist)"
        )
    lines.append(
        f"  - connect to the internet and run again (files are saved in {cache_dir(dataset)})"
    )
    lines.append(
        "  - copy the four files (" + ", ".join(s + ".gz" for s in stems) + ") into a folder "
        "and set D2LCNN_DATA=/that/folder, or pass root='/that/folder'"
    )
    return "\n".join(lines)


_CACHE: dict[tuple[str, str | None], Splits] = {}


def load_arrays(
    dataset: str = "fashion-mnist", root: str | os.PathLike | None = None, download: bool = True
) -> Splits:
    """Read ``dataset`` once per process into uint8 tensors; later calls return the same tensors."""
    dataset = _check_name(dataset)
    explicit = root if root is not None else os.environ.get("D2LCNN_DATA") or None
    key = (dataset, None if explicit is None else str(Path(explicit).expanduser().resolve()))
    if key in _CACHE:
        return _CACHE[key]
    stems = [s for split in _SPLITS.values() for s in split[:2]]
    folder = next((f for f in data_sources(dataset, root) if all(_find(f, s) for s in stems)), None)
    if folder is None:
        if not download:
            raise DataNotFoundError(_not_found_message(dataset, []))
        folder = cache_dir(dataset)
        _download(dataset, folder)
    kept = _kept_arrays(dataset, folder)
    arrays = _load_kept(kept)
    if arrays is None:
        arrays = []
        for images_stem, labels_stem, count in _SPLITS.values():
            arrays.append(read_idx(_find(folder, images_stem), _IMAGE_MAGIC, count))
            arrays.append(read_idx(_find(folder, labels_stem), _LABEL_MAGIC, count))
        _keep(kept, arrays)
    tensors = [  # images stay uint8 (read-only buffers copied), labels become int64
        torch.from_numpy(
            a.astype(np.int64) if a.ndim == 1 else a if a.flags.writeable else a.copy()
        )
        for a in arrays
    ]
    splits = Splits(*tensors, source=str(folder))
    _CACHE[key] = splits
    return splits


_ARRAY_NAMES = ("train_images", "train_labels", "test_images", "test_labels")


def _kept_arrays(dataset: str, folder: Path) -> Path:
    """Where the decoded arrays of ``folder``'s files are kept: the key hashes each file's
    resolved path, size and modification time, so changed or moved files are read afresh."""
    stat_lines = []
    for images_stem, labels_stem, _ in _SPLITS.values():
        for stem in (images_stem, labels_stem):
            path = _find(folder, stem).resolve()
            st = path.stat()
            stat_lines.append(f"{path}\t{st.st_size}\t{st.st_mtime_ns}")
    key = hashlib.sha1("\n".join(stat_lines).encode()).hexdigest()[:16]
    return cache_dir(dataset) / f"arrays-{key}.npz"


def _load_kept(path: Path) -> list[np.ndarray] | None:
    """The four arrays kept at ``path``, or None (absent, or damaged: then a warning)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = [f[name] for name in _ARRAY_NAMES]
        expected = [shape for _, _, n in _SPLITS.values() for shape in ((n, 28, 28), (n,))]
        shapes_ok = all(
            a.dtype == np.uint8 and a.shape == shape
            for a, shape in zip(arrays, expected, strict=True)
        )
        if not shapes_ok:
            raise ValueError("unexpected array shapes or types")
    except Exception as err:  # a damaged file of any kind: read the IDX files instead
        warnings.warn(f"{path} is damaged ({err}); reading the data files again and replacing it.",
                      stacklevel=3)  # fmt: skip
        return None
    return arrays


def _keep(path: Path, arrays: list[np.ndarray]) -> None:
    """Write the decoded arrays to ``path`` atomically (a temporary file, then a rename)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.stem + "-", suffix=".npz.part", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:  # read_idx's uint8 arrays, as they are
                np.savez(f, **dict(zip(_ARRAY_NAMES, arrays, strict=True)))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as err:
        warnings.warn(f"could not keep the decoded data in {path.parent} ({err}); every process "
                      "will read the data files again.", stacklevel=3)  # fmt: skip


def balanced_subset(labels: torch.Tensor, n: int, num_classes: int = 10) -> torch.Tensor:
    """Indices of the first ``n`` images taken class by class (as equal as possible), in order."""
    per_class = [n // num_classes + (c < n % num_classes) for c in range(num_classes)]
    picks = [torch.nonzero(labels == c).flatten()[:k] for c, k in enumerate(per_class)]
    return torch.cat(picks).sort().values


def _check_batch_size(batch_size: object) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise ValueError(
            f"batch_size must be a positive integer, not {batch_size!r}"
            + (f": use {int(batch_size)}." if isinstance(batch_size, float) else ".")
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, not {batch_size}.")
    return int(batch_size)


def _check_resize(resize: object) -> tuple[int, int] | None:
    """``None``, a side length or an (H, W) pair of positive integers, as (H, W)."""
    if resize is None:
        return None
    pair = tuple(resize) if isinstance(resize, list | tuple) else (resize, resize)
    if len(pair) != 2 or not all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) and v > 0 for v in pair
    ):
        raise ValueError(
            f"resize must be None, a positive integer (e.g. 224) or a pair (H, W) of positive "
            f"integers, not {resize!r}."
        )
    return int(pair[0]), int(pair[1])


def quick_sizes(batch_size: int, resize: tuple[int, int] | None) -> tuple[int, int]:
    """(training, test) images in quick mode: ``QUICK_TRAIN`` / ``QUICK_TEST``; at inputs of
    96x96 and more (AlexNet, VGG, NiN, GoogLeNet at the book's sizes) ``QUICK_TRAIN_LARGE`` /
    ``QUICK_TEST_LARGE``, because a quick run checks that the chapter's code runs and trains,
    not how well, and there one image costs what a hundred 28x28 images do. Never fewer than 5
    batches of training images: code written for d2l updates its plot every
    ``len(train_iter) // 5`` batches and divides by that number (ZeroDivisionError below 5).
    """
    h, w = resize or (28, 28)
    large = h * w >= 96 * 96
    train, test = (QUICK_TRAIN_LARGE, QUICK_TEST_LARGE) if large else (QUICK_TRAIN, QUICK_TEST)
    return max(train, 5 * batch_size), test


class _ImageDataset(torch.utils.data.Dataset):
    """Map-style view of an :class:`ImageBatches` (for ``len(it.dataset)`` and ``it.dataset[i]``)."""

    def __init__(self, batches: ImageBatches) -> None:
        self._b = batches

    def __len__(self) -> int:
        return self._b.num_examples

    @property
    def targets(self) -> torch.Tensor:
        """The labels (N,), as torchvision's data sets name them."""
        return self._b.labels

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        X, y = self._b._make(torch.tensor([i], device=self._b.images.device))
        return X[0], int(y[0])


class ImageBatches:
    """A DataLoader-like iterator over uint8 images held in one tensor.

    ``for X, y in it`` yields X: float32 (B, 1, H, W) in [0, 1] (H = W = ``resize`` or 28) and
    y: int64 (B,), on the device the data lives on. ``len(it)`` is the number of batches; the last
    partial batch is kept. With ``shuffle=True`` every pass draws a new order from a generator
    seeded with ``seed``, so two iterators with the same seed give the same batches.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        resize: int | tuple[int, int] | None = None,
        seed: int | None = None,
    ) -> None:
        batch_size = _check_batch_size(batch_size)
        resize = _check_resize(resize)
        if images.dtype != torch.uint8 or images.ndim not in (3, 4):
            raise ValueError("images must be a uint8 tensor of shape (N, H, W) or (N, 1, H, W).")
        self.images = images if images.ndim == 4 else images.unsqueeze(1)
        self.labels = labels
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.resize = resize
        self.seed = int(torch.randint(2**62, ())) if seed is None else int(seed)
        self._generator = torch.Generator().manual_seed(self.seed)
        self._on_device: dict[str, ImageBatches] = {}

    @property
    def num_examples(self) -> int:
        return self.images.shape[0]

    @property
    def device(self) -> torch.device:
        return self.images.device

    @property
    def dataset(self) -> _ImageDataset:
        return _ImageDataset(self)

    def __len__(self) -> int:
        return math.ceil(self.num_examples / self.batch_size)

    def _make(self, idx: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        X = self.images[idx].to(torch.float32).div_(255)
        if self.resize is not None and tuple(X.shape[-2:]) != tuple(self.resize):
            X = F.interpolate(X, size=self.resize, mode="bilinear", align_corners=False)
        return X, self.labels[idx]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.iter_from(0)

    def iter_from(self, batch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The pass ``iter(self)`` gives (the same shuffle drawn), from batch ``batch`` on: a
        resumed epoch skips the batches it had trained without building them."""
        n, bs = self.num_examples, self.batch_size
        order = None
        if self.shuffle:
            order = torch.randperm(n, generator=self._generator).to(self.device)
        for start in range(batch * bs, n, bs):
            yield self._make(
                slice(start, start + bs) if order is None else order[start : start + bs]
            )

    @property
    def generator(self) -> torch.Generator:
        """The generator every shuffled pass draws its order from (its state is what a
        checkpoint keeps to resume with the same orders)."""
        return self._generator

    def to(self, device: torch.device | str) -> ImageBatches:
        """The same batches with the data resident on ``device`` (copied once, then reused)."""
        device = torch.device(device)
        if device == self.device or (device.type == self.device.type == "cpu"):
            return self
        key = str(device)
        if key not in self._on_device:
            clone = ImageBatches.__new__(ImageBatches)
            clone.__dict__.update(self.__dict__)
            clone.images = self.images.to(device)
            clone.labels = self.labels.to(device)
            clone._generator = self._generator  # one shuffle stream, wherever the data lives
            clone._on_device = {}
            self._on_device[key] = clone
        return self._on_device[key]

    def __repr__(self) -> str:
        h, w = self.resize or tuple(self.images.shape[-2:])
        return (
            f"ImageBatches({self.num_examples} images of 1x{h}x{w}, batch_size={self.batch_size}, "
            f"{len(self)} batches, shuffle={self.shuffle}, device={self.device})"
        )


def _load(
    dataset: str,
    batch_size: int,
    resize: int | tuple[int, int] | None,
    root: str | os.PathLike | None,
    seed: int | None,
    device: torch.device | str | None,
    quick: bool | None,
    train_size: int | None,
) -> tuple[ImageBatches, ImageBatches]:
    batch_size, resize = _check_batch_size(batch_size), _check_resize(resize)
    s = load_arrays(dataset, root)
    train_x, train_y, test_x, test_y = s.train_images, s.train_labels, s.test_images, s.test_labels
    if train_size is not None and train_size < len(train_y):
        keep = balanced_subset(train_y, train_size)
        train_x, train_y = train_x[keep], train_y[keep]
    if is_quick() if quick is None else quick:
        n_train, n_test = quick_sizes(batch_size, resize)
        tr = balanced_subset(train_y, min(n_train, len(train_y)))
        te = balanced_subset(test_y, min(n_test, len(test_y)))
        train_x, train_y, test_x, test_y = train_x[tr], train_y[tr], test_x[te], test_y[te]
        quick_banner(f"{dataset}: {len(tr):,} train / {len(te):,} test images, class-balanced")
    train = ImageBatches(train_x, train_y, batch_size, shuffle=True, resize=resize, seed=seed)
    test = ImageBatches(test_x, test_y, batch_size, shuffle=False, resize=resize)
    if device is not None:
        train, test = train.to(device), test.to(device)
    return train, test


def load_data_fashion_mnist(
    batch_size: int,
    resize: int | tuple[int, int] | None = None,
    *,
    root: str | os.PathLike | None = None,
    seed: int | None = None,
    device: torch.device | str | None = None,
    quick: bool | None = None,
    train_size: int | None = None,
) -> tuple[ImageBatches, ImageBatches]:
    """Fashion-MNIST as ``(train_iter, test_iter)``, like d2l's function of the same name.

    X: float32 (B, 1, H, W) in [0, 1]; y: int64 (B,). The training iterator reshuffles every
    epoch (reproducibly: ``seed``, or drawn from ``torch.manual_seed``'s generator). Data stays
    on the CPU unless ``device`` is given; :func:`d2lcnn.train` moves it to the training device.
    ``train_size`` keeps a class-balanced subset of the training images (the test set stays
    whole). ``quick`` defaults to the ``D2LCNN_QUICK`` environment variable.
    """
    return _load("fashion-mnist", batch_size, resize, root, seed, device, quick, train_size)


def load_data_mnist(
    batch_size: int,
    resize: int | tuple[int, int] | None = None,
    *,
    root: str | os.PathLike | None = None,
    seed: int | None = None,
    device: torch.device | str | None = None,
    quick: bool | None = None,
    train_size: int | None = None,
) -> tuple[ImageBatches, ImageBatches]:
    """MNIST through the same code path (download only: no offline package carries it)."""
    return _load("mnist", batch_size, resize, root, seed, device, quick, train_size)


def get_fashion_mnist_labels(labels: Sequence[int] | torch.Tensor) -> list[str]:
    """Text labels of Fashion-MNIST class indices (d2l name)."""
    return [FASHION_MNIST_LABELS[int(i)] for i in labels]
