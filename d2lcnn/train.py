"""The training loop: ``train()`` with the speed switches, and d2l's ``train_ch6`` on top of it.

One readable loop. What makes it fast, each switch explicit:

* data resident on the training device as uint8, batches by index, resize on the device
  (:class:`d2lcnn.data.ImageBatches`);
* no host-device synchronisation per batch: loss and accuracy are summed on the device and read
  a few times per epoch (CUDA) — on the CPU reading them is free, so every batch is checked;
* ``precision='auto'``: bfloat16 autocast on CUDA and on CPUs with bf16 instructions;
* ``channels_last='auto'``: NHWC or NCHW memory format, whichever a timed training pass on the
  first batch finds faster. Measured on a 2-core CPU (``benchmarks/switches.py``): NHWC is
  +10-35 % for AlexNet, VGG, NiN, GoogLeNet, ResNet, DenseNet and +25 % for LeNet, but -30 % for
  BN-LeNet, so no fixed choice is right for every model. A model that calls ``.view()`` on a
  convolution's output cannot run on NHWC activations: ``'auto'`` keeps NCHW and says so;
* fused optimizer steps for Adam, AdamW and SGD with momentum (``benchmarks/optimizer_step.py``:
  4-6x faster steps than foreach for AlexNet's, VGG's and ResNet's parameters on a 2-core CPU);
* ``keep_cpu_memory=True`` (CPU): glibc's malloc keeps freed blocks for the next step instead of
  handing them back to the kernel and faulting in fresh zeroed pages every step
  (``benchmarks/cpu_memory.py`` on a 2-core CPU: LeNet 1.37x, ResNet-18 1.17x, DenseNet 1.56x,
  peak memory +6-35 %; a process-wide setting, see :func:`d2lcnn.device.keep_freed_cpu_memory`);
* ``compile=True``: ``torch.compile``, off by default: on a 2-core CPU a first compile of LeNet
  takes about 11 s and the compiled steps were no faster (``benchmarks/compile_cost.py``).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from .data import ImageBatches
from .device import autocast_dtype, describe_device, keep_freed_cpu_memory, resolve_device
from .metrics import correct_count
from .plot import Animator, in_notebook
from .quick import QUICK_EPOCHS, is_quick, quick_banner

__all__ = [
    "EpochStats",
    "History",
    "evaluate_accuracy_gpu",
    "init_xavier",
    "load_checkpoint",
    "save_checkpoint",
    "train",
    "train_ch6",
]


@dataclass
class EpochStats:
    """Metrics of one epoch."""

    epoch: int
    train_loss: float
    train_acc: float
    test_acc: float
    seconds: float  #: wall-clock seconds of the training pass, data loading included
    examples_per_sec: float


@dataclass
class History:
    """What :func:`train` returns: one :class:`EpochStats` per finished epoch."""

    epochs: list[EpochStats] = field(default_factory=list)
    device: str = ""
    interrupted: bool = False  #: True when Ctrl-C stopped training early

    def __len__(self) -> int:
        return len(self.epochs)

    def __getitem__(self, i: int) -> EpochStats:
        return self.epochs[i]

    def __iter__(self):
        return iter(self.epochs)

    @property
    def final(self) -> EpochStats | None:
        return self.epochs[-1] if self.epochs else None

    def column(self, name: str) -> list[float]:
        """One metric over the epochs, e.g. ``history.column('test_acc')``."""
        return [getattr(e, name) for e in self.epochs]

    def __repr__(self) -> str:
        if not self.epochs:
            return f"History(no finished epoch, device={self.device!r})"
        f = self.epochs[-1]
        return (
            f"History({len(self.epochs)} epochs on {self.device}: train loss {f.train_loss:.3f}, "
            f"train acc {f.train_acc:.3f}, test acc {f.test_acc:.3f}"
            f"{', interrupted' if self.interrupted else ''})"
        )


def init_xavier(m: nn.Module) -> None:
    """d2l's initialisation: Xavier-uniform weights for every Linear and Conv2d."""
    if type(m) in (nn.Linear, nn.Conv2d):
        nn.init.xavier_uniform_(m.weight)


def save_checkpoint(path: str | os.PathLike, net: nn.Module, **extra: object) -> Path:
    """Save ``{'model': net.state_dict(), **extra}`` atomically (temporary file, then rename).

    An interrupted save never leaves a half-written file at ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"model": net.state_dict(), **extra}, f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_checkpoint(
    path: str | os.PathLike, net: nn.Module, map_location: str | torch.device = "cpu"
) -> dict:
    """Load weights saved by :func:`save_checkpoint` into ``net`` (``weights_only=True``).

    Returns the whole checkpoint dictionary (optimizer state, epoch, history, ...).
    """
    state = torch.load(path, map_location=map_location, weights_only=True)
    net.load_state_dict(state["model"])
    return state


def _to_device(data_iter: Iterable, device: torch.device) -> Iterable:
    return data_iter.to(device) if isinstance(data_iter, ImageBatches) else data_iter


def _num_examples(data_iter: Iterable) -> int | None:
    if isinstance(data_iter, ImageBatches):
        return data_iter.num_examples
    dataset = getattr(data_iter, "dataset", None)
    return len(dataset) if dataset is not None and hasattr(dataset, "__len__") else None


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def _probe_batch(data_iter: Iterable, device: torch.device, limit: int | None) -> tuple:
    """A training batch (at most ``limit`` examples), without advancing an ImageBatches' shuffling."""
    if isinstance(data_iter, ImageBatches):
        size = data_iter.batch_size if limit is None else limit
        X, y = data_iter._make(slice(0, min(size, data_iter.num_examples)))
    else:
        X, y = next(iter(data_iter))
        X, y = X[:limit], y[:limit]
    return X.to(device), y.to(device)


def _step_seconds(net: nn.Module, X: torch.Tensor, y: torch.Tensor, nhwc: bool,
                  dtype: torch.dtype | None) -> float:  # fmt: skip
    """Seconds of one forward + backward pass in one memory format.

    A first pass also pays one-time costs (choosing kernels, allocating memory); when it is fast
    those costs matter and a second pass is timed, when it is slow (over 0.3 s: a large model on
    a CPU) they do not, and the first pass is the measurement.
    """
    fmt = torch.channels_last if nhwc else torch.contiguous_format
    net.to(memory_format=fmt)
    X = X.contiguous(memory_format=fmt)
    seconds = math.inf
    for _ in range(2):
        if X.is_cuda:
            torch.cuda.synchronize()
        tic = time.perf_counter()
        with _autocast(X.device, dtype):
            loss = nn.functional.cross_entropy(net(X), y)
        loss.backward()
        if X.is_cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - tic
        if seconds > 0.3:
            break
    return seconds


def _faster_layout(net: nn.Module, data_iter: Iterable, device: torch.device,
                   dtype: torch.dtype | None) -> bool:  # fmt: skip
    """``channels_last='auto'``: time a training pass in NHWC and NCHW, keep the faster.

    Which layout wins depends on the model, the device and the batch size (on this course's
    2-core CPU: NHWC +10-35 % for AlexNet ... DenseNet, +25 % for LeNet, -30 % for BN-LeNet, whose
    batch norm on 6 channels is slow in NHWC; ``benchmarks/switches.py``). So the trainer measures,
    like ``cudnn.benchmark`` does for kernels: a timed forward + backward pass in each layout on a
    training batch (at most 16 images on a CPU, where a pass is slow; about 1.5 s for AlexNet at
    224 px on a 2-core CPU, after a warm-up pass for models fast enough to need one). The weights,
    gradients, batch-norm statistics and random-number state are left as they were. A model that
    calls ``.view()`` on a convolution's output cannot run in NHWC: it keeps NCHW, with a notice.
    """
    X, y = _probe_batch(data_iter, device, 16 if device.type == "cpu" else None)
    if X.ndim != 4:
        return False
    # batch-norm running statistics, by name: a layer may replace its buffer tensors (d2l's BN)
    names = {name for name, _ in net.named_buffers()}
    buffers = {k: v.clone() for k, v in net.state_dict().items() if k in names}
    grads = [p.grad for p in net.parameters()]
    was_training = net.training
    rng_devices = [device.index or 0] if device.type == "cuda" else []
    seconds = {}
    try:
        with torch.random.fork_rng(devices=rng_devices):  # dropout draws random numbers
            net.train()
            for nhwc in (True, False):
                seconds[nhwc] = _step_seconds(net, X, y, nhwc, dtype)
    except RuntimeError as err:
        if "view size is not compatible" not in str(err):
            raise
        print("channels_last is off for this model: it calls .view() on a convolution's output "
              "(use .reshape() or nn.Flatten() to allow the faster layout).", file=sys.stderr)  # fmt: skip
        seconds = {True: math.inf, False: 0.0}
    finally:
        net.load_state_dict(buffers, strict=False)
        for p, g in zip(net.parameters(), grads, strict=True):
            p.grad = g
        net.train(was_training)
    nhwc = seconds[True] < seconds[False]
    net.to(memory_format=torch.channels_last if nhwc else torch.contiguous_format)
    return nhwc


def _evaluate(
    net: nn.Module,
    data_iter: Iterable,
    device: torch.device,
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> float:
    net.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    n = 0
    with torch.no_grad(), _autocast(device, dtype):
        for X, y in _to_device(data_iter, device):
            X, y = X.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last and X.ndim == 4:
                X = X.contiguous(memory_format=torch.channels_last)
            correct += correct_count(net(X), y)
            n += y.numel()
    return correct.item() / max(n, 1)


def evaluate_accuracy_gpu(
    net: nn.Module, data_iter: Iterable, device: torch.device | str | None = None
) -> float:
    """Accuracy of ``net`` on ``data_iter`` (d2l name), computed on ``device``.

    ``device`` defaults to the device of the network's parameters. The network is put in
    evaluation mode. Correct predictions are counted on the device and read once at the end.
    """
    if device is None:
        p = next(iter(net.parameters()), None)
        device = p.device if p is not None else torch.device("cpu")
    return _evaluate(net, data_iter, torch.device(device))


def _optimizer(
    name: str,
    params: Iterable,
    lr: float,
    momentum: float,
    weight_decay: float,
    device: torch.device,
) -> torch.optim.Optimizer:
    # Fused steps update all parameters in one kernel; benchmarks/optimizer_step.py measures
    # them against foreach on this CPU (Adam 4-5x faster per step, SGD with momentum 1.7x);
    # plain SGD stays foreach (no faster fused). Fused kernels exist for CPU and CUDA tensors.
    fused = device.type in ("cpu", "cuda")
    name = name.lower()
    if name == "sgd":
        step = {"fused": True} if fused and momentum > 0 else {"foreach": True}
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, **step)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)
    raise ValueError(f"optimizer must be 'sgd', 'adam' or 'adamw', not {name!r}.")


def _scheduler(name: str | None, opt: torch.optim.Optimizer, lr: float, total_steps: int):
    if name is None:
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total_steps, 1))
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(total_steps, 1))
    raise ValueError(f"schedule must be None, 'cosine' or 'onecycle', not {name!r}.")


def train(
    net: nn.Module,
    train_iter: Iterable,
    test_iter: Iterable,
    num_epochs: int,
    lr: float,
    device: torch.device | str | None = None,
    *,
    optimizer: str = "sgd",
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    label_smoothing: float = 0.0,
    schedule: str | None = None,
    precision: str = "auto",
    channels_last: bool | str = "auto",
    compile: bool = False,
    keep_cpu_memory: bool = True,
    init: str | None = "xavier",
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    seed: int | None = None,
    plot: bool | str = "auto",
    verbose: bool = True,
) -> History:
    """Train ``net`` for classification with cross-entropy; return a :class:`History`.

    Batches X: (B, C, H, W) float, y: (B,) int64. ``device`` defaults to ``try_gpu()``.
    ``init='xavier'`` re-initialises Linear/Conv2d weights as d2l does (``None`` keeps them).
    ``checkpoint`` saves model, optimizer and history after every epoch (atomically);
    ``resume=True`` continues from it. Ctrl-C stops cleanly, keeping the weights and the history
    so far (``history.interrupted``). A loss that becomes NaN or inf raises ``FloatingPointError``
    naming the epoch and batch. In quick mode (``D2LCNN_QUICK=1``) epochs are capped.
    ``plot='auto'`` draws a live figure in Jupyter and shows a progress bar elsewhere.
    ``keep_cpu_memory`` (on a CPU): see :func:`d2lcnn.device.keep_freed_cpu_memory`.
    """
    device = resolve_device(device)
    if keep_cpu_memory and device.type == "cpu":
        keep_freed_cpu_memory()
    if is_quick() and num_epochs > QUICK_EPOCHS:
        quick_banner(f"training {QUICK_EPOCHS} epoch(s) instead of {num_epochs}")
        num_epochs = QUICK_EPOCHS
    if seed is not None:
        torch.manual_seed(seed)
    if init == "xavier":
        net.apply(init_xavier)
    elif init is not None:
        raise ValueError(f"init must be 'xavier' or None, not {init!r}.")
    dtype = autocast_dtype(device, precision)
    net.to(device)
    train_iter, test_iter = _to_device(train_iter, device), _to_device(test_iter, device)
    if channels_last == "auto":
        nhwc = _faster_layout(net, train_iter, device, dtype)
    else:
        nhwc = bool(channels_last)
        net.to(memory_format=torch.channels_last if nhwc else torch.contiguous_format)
    num_batches = len(train_iter)
    opt = _optimizer(optimizer, net.parameters(), lr, momentum, weight_decay, device)
    sched = _scheduler(schedule, opt, lr, num_epochs * num_batches)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    model = torch.compile(net) if compile else net
    history = History(device=str(device))
    start_epoch = 0
    if checkpoint is not None and resume and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, net, map_location=device)
        opt.load_state_dict(state["optimizer"])
        if sched is not None and "scheduler" in state:
            sched.load_state_dict(state["scheduler"])
        history.epochs = [EpochStats(**e) for e in state["history"]]
        start_epoch = int(state["epoch"])

    def save() -> None:
        if checkpoint is not None:
            extra = {"optimizer": opt.state_dict(), "epoch": len(history.epochs),
                     "history": [asdict(e) for e in history.epochs]}  # fmt: skip
            if sched is not None:
                extra["scheduler"] = sched.state_dict()
            save_checkpoint(checkpoint, net, **extra)

    live_plot = in_notebook() if plot == "auto" else bool(plot)
    animator = None
    if live_plot:
        animator = Animator(xlabel="epoch", xlim=[0, max(num_epochs, 1)],
                            legend=["train loss", "train acc", "test acc"])  # fmt: skip
        for e in history.epochs:
            animator.add(e.epoch, (e.train_loss, e.train_acc, e.test_acc))
    if verbose:
        n_train, n_test = _num_examples(train_iter), _num_examples(test_iter)
        data = (
            f"{n_train:,} train / {n_test:,} test images" if n_train and n_test else "custom data"
        )
        if isinstance(train_iter, ImageBatches):
            h, w = train_iter.resize or train_iter.images.shape[-2:]
            data += f" of {train_iter.images.shape[1]}x{h}x{w}"
        mode = "quick mode" if is_quick() else "full mode"
        prec = "bf16 autocast" if dtype is not None else "fp32"
        print(f"training on {describe_device(device)}, {prec}, {mode}: {data}, {num_epochs} epochs")
    update_every = max(num_batches // 5, 1)
    check_every = 1 if device.type == "cpu" else update_every  # reading a CUDA scalar syncs
    train_seconds = eval_seconds = 0.0
    epoch = start_epoch
    batch = 0
    try:
        for epoch in range(start_epoch, num_epochs):
            net.train()
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), dtype=torch.int64, device=device)
            bad_batch = torch.full((), -1, dtype=torch.int64, device=device)
            seen = 0
            bar = None
            if not live_plot and verbose:
                bar = tqdm(total=num_batches, desc=f"epoch {epoch + 1}/{num_epochs}", leave=False,
                           file=sys.stderr, dynamic_ncols=True)  # fmt: skip
            tic = time.perf_counter()
            for batch, (X, y) in enumerate(train_iter):
                X, y = X.to(device, non_blocking=True), y.to(device, non_blocking=True)
                if nhwc and X.ndim == 4:
                    X = X.contiguous(memory_format=torch.channels_last)
                with _autocast(device, dtype):
                    y_hat = model(X)
                    loss = loss_fn(y_hat, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                with torch.no_grad():
                    loss = loss.detach().float()
                    loss_sum += loss * y.shape[0]
                    correct += correct_count(y_hat.detach(), y)
                    bad_batch = torch.where(
                        (bad_batch < 0) & ~torch.isfinite(loss), batch, bad_batch
                    )
                seen += y.shape[0]
                last = batch == num_batches - 1
                if (batch + 1) % check_every == 0 or last:
                    if bad_batch.item() >= 0:
                        raise _nonfinite(loss_sum, epoch, int(bad_batch), num_batches, lr, history)
                if (batch + 1) % update_every == 0 or last:
                    train_loss, train_acc = loss_sum.item() / seen, correct.item() / seen
                    if animator is not None:
                        animator.add(
                            epoch + (batch + 1) / num_batches, (train_loss, train_acc, None)
                        )
                    if bar is not None:
                        bar.set_postfix(
                            loss=f"{train_loss:.3f}", acc=f"{train_acc:.3f}", refresh=False
                        )
                if bar is not None:
                    bar.update(1)
            seconds = time.perf_counter() - tic
            train_seconds += seconds
            if bar is not None:
                bar.close()
            tic = time.perf_counter()
            test_acc = _evaluate(model, test_iter, device, dtype, nhwc)
            eval_seconds += time.perf_counter() - tic
            stats = EpochStats(epoch + 1, loss_sum.item() / seen, correct.item() / seen, test_acc,
                               seconds, seen / seconds)  # fmt: skip
            history.epochs.append(stats)
            if animator is not None:
                animator.add(epoch + 1, (None, None, test_acc))
            elif verbose:
                tqdm.write(f"epoch {epoch + 1}: loss {stats.train_loss:.3f}, train acc "
                           f"{stats.train_acc:.3f}, test acc {test_acc:.3f}, "
                           f"{stats.examples_per_sec:.0f} examples/sec")  # fmt: skip
            save()
    except KeyboardInterrupt:
        history.interrupted = True
        print(f"Interrupted in epoch {epoch + 1}, batch {batch + 1}: the model keeps its weights, "
              f"the history keeps {len(history)} finished epoch(s).", file=sys.stderr)  # fmt: skip
        save()
    if verbose and history.epochs:
        f = history.epochs[-1]
        done = history.epochs[start_epoch:]
        speed = sum(e.seconds * e.examples_per_sec for e in done) / max(
            sum(e.seconds for e in done), 1e-9
        )
        print(f"loss {f.train_loss:.3f}, train acc {f.train_acc:.3f}, test acc {f.test_acc:.3f}")
        print(f"{speed:.1f} examples/sec on {device}")
        print(f"{len(done)} epochs in {train_seconds / 60:.1f} min of training "
              f"(+{eval_seconds / 60:.1f} min evaluating)")  # fmt: skip
    return history


def _nonfinite(
    loss_sum: torch.Tensor, epoch: int, batch: int, num_batches: int, lr: float, history: History
) -> FloatingPointError:
    what = "NaN" if math.isnan(loss_sum.item()) else "inf"
    err = FloatingPointError(
        f"The training loss became {what} in epoch {epoch + 1}, batch {batch + 1} of {num_batches}, "
        f"so training stopped. The learning rate (lr={lr:g}) is probably too high: try "
        f"lr={lr / 10:g}. The history so far is in this error's .history attribute."
    )
    err.history = history  # type: ignore[attr-defined]
    return err


def train_ch6(
    net: nn.Module,
    train_iter: Iterable,
    test_iter: Iterable,
    num_epochs: int,
    lr: float,
    device: torch.device | str | None = None,
) -> History:
    """d2l's ``train_ch6``: Xavier init, plain SGD, cross-entropy, on ``device`` (default
    ``try_gpu()``). Prints ``loss …, train acc …, test acc …`` and ``… examples/sec on DEVICE``
    and, unlike d2l's, returns the :class:`History` and works with any number of batches.
    """
    return train(net, train_iter, test_iter, num_epochs, lr, device, optimizer="sgd", init="xavier")
