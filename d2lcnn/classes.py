"""The class API of d2l 1.0 (the current d2l.ai): ``Module``, ``Classifier``, ``FashionMNIST``,
``Trainer`` and their helpers, so the book's CNN chapters run unchanged on ``import d2lcnn as d2l``.

The names, signatures and behaviour follow ``d2l/torch.py`` of d2l 1.0.3; the work is d2lcnn's:
``FashionMNIST`` serves the uint8-resident :class:`d2lcnn.ImageBatches` (found offline, validated,
resized per batch on the device), and ``Trainer.fit`` is a way into :func:`d2lcnn.train`, the
course's one training loop (precision and layout switches, live plot, Ctrl-C, NaN stop, lazy
layers). What differs from d2l, on purpose:

* ``fit`` trains with ``model.loss`` on ``model.forward`` and ``model.configure_optimizers()``; a
  subclass that overrides ``training_step`` or ``validation_step`` gets a warning that they are
  not called (none of the CNN chapters does).
* The live figure shows d2l's curves (train loss, val loss, val acc) per epoch, and the trainer
  prints the device, the precision and the final accuracies, as ``train_ch6`` does.
* ``FashionMNIST(root=...)`` is optional: the data is found as :func:`load_data_fashion_mnist`
  finds it, and nothing is written to ``../data``.
"""

from __future__ import annotations

import collections
import inspect
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .data import FASHION_MNIST_LABELS, ImageBatches, load_data_fashion_mnist
from .device import cpu, gpu, try_gpu
from .device import num_gpus as count_gpus
from .plot import in_notebook, show_images, show_live
from .summary import print_shapes
from .train import History, init_xavier, train

__all__ = [
    "Classifier",
    "DataModule",
    "FashionMNIST",
    "HyperParameters",
    "Module",
    "ProgressBoard",
    "Trainer",
    "add_to_class",
    "init_cnn",
]

init_cnn = init_xavier  #: d2l 1.0's name: Xavier-uniform weights for every Linear and Conv2d


def add_to_class(Class: type) -> Callable:
    """Register the decorated function as a method of ``Class`` (d2l's way to split a class
    over several notebook cells)."""

    def wrapper(obj: Callable) -> Callable:
        setattr(Class, obj.__name__, obj)
        return obj

    return wrapper


class HyperParameters:
    """The base class of d2l's classes: ``save_hyperparameters`` keeps the caller's arguments."""

    def save_hyperparameters(self, ignore: Sequence[str] = ()) -> None:
        """Store every argument of the calling ``__init__`` as an attribute and in ``hparams``."""
        frame = inspect.currentframe().f_back
        _, _, _, local_vars = inspect.getargvalues(frame)
        skip = set(ignore) | {"self"}
        self.hparams = {
            k: v
            for k, v in local_vars.items()
            if k not in skip and not k.startswith("_") and k != "__class__"
        }
        for k, v in self.hparams.items():
            setattr(self, k, v)


class ProgressBoard(HyperParameters):
    """A figure of points that arrive one by one: ``draw(x, y, label, every_n)`` plots the mean
    of every ``every_n`` points of a curve (d2l's ``ProgressBoard``). Drawn live in Jupyter."""

    def __init__(self, xlabel=None, ylabel=None, xlim=None, ylim=None, xscale="linear",
                 yscale="linear", ls=("-", "--", "-.", ":"), colors=("C0", "C1", "C2", "C3"),
                 fig=None, axes=None, figsize=(3.5, 2.5), display=True):  # fmt: skip
        self.save_hyperparameters()
        self.raw_points: dict[str, list[tuple[float, float]]] = collections.OrderedDict()
        self.data: dict[str, list[tuple[float, float]]] = collections.OrderedDict()
        self._handle = None

    def draw(self, x: float, y: float | torch.Tensor, label: str, every_n: int = 1) -> None:
        points = self.raw_points.setdefault(label, [])
        line = self.data.setdefault(label, [])
        points.append((float(x), float(y)))
        if len(points) != every_n:
            return
        line.append((sum(p[0] for p in points) / every_n, sum(p[1] for p in points) / every_n))
        points.clear()
        if not self.display:
            return
        if self.fig is None:
            from .plot import plt  # pyplot on first use: it is slow to import

            self.fig = plt.figure(figsize=self.figsize)
            plt.close(self.fig)  # shown by show_live, not again by pyplot
        axes = self.axes or (self.fig.axes[0] if self.fig.axes else self.fig.add_subplot())
        axes.cla()
        for (name, v), ls, color in zip(self.data.items(), self.ls, self.colors, strict=False):
            axes.plot([p[0] for p in v], [p[1] for p in v], linestyle=ls, color=color, label=name)
        if self.xlim:
            axes.set_xlim(self.xlim)
        if self.ylim:
            axes.set_ylim(self.ylim)
        axes.set_xlabel(self.xlabel or "x"), axes.set_ylabel(self.ylabel)
        axes.set_xscale(self.xscale), axes.set_yscale(self.yscale)
        axes.legend()
        if in_notebook():
            self._handle = show_live(self.fig, self._handle)


class Module(nn.Module, HyperParameters):
    """The base class of d2l 1.0's models: ``self.net`` holds the layers; ``loss``,
    ``configure_optimizers`` and the steps define how :class:`Trainer` trains it."""

    def __init__(self, plot_train_per_epoch: int = 2, plot_valid_per_epoch: int = 1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.board = ProgressBoard()

    def loss(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """X: (B, C, H, W) -> scores (B, num_classes), through ``self.net``."""
        if not hasattr(self, "net"):
            raise AttributeError(
                f"{type(self).__name__} has no self.net: assign the layers to self.net in "
                "__init__ (d2l's models do), or override forward()."
            )
        return self.net(X)

    def plot(self, key: str, value: float | torch.Tensor, train: bool) -> None:
        """Plot ``value`` on the board (d2l's ``Module.plot``; needs ``self.trainer``)."""
        if not hasattr(self, "trainer"):
            raise AttributeError("Module.plot needs a trainer: call trainer.fit(model, data).")
        self.board.xlabel = "epoch"
        if train:
            x = self.trainer.train_batch_idx / self.trainer.num_train_batches
            n = self.trainer.num_train_batches / self.plot_train_per_epoch
        else:
            x = self.trainer.epoch + 1
            n = self.trainer.num_val_batches / self.plot_valid_per_epoch
        if torch.is_tensor(value):
            value = value.detach().float().cpu()
        self.board.draw(x, value, ("train_" if train else "val_") + key, every_n=max(int(n), 1))

    def training_step(self, batch: Sequence[torch.Tensor]) -> torch.Tensor:
        loss = self.loss(self(*batch[:-1]), batch[-1])
        self.plot("loss", loss, train=True)
        return loss

    def validation_step(self, batch: Sequence[torch.Tensor]) -> None:
        loss = self.loss(self(*batch[:-1]), batch[-1])
        self.plot("loss", loss, train=False)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Minibatch SGD with the model's ``lr`` hyperparameter."""
        return torch.optim.SGD(self.parameters(), lr=self.lr)

    def apply_init(self, inputs: Sequence[torch.Tensor], init: Callable | None = None) -> None:
        """One forward pass on ``inputs`` (lazy layers take their shapes), then ``init`` on every
        layer of ``self.net``."""
        self.forward(*inputs)
        if init is not None:
            self.net.apply(init)


class Classifier(Module):
    """A :class:`Module` for classification: cross-entropy loss, accuracy on validation data."""

    def validation_step(self, batch: Sequence[torch.Tensor]) -> None:
        Y_hat = self(*batch[:-1])
        self.plot("loss", self.loss(Y_hat, batch[-1]), train=False)
        self.plot("acc", self.accuracy(Y_hat, batch[-1]), train=False)

    def accuracy(self, Y_hat: torch.Tensor, Y: torch.Tensor, averaged: bool = True) -> torch.Tensor:
        """Fraction (``averaged``) or per-example 0/1 of correct predictions."""
        Y_hat = Y_hat.reshape((-1, Y_hat.shape[-1]))
        preds = Y_hat.argmax(axis=1).type(Y.dtype)
        compare = (preds == Y.reshape(-1)).type(torch.float32)
        return compare.mean() if averaged else compare

    def loss(self, Y_hat: torch.Tensor, Y: torch.Tensor, averaged: bool = True) -> torch.Tensor:
        """Cross-entropy of scores (..., C) against labels (...)."""
        Y_hat = Y_hat.reshape((-1, Y_hat.shape[-1]))
        Y = Y.reshape((-1,))
        return F.cross_entropy(Y_hat, Y, reduction="mean" if averaged else "none")

    def layer_summary(self, X_shape: Sequence[int]) -> None:
        """The book's shape printout, one line per layer of ``self.net`` (d2l saves this method
        in its LeNet section)."""
        print_shapes(self.net, X_shape)


class DataModule(HyperParameters):
    """The base class of d2l 1.0's data: ``get_dataloader(train)`` gives the batches."""

    def __init__(self, root: str | None = None, num_workers: int = 0) -> None:
        self.save_hyperparameters()

    def get_dataloader(self, train: bool):
        raise NotImplementedError

    def train_dataloader(self):
        return self.get_dataloader(train=True)

    def val_dataloader(self):
        return self.get_dataloader(train=False)

    def get_tensorloader(self, tensors: Sequence[torch.Tensor], train: bool,
                         indices: slice = slice(0, None)):  # fmt: skip
        """A DataLoader over slices of in-memory tensors (d2l's helper for synthetic data)."""
        tensors = tuple(a[indices] for a in tensors)
        dataset = torch.utils.data.TensorDataset(*tensors)
        return torch.utils.data.DataLoader(dataset, self.batch_size, shuffle=train)


class FashionMNIST(DataModule):
    """Fashion-MNIST (d2l 1.0's class): batches X (B, 1, H, W) float32 in [0, 1], y (B,) int64.

    ``resize`` is an (H, W) pair or a side length. ``data.train`` and ``data.val`` are the two
    splits as datasets (``len(data.train)``, ``data.train[0]``). Quick mode (``D2LCNN_QUICK=1``)
    shrinks them as it shrinks :func:`d2lcnn.load_data_fashion_mnist`.
    """

    def __init__(self, batch_size: int = 64, resize: int | Sequence[int] = (28, 28),
                 root: str | None = None, num_workers: int = 0) -> None:  # fmt: skip
        super().__init__(root, num_workers)
        self.save_hyperparameters()
        train_iter, val_iter = load_data_fashion_mnist(batch_size, resize=resize, root=root)
        self._iters = {True: train_iter, False: val_iter}
        self._views = {True: train_iter.dataset, False: val_iter.dataset}
        self.train, self.val = self._views[True], self._views[False]
        self._subsets: dict[bool, tuple[object, ImageBatches]] = {}  # train/val: (Subset, batches)

    def text_labels(self, indices: Sequence[int] | torch.Tensor) -> list[str]:
        """Class names of label indices."""
        return [FASHION_MNIST_LABELS[int(i)] for i in indices]

    def get_dataloader(self, train: bool):
        """The training batches (reshuffled every pass) or the validation batches.

        Like d2l's, it serves ``data.train`` / ``data.val``: assign a
        ``torch.utils.data.Subset`` of one to train on part of it (served as uint8-resident
        batches too), or any other dataset (served by a ``DataLoader``).
        """
        train = bool(train)
        data, batches = (self.train if train else self.val), self._iters[train]
        if data is self._views[train]:
            return batches
        if isinstance(data, torch.utils.data.Subset) and data.dataset is self._views[train]:
            # keyed by the Subset object itself, which the cache holds: an id() would be given
            # to the next Subset once this one is freed, and serve it this one's batches
            cached = self._subsets.get(train)
            if cached is None or cached[0] is not data:
                keep = torch.as_tensor(list(data.indices), dtype=torch.long)
                cached = (data, ImageBatches(
                    batches.images[keep], batches.labels[keep], batches.batch_size,
                    shuffle=train, resize=batches.resize, seed=batches.seed))  # fmt: skip
                self._subsets[train] = cached
            return cached[1]
        return torch.utils.data.DataLoader(data, self.batch_size, shuffle=train)

    def visualize(self, batch: Sequence[torch.Tensor], nrows: int = 1, ncols: int = 8,
                  labels: Sequence[str] = ()) -> None:  # fmt: skip
        X, y = batch
        if not labels:
            labels = self.text_labels(y)
        show_images(X.squeeze(1), nrows, ncols, titles=labels)


class Trainer(HyperParameters):
    """d2l 1.0's trainer. ``fit(model, data)`` trains ``model`` on ``data`` for ``max_epochs``
    on the first of ``num_gpus`` GPUs (the CPU when there is none) through :func:`d2lcnn.train`.
    ``gradient_clip_val > 0`` clips the gradients' global norm. After ``fit``, ``history`` holds
    the per-epoch metrics."""

    def __init__(self, max_epochs: int, num_gpus: int = 0, gradient_clip_val: float = 0) -> None:
        self.save_hyperparameters()
        self.gpus = [gpu(i) for i in range(min(num_gpus, count_gpus()))]
        self.history: History | None = None

    @property
    def device(self) -> torch.device:
        """Where ``fit`` trains: the first GPU asked for, Apple's mps when asked for a GPU on a
        Mac, else the CPU."""
        if self.gpus:
            return self.gpus[0]
        return try_gpu() if self.num_gpus > 0 else cpu()

    def prepare_data(self, data: DataModule) -> None:
        self.train_dataloader = data.train_dataloader()
        self.val_dataloader = data.val_dataloader()
        self.num_train_batches = len(self.train_dataloader)
        self.num_val_batches = len(self.val_dataloader) if self.val_dataloader is not None else 0

    def prepare_model(self, model: Module) -> None:
        model.trainer = self
        model.board.xlim = [0, self.max_epochs]
        model.to(self.device)
        self.model = model

    def prepare_batch(self, batch: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """d2l's: the batch on the trainer's device (``fit`` places data itself; overriding this
        changes nothing, and ``fit`` warns when a subclass does)."""
        return [a.to(self.device) for a in batch]

    def clip_gradients(self, grad_clip_val: float, model: nn.Module) -> None:
        """d2l's: clip the gradients' global norm. ``fit`` clips through ``gradient_clip_val``
        (:func:`d2lcnn.train`'s ``grad_clip``); overriding this changes nothing, with a warning."""
        nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], grad_clip_val)

    def fit(self, model: Module, data: DataModule) -> History:
        """Train for ``max_epochs`` epochs; returns (and keeps in ``self.history``) the metrics."""
        self.prepare_data(data)
        self.prepare_model(model)
        _warn_unused_steps(model)
        _warn_unused_hooks(self)
        self.optim = model.configure_optimizers()
        self.epoch = self.train_batch_idx = self.val_batch_idx = 0
        self.history = self._train(self.max_epochs)
        return self.history

    def fit_epoch(self) -> History:
        """One more epoch of the model and data of the last ``fit`` (through :func:`train`)."""
        if not hasattr(self, "model"):
            raise RuntimeError("fit_epoch continues a fit: call trainer.fit(model, data) first.")
        return self._train(1)

    def _train(self, epochs: int) -> History:
        lr = self.optim.param_groups[0]["lr"]
        history = train(
            self.model, self.train_dataloader, self.val_dataloader, epochs, lr, self.device,
            optimizer=self.optim, loss=self.model.loss, init=None,
            grad_clip=self.gradient_clip_val or None,
            curves=("train loss", "val loss", "val acc"),
        )  # fmt: skip
        self.epoch += len(history)
        self.train_batch_idx += len(history) * self.num_train_batches
        self.val_batch_idx += len(history) * self.num_val_batches
        return history


def _warn_unused_steps(model: Module) -> None:
    mine = {"training_step": Module.training_step, "validation_step": Classifier.validation_step}
    for name, ours in mine.items():
        theirs = getattr(type(model), name)
        if theirs is not ours and theirs is not getattr(Module, name):
            warnings.warn(
                f"{type(model).__name__} overrides {name}, which d2lcnn's Trainer.fit does not "
                "call: it trains with model.loss on model.forward (d2lcnn.train, the course's "
                "training loop).",
                stacklevel=3,
            )


def _warn_unused_hooks(trainer: Trainer) -> None:
    for name in ("prepare_batch", "clip_gradients"):
        if getattr(type(trainer), name) is not getattr(Trainer, name):
            warnings.warn(
                f"{type(trainer).__name__} overrides {name}, which d2lcnn's Trainer.fit does not "
                "call: d2lcnn.train places the batches itself and clips with "
                "Trainer(gradient_clip_val=...).",
                stacklevel=3,
            )
