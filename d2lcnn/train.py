"""The training loop: ``train()`` with the speed switches, and d2l's ``train_ch6`` on top of it.

One loop, read top to bottom in four phases: :func:`_set_up` (device, lazy layers, initialisation,
precision, layout, optimizer, checkpoint to resume), :func:`_train_epoch`, :func:`_evaluate` and
:func:`_finish`. ``train_ch6``, the d2l 1.0 ``Trainer.fit`` (:mod:`d2lcnn.classes`) and the command
line are ways into it. What makes it fast, each switch explicit:

* data resident on the training device as uint8, batches by index, resize on the device
  (:class:`d2lcnn.data.ImageBatches`);
* no host-device synchronisation per batch: loss and accuracy are summed on the device and read
  a few times per epoch (CUDA) — on the CPU reading them is free, so every batch is checked;
* ``precision='auto'``: bfloat16 autocast on CUDA GPUs of capability 8.0 and newer, float16 with
  loss scaling on capability 7.x (:func:`d2lcnn.device.autocast_dtype`); on a CPU float32, or
  bfloat16 where it has bf16 instructions and timed passes find bf16 faster
  (:mod:`d2lcnn.layout`: it is for ResNet-18 and AlexNet, not for LeNet or BN-LeNet);
* ``channels_last='auto'``: NHWC or NCHW memory format, whichever timed training passes find
  faster (:mod:`d2lcnn.layout`). Measured on a 2-core CPU (``benchmarks/switches.py``): NHWC is
  +10-35 % for AlexNet, VGG, NiN, GoogLeNet, ResNet, DenseNet and +25 % for LeNet, but -30 % for
  BN-LeNet, so no fixed choice is right for every model. A model that calls ``.view()`` on a
  convolution's output cannot run on NHWC activations: ``'auto'`` keeps NCHW and says so;
* fused optimizer steps for Adam, AdamW and SGD with momentum (``benchmarks/optimizer_step.py``:
  4-6x faster steps than foreach for AlexNet's, VGG's and ResNet's parameters on a 2-core CPU);
* ``keep_cpu_memory=True`` (CPU): glibc's malloc keeps freed blocks for the next step instead of
  handing them back to the kernel and faulting in fresh zeroed pages every step
  (``benchmarks/cpu_memory.py`` on a 2-core CPU: LeNet 1.37x, ResNet-18 1.17x, DenseNet 1.56x,
  peak memory +6-35 %; a process-wide setting, see :func:`d2lcnn.device.keep_freed_cpu_memory`);
* several processes: under ``torchrun`` the same call trains with DistributedDataParallel, each
  rank on its share of every global batch, metrics all-reduced, rank 0 alone printing, plotting
  and saving (:mod:`d2lcnn.distributed`; one process is unchanged);
* ``compile=True``: ``torch.compile``, off by default: on a 2-core CPU a first compile of LeNet
  takes about 11 s and the compiled steps were no faster (``benchmarks/compile_cost.py``).

Three options of chapter 13's recipe, each built by hand in that chapter first: ``augment`` (a
function applied to every training batch on the training device), ``ema`` (evaluate an
exponential moving average of the weights, ``torch.optim.swa_utils.AveragedModel``) and ``tta``
(test-time augmentation: average the predictions for each test image and its mirror image).
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from . import distributed as dist_
from .checkpoint import load_checkpoint, save_checkpoint
from .data import ImageBatches
from .device import (
    autocast,
    autocast_candidates,
    describe_device,
    keep_freed_cpu_memory,
    low_memory,
    precision_name,
    resolve_device,
)
from .layout import fastest, probe_batch
from .metrics import correct_count
from .plot import Animator, in_notebook
from .quick import QUICK_EPOCHS, is_quick, quick_banner
from .summary import LayerError, check_forward

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

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class EpochStats:
    """Metrics of one epoch."""

    epoch: int
    train_loss: float
    train_acc: float
    test_acc: float
    seconds: float  #: wall-clock seconds of the training pass, data loading included
    examples_per_sec: float
    test_loss: float = math.nan  #: mean loss on the test (validation) data


@dataclass
class History:
    """What :func:`train` returns: one :class:`EpochStats` per finished epoch."""

    epochs: list[EpochStats] = field(default_factory=list)
    device: str = ""
    interrupted: bool = False  #: True when Ctrl-C stopped training early
    precision: str = ""  #: 'fp32', 'bf16 autocast' or 'fp16 autocast'
    channels_last: bool = False  #: the memory format training used

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


def _to_device(data_iter: Iterable, device: torch.device) -> Iterable:
    return data_iter.to(device) if isinstance(data_iter, ImageBatches) else data_iter


def _num_examples(data_iter: Iterable) -> int | None:
    if isinstance(data_iter, ImageBatches):
        return data_iter.num_examples
    dataset = getattr(data_iter, "dataset", None)
    return len(dataset) if dataset is not None and hasattr(dataset, "__len__") else None


def _evaluate_sums(
    net: nn.Module,
    data_iter: Iterable,
    device: torch.device,
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
    loss_fn: LossFn | None = None,
    tta: bool = False,
) -> tuple[float, float, int]:
    """(correct predictions, summed loss, examples) of ``net`` on ``data_iter``.

    ``tta=True``: the prediction for each image (B, C, H, W) is the mean of the softmax
    probabilities for it and for its mirror image ``X.flip(-1)``; its log is the score (B, classes)
    the loss and the accuracy are computed from."""
    net.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), device=device)
    n = 0
    with torch.no_grad(), autocast(device, dtype):
        for X, y in _to_device(data_iter, device):
            X, y = X.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last and X.ndim == 4:
                X = X.contiguous(memory_format=torch.channels_last)
            y_hat = net(X)
            if tta:
                probs = (y_hat.float().softmax(-1) + net(X.flip(-1)).float().softmax(-1)) / 2
                y_hat = probs.log()
            correct += correct_count(y_hat, y)
            if loss_fn is not None:
                loss_sum += loss_fn(y_hat, y).float() * y.shape[0]
            n += y.numel()
    return correct.item(), loss_sum.item() if loss_fn is not None else math.nan, n


def evaluate_accuracy_gpu(
    net: nn.Module,
    data_iter: Iterable,
    device: torch.device | str | None = None,
    *,
    tta: bool = False,
) -> float:
    """Accuracy of ``net`` on ``data_iter`` (d2l name), computed on ``device``.

    ``device`` defaults to the device of the network's parameters. The network is put in
    evaluation mode. Correct predictions are counted on the device and read once at the end.
    ``tta=True``: each image is classified by the mean prediction for it and its mirror image.
    """
    if device is None:
        p = next(iter(net.parameters()), None)
        device = p.device if p is not None else torch.device("cpu")
    _check_recipe(None, None, tta)
    # this process's share of the data (under torchrun)
    correct, _, n = _evaluate_sums(net, data_iter, torch.device(device), tta=tta)
    return correct / max(n, 1)


def _optimizer(
    name: str | torch.optim.Optimizer,
    params: Iterable,
    lr: float,
    momentum: float,
    weight_decay: float,
    device: torch.device,
    loss_scaling: bool = False,
) -> torch.optim.Optimizer:
    # Fused steps update all parameters in one kernel; benchmarks/optimizer_step.py measures
    # them against foreach on this CPU (Adam 4-5x faster per step, SGD with momentum 1.7x);
    # plain SGD stays foreach (no faster fused). Fused kernels exist for CPU and CUDA tensors.
    # Not fused SGD under float16 loss scaling: in torch 2.14 a step the GradScaler skips still
    # writes the overflowed gradient into fused SGD's momentum buffer (garbage then NaN weights;
    # tests/test_train.py trains fp16 with momentum); fused Adam skips correctly.
    if isinstance(name, torch.optim.Optimizer):
        return name  # the caller's own (d2l 1.0's configure_optimizers)
    fused = device.type in ("cpu", "cuda")
    key = name.lower() if isinstance(name, str) else name
    if key == "sgd":
        use_fused = fused and momentum > 0 and not loss_scaling
        step = {"fused": True} if use_fused else {"foreach": True}
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, **step)
    if key == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)
    if key == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)
    raise ValueError(
        f"optimizer must be 'sgd', 'adam', 'adamw' or a torch.optim.Optimizer, not {name!r}."
    )


def _scheduler(name: str | None, opt: torch.optim.Optimizer, lr: float, total_steps: int):
    if name is None:
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total_steps, 1))
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(total_steps, 1))
    raise ValueError(f"schedule must be None, 'cosine' or 'onecycle', not {name!r}.")


def _grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler | None:
    """Loss scaling for float16 (its 5-bit exponent underflows small gradients); bf16 needs none."""
    return torch.amp.GradScaler(device.type) if dtype == torch.float16 else None


_CURVES = {"train loss": "train_loss", "train acc": "train_acc", "test loss": "test_loss",
           "test acc": "test_acc", "val loss": "test_loss", "val acc": "test_acc"}  # fmt: skip


def _check_positive(name: str, value: object, kind: type = int) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    if kind is int and ok and value != int(value):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a positive {'integer' if kind is int else 'number'}, "
                         f"not {value!r}.")  # fmt: skip


def _check_recipe(augment: object, ema: object, tta: object) -> None:
    if augment is not None and not callable(augment):
        raise ValueError(f"augment must be a function of a batch (B, C, H, W) or None, not "
                         f"{augment!r}.")  # fmt: skip
    if ema is not None and not (isinstance(ema, float) and 0 < ema < 1):
        raise ValueError(f"ema must be a decay between 0 and 1 (e.g. ema=0.999) or None, not "
                         f"{ema!r}.")  # fmt: skip
    if not isinstance(tta, bool):
        raise ValueError(f"tta must be True or False, not {tta!r}.")


@dataclass
class _Run:
    """Everything the phases of one :func:`train` call share."""

    net: nn.Module
    model: Callable  #: ``net``, wrapped in DDP under torchrun, compiled with ``compile=True``
    train_iter: Iterable
    test_iter: Iterable
    device: torch.device
    dtype: torch.dtype | None
    nhwc: bool
    opt: torch.optim.Optimizer
    sched: object
    scaler: torch.amp.GradScaler | None
    loss_fn: LossFn
    grad_clip: float | None
    lr: float
    num_epochs: int
    num_batches: int
    history: History
    start_epoch: int
    checkpoint: Path | None
    animator: Animator | None
    curves: tuple[str, ...]
    verbose: bool
    world: dist_.World = dist_.World()
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None
    ema: AveragedModel | None = None  #: the averaged copy of ``net`` that ``ema=`` evaluates
    tta: bool = False
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    position: tuple[int, int] = (0, 0)  #: (epoch, batch) being trained, for the Ctrl-C message


def train(
    net: nn.Module,
    train_iter: Iterable,
    test_iter: Iterable,
    num_epochs: int,
    lr: float,
    device: torch.device | str | None = None,
    *,
    optimizer: str | torch.optim.Optimizer = "sgd",
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    label_smoothing: float = 0.0,
    loss: LossFn | None = None,
    grad_clip: float | None = None,
    schedule: str | None = None,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ema: float | None = None,
    tta: bool = False,
    precision: str = "auto",
    channels_last: bool | str = "auto",
    compile: bool = False,
    keep_cpu_memory: bool | str = "auto",
    init: str | Callable[[nn.Module], None] | None = "xavier",
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    seed: int | None = None,
    plot: bool | str = "auto",
    curves: Sequence[str] = ("train loss", "train acc", "test acc"),
    verbose: bool = True,
) -> History:
    """Train ``net`` for classification; return a :class:`History`.

    Batches X: (B, C, H, W) float, y: (B,) int64; ``test_iter`` may be ``None`` (test metrics
    NaN). ``device`` defaults to ``try_gpu()``.
    ``init='xavier'`` re-initialises Linear/Conv2d weights as d2l does (a function is applied to
    every module instead; ``None`` keeps them). Lazy layers (``nn.LazyConv2d``, ``nn.LazyLinear``)
    take their shapes from one forward pass on a training batch first; a layer that does not fit
    its input raises :class:`d2lcnn.LayerError` naming it. ``loss`` (default: cross-entropy with
    ``label_smoothing``) maps (scores (B, C), labels (B,)) to a mean loss. ``optimizer`` is
    'sgd', 'adam', 'adamw' or a ready ``torch.optim.Optimizer``; ``grad_clip`` clips the
    gradients' global norm. ``augment`` maps each training batch X (B, C, H, W), on the training
    device, to an augmented batch of the same shape (evaluation sees the images as they are).
    ``ema=decay`` (0 < decay < 1) keeps an exponential moving average of the weights and buffers,
    updated after every step (``w_ema <- decay * w_ema + (1 - decay) * w``); the test metrics are
    the averaged network's, and at the end ``net`` holds the averaged weights (the checkpoint
    keeps both: ``'model'`` the trained ones, to resume, and ``'ema'``); a decay whose reach
    ``1 / (1 - decay)`` exceeds a tenth of the run's steps is warned about. ``tta=True`` evaluates
    each test image as the mean prediction for it and its mirror image. ``checkpoint`` saves model,
    optimizer and history after every epoch (atomically); ``resume=True`` continues from it.
    Ctrl-C stops cleanly, keeping the weights and the history so far (``history.interrupted``). A
    loss that becomes NaN or inf raises ``FloatingPointError`` naming the epoch and batch. In quick
    mode (``D2LCNN_QUICK=1``) epochs are capped. ``plot='auto'`` draws a live figure of ``curves``
    in Jupyter and shows a progress bar elsewhere. ``keep_cpu_memory`` (on a CPU): see
    :func:`d2lcnn.device.keep_freed_cpu_memory`; ``'auto'`` keeps it unless the process has less
    than 4 GB (:func:`d2lcnn.device.low_memory`).
    Under ``torchrun --nproc_per_node=N`` (``--nnodes=M`` too) it joins the process group (NCCL
    on GPUs, gloo on CPUs), trains in DistributedDataParallel on ``cuda:LOCAL_RANK`` or the CPU,
    and the batch size of the data is the global batch (``B / N`` per rank; it must divide).
    """
    run = _set_up(**locals())  # every argument, by name
    try:
        for epoch in range(run.start_epoch, run.num_epochs):
            loss, acc, seconds, seen = _train_epoch(run, epoch)
            tic = time.perf_counter()
            test_acc, test_loss = math.nan, math.nan  # no test data: d2l 1.0 allows it
            if run.test_iter is not None:
                test_acc, test_loss = _evaluate(run)
            run.eval_seconds += time.perf_counter() - tic
            _end_epoch(run, EpochStats(epoch + 1, loss, acc, test_acc, seconds, seen / seconds,
                                       test_loss))  # fmt: skip
    except KeyboardInterrupt:
        run.history.interrupted = True
        epoch, batch = run.position
        if run.verbose:
            print(f"Interrupted in epoch {epoch + 1}, batch {batch + 1}: the model keeps its "
                  f"weights, the history keeps {len(run.history)} finished epoch(s).",
                  file=sys.stderr)  # fmt: skip
        _save(run)
    if run.ema is not None:  # what was evaluated is what the learner keeps
        run.net.load_state_dict(run.ema.module.state_dict())
    _finish(run)
    return run.history


def _set_up(
    net, train_iter, test_iter, num_epochs, lr, device, *, optimizer, momentum, weight_decay,
    label_smoothing, loss, grad_clip, schedule, augment, ema, tta, precision, channels_last,
    compile, keep_cpu_memory, init, checkpoint, resume, seed, plot, curves, verbose,
) -> _Run:  # fmt: skip
    """Phase 1: check the arguments, place model and data, materialise lazy layers, initialise,
    choose precision and layout, build optimizer and schedule, resume, announce."""
    _check_positive("num_epochs", num_epochs)
    _check_positive("lr", lr, float)
    _check_recipe(augment, ema, tta)
    unknown = [c for c in curves if c not in _CURVES]
    if unknown:
        raise ValueError(f"curves must be chosen from {sorted(_CURVES)}, not {unknown}.")
    world = dist_.init_distributed(device=device)  # one process: World(), nothing to join
    device = dist_.local_device(resolve_device(device), world)
    if world.rank != 0:  # rank 0 alone prints, plots and writes the checkpoint
        verbose, plot = False, False
    if keep_cpu_memory == "auto":
        keep_cpu_memory = not low_memory()  # Binder's 2 GB: peaks must go back to the system
    if keep_cpu_memory and device.type == "cpu":
        keep_freed_cpu_memory()
    if is_quick() and num_epochs > QUICK_EPOCHS:
        quick_banner(f"training {QUICK_EPOCHS} epoch(s) instead of {num_epochs}")
        num_epochs = QUICK_EPOCHS
    if seed is not None:
        torch.manual_seed(seed)
    dtypes = autocast_candidates(device, precision)
    net.to(device)
    train_iter, test_iter = _to_device(train_iter, device), _to_device(test_iter, device)
    _materialize(net, train_iter, device)
    if init == "xavier":
        net.apply(init_xavier)
    elif callable(init):
        net.apply(init)
    elif init is not None:
        raise ValueError(f"init must be 'xavier', a function or None, not {init!r}.")
    layouts = (True, False) if channels_last == "auto" else (bool(channels_last),)
    if world.rank == 0:  # timed passes on rank 0; every rank trains with its choice
        nhwc, dtype = fastest(net, train_iter, device, layouts, dtypes)  # one candidate: no timing
    nhwc, dtype = dist_.broadcast((nhwc, dtype) if world.rank == 0 else None)
    net.to(memory_format=torch.channels_last if nhwc else torch.contiguous_format)
    data, split = _describe_data(train_iter, test_iter), dist_.describe_split(train_iter, world)
    dist_.same_order(train_iter)  # every rank walks the same global batches ...
    train_iter = dist_.shard(train_iter, train=True)  # ... and takes its part of each
    test_iter = dist_.shard(test_iter, train=False)
    num_batches = len(train_iter)
    scaler = _grad_scaler(device, dtype)
    opt = _optimizer(optimizer, net.parameters(), lr, momentum, weight_decay, device,
                     loss_scaling=scaler is not None)  # fmt: skip
    sched = _scheduler(schedule, opt, lr, num_epochs * num_batches)
    history = History(device=str(device), precision=precision_name(dtype), channels_last=nhwc)
    run = _Run(
        net=net, model=torch.compile(net) if compile else net, train_iter=train_iter,
        test_iter=test_iter, device=device, dtype=dtype, nhwc=nhwc, opt=opt, sched=sched,
        scaler=scaler,
        loss_fn=loss or nn.CrossEntropyLoss(label_smoothing=label_smoothing),
        grad_clip=grad_clip, lr=lr, num_epochs=num_epochs, num_batches=num_batches,
        history=history, start_epoch=0, checkpoint=None if checkpoint is None else Path(checkpoint),
        animator=None, curves=tuple(curves), verbose=verbose, world=world, augment=augment,
        tta=tta,
    )  # fmt: skip
    state = _resume(run) if resume else {}
    if ema is not None:  # after resuming: the average starts from the weights training starts from
        run.ema = _weight_average(run, ema, state)
    if world.active:  # after resuming: DDP starts every rank from rank 0's weights
        run.model = dist_.wrap(net, device)
        if compile:
            run.model = torch.compile(run.model)
    if in_notebook() if plot == "auto" else bool(plot):
        run.animator = Animator(xlabel="epoch", xlim=[0, max(num_epochs, 1)], legend=list(curves))
        for e in history.epochs:
            run.animator.add(e.epoch, [getattr(e, _CURVES[c]) for c in curves])
    if verbose:
        print(f"training on {describe_device(device)}, {precision_name(dtype)}"
              f"{', quick mode' if is_quick() else ''}: {data}, "
              f"{num_epochs} epochs{split}")  # fmt: skip
    return run


def _resume(run: _Run) -> dict:
    """Load the checkpoint into the network, optimizer, schedule, loss scaler and history;
    return it ({} when there is none to resume from)."""
    if run.checkpoint is None or not dist_.found_everywhere(run.checkpoint, run.device):
        return {}
    state = load_checkpoint(run.checkpoint, run.net, map_location=run.device)
    run.opt.load_state_dict(state["optimizer"])
    if run.sched is not None and "scheduler" in state:
        run.sched.load_state_dict(state["scheduler"])
    if run.scaler is not None and "scaler" in state:
        run.scaler.load_state_dict(state["scaler"])
    run.history.epochs = [EpochStats(**e) for e in state["history"]]
    run.start_epoch = int(state["epoch"])
    return state


def _weight_average(run: _Run, decay: float, state: dict) -> AveragedModel:
    """The exponential moving average of ``run.net`` (weights and buffers), continued from the
    checkpoint's when resuming."""
    average = AveragedModel(run.net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    steps, reach = run.num_epochs * run.num_batches, 1 / (1 - decay)
    # chapter 13, Section 13.8: ema=0.999 over 2,820 one-cycle steps tested 0.64 instead of 0.93
    if reach > steps / 10 + 1e-6:
        advice = (
            f"Choose a decay with 1 / (1 - decay) <= {steps / 10:,.0f}, e.g. "
            f"ema={_suggest_decay(steps)}."
            if steps >= 100
            else "A run of fewer than 100 steps is too short to gain from an average: ema=None."
        )
        warnings.warn(
            f"ema={decay} averages over about {reach:,.0f} steps, more than a tenth of this run's "
            f"{steps:,}: the average mixes in weights from early in training, and batch norm's "
            f"averaged statistics may not fit them (chapter 13, Section 13.8). {advice}",
            stacklevel=4,
        )
    if "ema" in state:
        average.module.load_state_dict(state["ema"])
        average.n_averaged.fill_(int(state["ema_updates"]))
    elif state and run.verbose:
        print("the checkpoint has no weight average (it was trained without ema): the average "
              "starts from its weights")  # fmt: skip
    return average


def _suggest_decay(steps: int) -> float:
    """The largest of 0.9, 0.99, 0.999, ... whose reach 1 / (1 - decay) is at most a tenth of
    ``steps`` (``steps`` >= 100)."""
    k = max(1, math.floor(math.log10(steps / 10)))
    return round(1 - 10.0**-k, k)


def _materialize(net: nn.Module, train_iter: Iterable, device: torch.device) -> None:
    """One forward pass on two training images: lazy layers take their shapes, and a layer that
    does not fit its input is named (diagnosed again on a whole batch, so the message shows the
    learner's batch size)."""
    X, _ = probe_batch(train_iter, device, 2)
    try:
        check_forward(net, X)
    except LayerError:
        check_forward(net, probe_batch(train_iter, device)[0])
        raise


def _describe_data(train_iter: Iterable, test_iter: Iterable) -> str:
    n_train, n_test = _num_examples(train_iter), _num_examples(test_iter)
    data = f"{n_train:,} train / {n_test:,} test images" if n_train and n_test else "custom data"
    if isinstance(train_iter, ImageBatches):
        h, w = train_iter.resize or train_iter.images.shape[-2:]
        data += f" of {train_iter.images.shape[1]}x{h}x{w}"
    return data


def _train_epoch(run: _Run, epoch: int) -> tuple[float, float, float, int]:
    """Phase 2: one pass over the training data; returns (mean loss, accuracy, seconds, examples).

    Loss and correct predictions are summed on the device; the NaN/inf check and the plot read
    them every batch on a CPU and five times an epoch on a GPU (reading a CUDA scalar syncs).
    """
    run.net.train()
    device, num_batches = run.device, run.num_batches
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    bad_batch = torch.full((), -1, dtype=torch.int64, device=device)
    update_every = max(num_batches // 5, 1)
    # a CPU reads the NaN flag every batch for free; a GPU (a sync) and several ranks (a
    # collective: all must stop at the same batch) five times an epoch
    check_every = 1 if device.type == "cpu" and not run.world.active else update_every
    dist_.set_epoch(run.train_iter, epoch)
    bar = None
    if run.animator is None and run.verbose:
        bar = tqdm(total=num_batches, desc=f"epoch {epoch + 1}/{run.num_epochs}", leave=False,
                   file=sys.stderr, dynamic_ncols=True)  # fmt: skip
    seen = 0
    tic = time.perf_counter()
    for batch, (X, y) in enumerate(run.train_iter):
        run.position = (epoch, batch)
        X, y = X.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if run.augment is not None:
            X = _augmented(run.augment, X)
        if run.nhwc and X.ndim == 4:
            X = X.contiguous(memory_format=torch.channels_last)
        loss, y_hat = _step(run, X, y)
        with torch.no_grad():
            loss_sum += loss * y.shape[0]
            correct += correct_count(y_hat, y)
            bad_batch = torch.where((bad_batch < 0) & ~torch.isfinite(loss), batch, bad_batch)
        seen += y.shape[0]
        last = batch == num_batches - 1
        if (batch + 1) % check_every == 0 or last:
            bad = dist_.first_flagged(int(bad_batch), device)  # -1: no rank saw NaN or inf
            if bad >= 0:
                raise _nonfinite(loss_sum, epoch, bad, num_batches, run.lr, run.history)
        if (batch + 1) % update_every == 0 or last:
            train_loss, train_acc = loss_sum.item() / seen, correct.item() / seen
            if run.animator is not None:
                point = {"train_loss": train_loss, "train_acc": train_acc}
                run.animator.add(epoch + (batch + 1) / num_batches,
                                 [point.get(_CURVES[c]) for c in run.curves])  # fmt: skip
            if bar is not None:
                bar.set_postfix(loss=f"{train_loss:.3f}", acc=f"{train_acc:.3f}", refresh=False)
        if bar is not None:
            bar.update(1)
    seconds = time.perf_counter() - tic
    run.train_seconds += seconds
    if bar is not None:
        bar.close()
    loss_total, n_correct, seen = dist_.all_sum([loss_sum.item(), correct.item(), seen], device)
    return loss_total / seen, n_correct / seen, seconds, int(seen)


def _step(run: _Run, X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step; returns the detached float32 loss and the scores."""
    with autocast(run.device, run.dtype):
        y_hat = run.model(X)
        loss = run.loss_fn(y_hat, y)
    run.opt.zero_grad(set_to_none=True)
    if run.scaler is None:
        loss.backward()
        if run.grad_clip:
            nn.utils.clip_grad_norm_(run.net.parameters(), run.grad_clip)
        run.opt.step()
    else:  # float16: scale the loss; a step whose gradients overflow is skipped, not a divergence
        run.scaler.scale(loss).backward()
        if run.grad_clip:
            run.scaler.unscale_(run.opt)
            nn.utils.clip_grad_norm_(run.net.parameters(), run.grad_clip)
        run.scaler.step(run.opt)
        run.scaler.update()
    if run.sched is not None:
        run.sched.step()
    if run.ema is not None:
        run.ema.update_parameters(run.net)
    return loss.detach().float(), y_hat.detach()


def _augmented(augment: Callable[[torch.Tensor], torch.Tensor], X: torch.Tensor) -> torch.Tensor:
    """``augment(X)`` without gradients, checked to be a batch of X's shape, dtype and device."""
    with torch.no_grad():
        out = augment(X)
    if not (isinstance(out, torch.Tensor) and out.shape == X.shape and out.dtype == X.dtype
            and out.device == X.device):  # fmt: skip
        got = (f"a tensor of shape {tuple(out.shape)}, {out.dtype} on {out.device}"
               if isinstance(out, torch.Tensor) else f"a {type(out).__name__}")  # fmt: skip
        raise ValueError(
            f"augment must return a batch like its input ({tuple(X.shape)}, {X.dtype} on "
            f"{X.device}), but returned {got}. Crop back to the input size (pad, then crop), "
            "and keep the dtype and device."
        )
    return out


def _evaluate(run: _Run) -> tuple[float, float]:
    """Phase 3: test accuracy and mean test loss (of all ranks' shares together under torchrun;
    each rank evaluates the plain module: DDP's forward would need as many calls on every rank)."""
    net = run.net if run.world.active else run.model
    if run.ema is not None:
        net = run.ema.module
    correct, loss_sum, n = dist_.all_sum(
        _evaluate_sums(net, run.test_iter, run.device, run.dtype, run.nhwc, run.loss_fn, run.tta),
        run.device)  # fmt: skip
    return correct / max(n, 1), loss_sum / max(n, 1)


def _end_epoch(run: _Run, stats: EpochStats) -> None:
    """Phase 3's bookkeeping: record the epoch, plot and print it, save the checkpoint."""
    run.history.epochs.append(stats)
    if run.animator is not None:
        run.animator.add(stats.epoch, [getattr(stats, _CURVES[c]) if c.split()[0] != "train"
                                       else None for c in run.curves])  # fmt: skip
    elif run.verbose:
        tqdm.write(f"epoch {stats.epoch}: loss {stats.train_loss:.3f}, train acc "
                   f"{stats.train_acc:.3f}, test acc {stats.test_acc:.3f}, "
                   f"{stats.examples_per_sec:.0f} examples/sec")  # fmt: skip
    _save(run)


def _save(run: _Run) -> None:
    if run.checkpoint is None or run.world.rank != 0:  # one writer: rank 0
        return
    extra = {"optimizer": run.opt.state_dict(), "epoch": len(run.history.epochs),
             "history": [asdict(e) for e in run.history.epochs]}  # fmt: skip
    if run.sched is not None:
        extra["scheduler"] = run.sched.state_dict()
    if run.scaler is not None:
        extra["scaler"] = run.scaler.state_dict()
    if run.ema is not None:
        extra["ema"] = run.ema.module.state_dict()
        extra["ema_updates"] = int(run.ema.n_averaged)
    save_checkpoint(run.checkpoint, run.net, **extra)


def _finish(run: _Run) -> None:
    """Phase 4: the closing lines d2l prints (loss and accuracies, examples/sec), and the time."""
    done = run.history.epochs[run.start_epoch :]
    if not (run.verbose and done):
        return
    f = done[-1]
    speed = sum(e.seconds * e.examples_per_sec for e in done) / max(
        sum(e.seconds for e in done), 1e-9
    )
    print(f"loss {f.train_loss:.3f}, train acc {f.train_acc:.3f}, test acc {f.test_acc:.3f}")
    print(f"{speed:.1f} examples/sec on {run.device}")
    print(f"{len(done)} epochs in {run.train_seconds / 60:.1f} min of training "
          f"(+{run.eval_seconds / 60:.1f} min evaluating)")  # fmt: skip


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
    and, unlike d2l's, returns the :class:`History`, works with any number of batches and with
    lazy layers (``nn.LazyConv2d``, ``nn.LazyLinear``).
    """
    return train(net, train_iter, test_iter, num_epochs, lr, device, optimizer="sgd", init="xavier")
