"""The training loop: ``train()`` with the speed switches, and d2l's ``train_ch6`` on top of it.

One loop, read top to bottom in phases: :func:`_validate` (every argument, before anything with a
process-wide effect), :func:`_set_up` (device, lazy layers, initialisation, precision and layout,
optimizer, checkpoint to resume), :func:`_train_epoch`, :func:`_evaluate` and :func:`_finish`.
``train_ch6``, the d2l 1.0 ``Trainer.fit`` (:mod:`d2lcnn.classes`), the command line, torchrun and
the benchmarks (``benchmarks/``, through ``max_steps``) are ways into it. What makes it fast, each
switch explicit and measured in ``benchmarks/`` (figures, with the CPU, torch version and commit
they came from, in ``benchmarks/results/``, not here):

* data resident on the training device as uint8, batches by index, resize on the device
  (:class:`d2lcnn.data.ImageBatches`);
* no host-device synchronisation per batch: loss and accuracy are summed on the device and read
  a few times per epoch (CUDA) -- on the CPU reading them is free, so every batch is checked;
* ``precision='auto'``: bfloat16 autocast on CUDA GPUs of capability 8.0 and newer, float16 with
  loss scaling on capability 7.x (:mod:`d2lcnn.precision`); on a CPU float32, or bfloat16 where
  it has bf16 instructions and timed passes find bf16 faster (``switches.py``);
* ``channels_last='auto'``: NHWC or NCHW memory format, whichever timed training passes find
  faster: no fixed choice is right for every model (``switches.py``). Both choices are timed
  once per machine, model, input and batch size and remembered (:mod:`d2lcnn.autotune`), so a
  rerun trains in the same precision and layout, bit for bit the same run;
* fused optimizer steps for Adam, AdamW and SGD with momentum (``optimizer_step.py``);
* ``keep_cpu_memory=True`` (CPU): glibc's malloc keeps freed blocks for the next step
  (``cpu_memory.py``; a process-wide setting, :func:`d2lcnn.memory.keep_freed_cpu_memory`);
* several processes: under ``torchrun`` the same call trains with DistributedDataParallel, each
  rank on its share of every global batch, metrics all-reduced, rank 0 alone printing, plotting
  and saving (:mod:`d2lcnn.distributed`; one process is unchanged);
* ``compile=True``: ``torch.compile``, off by default (``compile_cost.py``: a first compile costs
  seconds that a course-sized run does not win back on a CPU).

Three options of chapter 13's recipe, each built by hand in that chapter first: ``augment`` (a
function applied to every training batch on the training device), ``ema`` (evaluate an
exponential moving average of the weights, ``torch.optim.swa_utils.AveragedModel``) and ``tta``
(test-time augmentation: average the predictions for each test image and its mirror image).

A checkpoint holds everything the rest of the run depends on (weights, optimizer, schedule, loss
scaler, average, history, every random state, the data order and the position in the epoch), so
a run resumed in a new process continues exactly as the run that was never stopped. Ctrl-C
finishes the step in progress (a second Ctrl-C stops at once) and saves that point."""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from . import distributed as dist_
from .autotune import Decision, choose, place, probe_batch
from .checkpoint import load_checkpoint, random_state, save_checkpoint, set_random_state
from .data import ImageBatches
from .device import describe_device, resolve_device
from .memory import keep_freed_cpu_memory, low_memory, memory_limit
from .metrics import correct_count
from .plot import Animator, in_notebook
from .precision import autocast, autocast_candidates, autocast_dtype, precision_name
from .settings import QUICK_EPOCHS, is_quick, quick_banner
from .summary import LayerError, check_forward

__all__ = [
    "DeviceMemoryError",
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
    #: seconds of the phases of the call (``'set-up'``, of it ``'dry run'``, ``'decision'`` and
    #: ``'optimizer'``;
    #: ``'first step'``, ``'training'``, ``'evaluation'``): benchmarks/startup.py tabulates them
    phases: dict[str, float] = field(default_factory=dict)

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
    the loss and the accuracy are computed from. ``net`` may also be a plain function of a batch
    (d2l's multi-GPU section evaluates a closure over its parameters)."""
    if isinstance(net, nn.Module):
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
        p = next(iter(net.parameters()), None) if isinstance(net, nn.Module) else None
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
    # them against foreach (results/cpu-optimizer-step.md); plain SGD stays foreach (no faster
    # fused). Fused kernels exist for CPU and CUDA tensors.
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


@dataclass(frozen=True)
class _Config:
    """What one :func:`train` call fixed before its first step (validated, never changed)."""

    device: torch.device
    dtype: torch.dtype | None
    nhwc: bool
    loss_fn: LossFn
    grad_clip: float | None
    lr: float
    num_epochs: int
    num_batches: int
    checkpoint: Path | None
    curves: tuple[str, ...]
    verbose: bool
    world: dist_.World
    augment: Callable[[torch.Tensor], torch.Tensor] | None
    tta: bool
    max_steps: int | None


@dataclass
class _Position:
    """Where an epoch is: what a checkpoint written in the middle of it must keep to go on."""

    epoch: int = 0
    batches: int = 0  #: batches of ``epoch`` trained so far
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0
    epoch_random: dict | None = None  #: the random states as the epoch began (its data order)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Run:
    """The changing state of one :func:`train` call; ``cfg`` holds what stays fixed."""

    cfg: _Config
    net: nn.Module
    model: Callable  #: ``net``, wrapped in DDP under torchrun, compiled with ``compile=True``
    train_iter: Iterable
    test_iter: Iterable
    opt: torch.optim.Optimizer
    sched: object
    scaler: torch.amp.GradScaler | None
    history: History
    start_epoch: int = 0
    animator: Animator | None = None
    ema: AveragedModel | None = None  #: the averaged copy of ``net`` that ``ema=`` evaluates
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    steps: int = 0  #: optimisation steps taken by this call
    position: _Position = field(default_factory=_Position)  #: the epoch in progress
    resume_at: _Position | None = None  #: a checkpoint's unfinished epoch, to continue
    sums: tuple[torch.Tensor, torch.Tensor] | None = None  #: the epoch's loss and correct sums
    phase: str = "set-up"  #: for the out-of-memory message


class DeviceMemoryError(RuntimeError):
    """The device ran out of memory; the message says in which phase, at which batch and input
    size, and which batch size to try. ``.history`` holds the epochs finished before it."""

    history: History


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
    remeasure: bool = False,
    compile: bool = False,
    keep_cpu_memory: bool | str = "auto",
    init: str | Callable[[nn.Module], None] | None = "xavier",
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    seed: int | None = None,
    max_steps: int | None = None,
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
    args = dict(locals())  # every argument, by name
    _validate(**args)  # every argument, before anything with a process-wide effect
    tic = time.perf_counter()
    run = _set_up(**args)
    run.history.phases["set-up"] = time.perf_counter() - tic
    interrupts = _Interrupts()
    try:
        with _step_boundaries(interrupts):
            for epoch in range(run.start_epoch, run.cfg.num_epochs):
                loss, acc, seconds, seen = _train_epoch(run, epoch, interrupts)
                run.phase = "evaluation"
                tic = time.perf_counter()
                test_acc, test_loss = math.nan, math.nan  # no test data: d2l 1.0 allows it
                if run.test_iter is not None:
                    test_acc, test_loss = _evaluate(run)
                run.eval_seconds += time.perf_counter() - tic
                _end_epoch(run, EpochStats(epoch + 1, loss, acc, test_acc, seconds, seen / seconds,
                                           test_loss))  # fmt: skip
                if run.cfg.max_steps is not None and run.steps >= run.cfg.max_steps:
                    break
    except KeyboardInterrupt:
        run.history.interrupted = True
        pos = run.position
        torn = interrupts.torn  # a second Ctrl-C inside a step: keep the last epoch's checkpoint
        kept = ("; the checkpoint resumes at the last finished epoch" if torn
                else "; the checkpoint resumes at this step")  # fmt: skip
        if run.cfg.verbose:
            print(f"Interrupted in epoch {pos.epoch + 1} after {pos.batches} of "
                  f"{run.cfg.num_batches} batches: the model keeps its weights, the history "
                  f"{len(run.history)} finished epoch(s){kept if run.cfg.checkpoint else ''}.",
                  file=sys.stderr)  # fmt: skip
        if not torn:
            _save(run, mid_epoch=True)
    except _OUT_OF_MEMORY as err:
        raise _out_of_memory(run, err) from None
    if run.ema is not None:  # what was evaluated is what the learner keeps
        run.net.load_state_dict(run.ema.module.state_dict())
    run.history.phases.update(training=run.train_seconds, evaluation=run.eval_seconds)
    _finish(run)
    return run.history


_OUT_OF_MEMORY = (torch.OutOfMemoryError,)  #: CUDA's and mps's "out of memory"


class _Interrupts:
    """Ctrl-C (SIGINT) while a batch is being trained is held until its step is done, so the
    weights, optimizer, sums and random states are never left half-updated: the loop then stops
    at that step boundary (:meth:`check`). Elsewhere (data loading, evaluation), and at a second
    Ctrl-C, it interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self.holding = False
        self.torn = False  #: a second Ctrl-C stopped a step half-way: its state is not kept

    def __call__(self, signum: int, frame: object) -> None:
        if self.holding and not self.requested:
            self.requested = True
            return
        self.torn = self.holding
        raise KeyboardInterrupt

    def check(self) -> None:
        self.holding = False
        if self.requested:
            raise KeyboardInterrupt


@contextmanager
def _step_boundaries(interrupts: _Interrupts) -> Iterator[None]:
    """``interrupts`` installed as the SIGINT handler for the loop (in the main thread only, where
    Python handles signals; elsewhere Ctrl-C is left as it is)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, interrupts)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _validate(
    net, train_iter, test_iter, num_epochs, lr, device, *, optimizer, momentum, weight_decay,
    label_smoothing, loss, grad_clip, schedule, augment, ema, tta, precision, channels_last,
    remeasure, compile, keep_cpu_memory, init, checkpoint, resume, seed, max_steps, plot, curves,
    verbose,
) -> None:  # fmt: skip
    """Phase 0: every argument checked, with a message that says how to fix it, before anything
    with an effect beyond this call (joining a process group, the allocator, seeding)."""
    if not isinstance(net, nn.Module):
        raise ValueError(f"net must be a torch.nn.Module, not {type(net).__name__}.")
    _check_positive("num_epochs", num_epochs)
    _check_positive("lr", lr, float)
    _check_recipe(augment, ema, tta)
    unknown = [c for c in curves if c not in _CURVES]
    if unknown:
        raise ValueError(f"curves must be chosen from {sorted(_CURVES)}, not {unknown}.")
    if not (isinstance(optimizer, torch.optim.Optimizer)
            or (isinstance(optimizer, str) and optimizer.lower() in ("sgd", "adam", "adamw"))):  # fmt: skip
        raise ValueError(f"optimizer must be 'sgd', 'adam', 'adamw' or a torch.optim.Optimizer, "
                         f"not {optimizer!r}.")  # fmt: skip
    if schedule not in (None, "cosine", "onecycle"):
        raise ValueError(f"schedule must be None, 'cosine' or 'onecycle', not {schedule!r}.")
    if not (init in (None, "xavier") or callable(init)):
        raise ValueError(f"init must be 'xavier', a function or None, not {init!r}.")
    if channels_last not in (True, False, "auto"):
        raise ValueError(f"channels_last must be True, False or 'auto', not {channels_last!r}.")
    if keep_cpu_memory not in (True, False, "auto"):
        raise ValueError(f"keep_cpu_memory must be True, False or 'auto', not "
                         f"{keep_cpu_memory!r}.")  # fmt: skip
    if plot not in (True, False, "auto"):
        raise ValueError(f"plot must be True, False or 'auto', not {plot!r}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed must be an integer or None, not {seed!r}.")
    if max_steps is not None:
        _check_positive("max_steps", max_steps)
    if resume and checkpoint is None:
        raise ValueError("resume=True needs the checkpoint to resume from: pass "
                         "checkpoint='path/to/file.pt' too.")  # fmt: skip
    autocast_dtype(torch.device("cpu"), precision)  # the name (the device is checked next)
    if not dist_.launched():  # under torchrun the device is this rank's, chosen at set-up
        resolve_device(device)


def _set_up(
    net, train_iter, test_iter, num_epochs, lr, device, *, optimizer, momentum, weight_decay,
    label_smoothing, loss, grad_clip, schedule, augment, ema, tta, precision, channels_last,
    remeasure, compile, keep_cpu_memory, init, checkpoint, resume, seed, max_steps, plot, curves,
    verbose,
) -> _Run:  # fmt: skip
    """Phase 1: place model and data, materialise lazy layers, initialise, choose precision and
    layout, build optimizer and schedule, resume, announce."""
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
    net.to(device)
    train_iter, test_iter = _to_device(train_iter, device), _to_device(test_iter, device)
    phases = {}
    try:
        tic = time.perf_counter()
        _materialize(net, train_iter, device)
        if init == "xavier":
            net.apply(init_xavier)
        elif callable(init):
            net.apply(init)
        phases["dry run"] = time.perf_counter() - tic
        decision = _decide(net, train_iter, device, precision, channels_last, remeasure, world)
        phases["decision"] = time.perf_counter() - tic - phases["dry run"]
    except _OUT_OF_MEMORY as err:
        raise _memory_error("the dry run (one forward pass, then timed training passes)", device,
                            train_iter, err) from None  # fmt: skip
    data, split = _describe_data(train_iter, test_iter), dist_.describe_split(train_iter, world)
    dist_.same_order(train_iter)  # every rank walks the same global batches ...
    train_iter = dist_.shard(train_iter, train=True)  # ... and takes its part of each
    test_iter = dist_.shard(test_iter, train=False)
    num_batches = len(train_iter)
    scaler = _grad_scaler(device, decision.dtype)
    tic = time.perf_counter()  # a process's first torch.optim optimizer imports torch._dynamo
    opt = _optimizer(optimizer, net.parameters(), lr, momentum, weight_decay, device,
                     loss_scaling=scaler is not None)  # fmt: skip
    phases["optimizer"] = time.perf_counter() - tic
    cfg = _Config(
        device=device, dtype=decision.dtype, nhwc=decision.nhwc,
        loss_fn=loss or nn.CrossEntropyLoss(label_smoothing=label_smoothing),
        grad_clip=grad_clip, lr=lr, num_epochs=num_epochs, num_batches=num_batches,
        checkpoint=None if checkpoint is None else Path(checkpoint), curves=tuple(curves),
        verbose=verbose, world=world, augment=augment, tta=tta, max_steps=max_steps,
    )  # fmt: skip
    history = History(device=str(device), precision=precision_name(decision.dtype),
                      channels_last=decision.nhwc, phases=phases)  # fmt: skip
    run = _Run(cfg=cfg, net=net, model=torch.compile(net) if compile else net,
               train_iter=train_iter, test_iter=test_iter, opt=opt,
               sched=_scheduler(schedule, opt, lr, num_epochs * num_batches), scaler=scaler,
               history=history)  # fmt: skip
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
        how = decision.describe()
        print(f"training on {describe_device(device)}, {precision_name(decision.dtype)}"
              f"{', quick mode' if is_quick() else ''}: {data}, "
              f"{num_epochs} epochs{split}{'; ' + how if how else ''}")  # fmt: skip
    return run


def _decide(net: nn.Module, train_iter: Iterable, device: torch.device, precision: str,
            channels_last: bool | str, remeasure: bool, world: dist_.World) -> Decision:  # fmt: skip
    """Precision and layout: fixed by the arguments, or (``'auto'``) timed on rank 0 once and
    remembered (:func:`d2lcnn.autotune.choose`); every rank trains with rank 0's decision."""
    layouts = (True, False) if channels_last == "auto" else (bool(channels_last),)
    dtypes = autocast_candidates(device, precision)
    decision = None
    if world.rank == 0:
        decision = choose(net, train_iter, device, layouts, dtypes, remeasure=remeasure)
    decision = dist_.broadcast(decision)
    place(net, decision.nhwc)  # (rank 0's net is there already; the other ranks' now)
    return decision


def _resume(run: _Run) -> dict:
    """Load the checkpoint into the network, optimizer, schedule, loss scaler, history, random
    states and data order; return it ({} when there is none to resume from)."""
    cfg = run.cfg
    if cfg.checkpoint is None or not dist_.found_everywhere(cfg.checkpoint, cfg.device):
        return {}
    state = load_checkpoint(cfg.checkpoint, run.net, map_location=cfg.device)
    run.opt.load_state_dict(state["optimizer"])
    if run.sched is not None and "scheduler" in state:
        run.sched.load_state_dict(state["scheduler"])
    if run.scaler is not None and "scaler" in state:
        run.scaler.load_state_dict(state["scaler"])
    run.history.epochs = [EpochStats(**e) for e in state["history"]]
    run.start_epoch = int(state["epoch"])
    if "random" in state:  # written by d2lcnn 0.2 on; older checkpoints resume with new orders
        set_random_state(state["random"], _generator(run.train_iter))
    if state.get("position"):  # stopped inside an epoch: continue it at the next step
        run.resume_at = _Position(**state["position"])
        run.start_epoch = run.resume_at.epoch
    return state


def _generator(data_iter: Iterable) -> torch.Generator | None:
    """The generator a data iterator draws its shuffles from (``None``: torch's global one)."""
    g = getattr(data_iter, "generator", None)
    return g if isinstance(g, torch.Generator) else None


def _weight_average(run: _Run, decay: float, state: dict) -> AveragedModel:
    """The exponential moving average of ``run.net`` (weights and buffers), continued from the
    checkpoint's when resuming."""
    average = AveragedModel(run.net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    steps, reach = run.cfg.num_epochs * run.cfg.num_batches, 1 / (1 - decay)
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
    elif state and run.cfg.verbose:
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


def _batches(run: _Run, epoch: int) -> tuple[Iterator, _Position]:
    """The epoch's batches and its position: from the start (its random states noted, to be kept
    in a checkpoint written during the epoch), or, resuming an epoch a checkpoint stopped in,
    the same data order from the next batch on, with the random states as they were there."""
    gen = _generator(run.train_iter)
    resume, run.resume_at = run.resume_at, None
    if resume is None or resume.epoch != epoch:
        return iter(run.train_iter), _Position(epoch, epoch_random=random_state(gen))
    now = random_state(gen)  # restored from the checkpoint: the states at its step
    set_random_state(resume.epoch_random, gen)  # the epoch's start: draw the same order
    if hasattr(run.train_iter, "iter_from"):
        batches = run.train_iter.iter_from(resume.batches)
    else:  # a DataLoader: draw the order, pass over the batches already trained
        batches = iter(run.train_iter)
        for _ in range(resume.batches):
            next(batches)
    set_random_state(now, None)  # dropout, augmentation: go on from the step it stopped at
    return batches, resume


def _train_epoch(run: _Run, epoch: int,
                 interrupts: _Interrupts) -> tuple[float, float, float, int]:  # fmt: skip
    """Phase 2: one pass over the training data; returns (mean loss, accuracy, seconds, examples).

    Loss and correct predictions are summed on the device; the NaN/inf check and the plot read
    them every batch on a CPU and five times an epoch on a GPU (reading a CUDA scalar syncs).
    """
    cfg = run.cfg
    run.net.train()
    device, num_batches = cfg.device, cfg.num_batches
    dist_.set_epoch(run.train_iter, epoch)
    batches, pos = _batches(run, epoch)
    run.position = pos
    loss_sum = torch.full((), pos.loss_sum, device=device)
    correct = torch.full((), pos.correct, dtype=torch.int64, device=device)
    run.sums = (loss_sum, correct)  # read when a checkpoint is written inside the epoch
    bad_batch = torch.full((), -1, dtype=torch.int64, device=device)
    update_every = max(num_batches // 5, 1)
    # a CPU reads the NaN flag every batch for free; a GPU (a sync) and several ranks (a
    # collective: all must stop at the same batch) five times an epoch
    check_every = 1 if device.type == "cpu" and not cfg.world.active else update_every
    bar = None
    if run.animator is None and cfg.verbose:
        bar = tqdm(total=num_batches, initial=pos.batches, desc=f"epoch {epoch + 1}/{cfg.num_epochs}",
                   leave=False, file=sys.stderr, dynamic_ncols=True)  # fmt: skip
    before = pos.seconds  # trained in this epoch before a resume
    tic = time.perf_counter() - before
    run.phase = "training"
    for batch, (X, y) in enumerate(batches, start=pos.batches):
        interrupts.holding = True  # Ctrl-C from here waits for this batch's step
        X, y = X.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if cfg.augment is not None:
            X = _augmented(cfg.augment, X)
        if cfg.nhwc and X.ndim == 4:
            X = X.contiguous(memory_format=torch.channels_last)
        loss, y_hat = _step(run, X, y)
        if run.steps == 1:  # the first step allocates and picks kernels: a start-up cost
            run.history.phases["first step"] = time.perf_counter() - tic - before
        with torch.no_grad():
            loss_sum += loss * y.shape[0]
            correct += correct_count(y_hat, y)
            bad_batch = torch.where((bad_batch < 0) & ~torch.isfinite(loss), batch, bad_batch)
        pos.batches, pos.seen = batch + 1, pos.seen + y.shape[0]
        interrupts.check()  # a held Ctrl-C stops here, at a step boundary
        last = batch == num_batches - 1
        if (batch + 1) % check_every == 0 or last:
            bad = dist_.first_flagged(int(bad_batch), device)  # -1: no rank saw NaN or inf
            if bad >= 0:
                raise _nonfinite(loss_sum, epoch, bad, num_batches, cfg.lr, run.history)
        if (batch + 1) % update_every == 0 or last:
            train_loss, train_acc = loss_sum.item() / pos.seen, correct.item() / pos.seen
            if run.animator is not None:
                point = {"train_loss": train_loss, "train_acc": train_acc}
                run.animator.add(epoch + (batch + 1) / num_batches,
                                 [point.get(_CURVES[c]) for c in cfg.curves])  # fmt: skip
            if bar is not None:
                bar.set_postfix(loss=f"{train_loss:.3f}", acc=f"{train_acc:.3f}", refresh=False)
        if bar is not None:
            bar.update(1)
        pos.seconds = time.perf_counter() - tic
        if cfg.max_steps is not None and run.steps >= cfg.max_steps:
            break
    seconds = time.perf_counter() - tic
    run.train_seconds += seconds - before
    if bar is not None:
        bar.close()
    loss_total, n_correct, seen = dist_.all_sum([loss_sum.item(), correct.item(), pos.seen],
                                                device)  # fmt: skip
    pos.loss_sum, pos.correct = loss_sum.item(), int(correct.item())
    return loss_total / seen, n_correct / seen, seconds, int(seen)


def _step(run: _Run, X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step; returns the detached float32 loss and the scores."""
    cfg = run.cfg
    with autocast(cfg.device, cfg.dtype):
        y_hat = run.model(X)
        loss = cfg.loss_fn(y_hat, y)
    run.opt.zero_grad(set_to_none=True)
    if run.scaler is None:
        loss.backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(run.net.parameters(), cfg.grad_clip)
        run.opt.step()
    else:  # float16: scale the loss; a step whose gradients overflow is skipped, not a divergence
        run.scaler.scale(loss).backward()
        if cfg.grad_clip:
            run.scaler.unscale_(run.opt)
            nn.utils.clip_grad_norm_(run.net.parameters(), cfg.grad_clip)
        run.scaler.step(run.opt)
        run.scaler.update()
    if run.sched is not None:
        run.sched.step()
    if run.ema is not None:
        run.ema.update_parameters(run.net)
    run.steps += 1
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
    cfg = run.cfg
    net = run.net if cfg.world.active else run.model
    if run.ema is not None:
        net = run.ema.module
    correct, loss_sum, n = dist_.all_sum(
        _evaluate_sums(net, run.test_iter, cfg.device, cfg.dtype, cfg.nhwc, cfg.loss_fn, cfg.tta),
        cfg.device)  # fmt: skip
    return correct / max(n, 1), loss_sum / max(n, 1)


def _end_epoch(run: _Run, stats: EpochStats) -> None:
    """Phase 3's bookkeeping: record the epoch, plot and print it, save the checkpoint."""
    cfg = run.cfg
    run.history.epochs.append(stats)
    if run.animator is not None:
        run.animator.add(stats.epoch, [getattr(stats, _CURVES[c]) if c.split()[0] != "train"
                                       else None for c in cfg.curves])  # fmt: skip
    elif cfg.verbose:
        tqdm.write(f"epoch {stats.epoch}: loss {stats.train_loss:.3f}, train acc "
                   f"{stats.train_acc:.3f}, test acc {stats.test_acc:.3f}, "
                   f"{stats.examples_per_sec:.0f} examples/sec")  # fmt: skip
    _save(run)


def _save(run: _Run, mid_epoch: bool = False) -> None:
    """Write the checkpoint: everything the rest of the run depends on. ``mid_epoch``: training
    stopped inside an epoch (Ctrl-C), whose position is kept so a resumed run continues it at
    the next step; a position before its first step is an epoch not begun."""
    if run.cfg.checkpoint is None or run.cfg.world.rank != 0:  # one writer: rank 0
        return
    pos, finished = run.position, len(run.history.epochs)
    begun = mid_epoch and pos.epoch_random is not None and pos.epoch >= finished
    random, position = random_state(_generator(run.train_iter)), None
    if begun and pos.batches == 0:  # stopped before its first step: the epoch as it began
        random = pos.epoch_random
    elif begun:  # (all its batches trained, not yet evaluated: the resumed run evaluates it)
        pos.loss_sum, pos.correct = run.sums[0].item(), int(run.sums[1].item())
        position = pos.as_dict()
    extra = {"optimizer": run.opt.state_dict(), "epoch": finished,
             "history": [asdict(e) for e in run.history.epochs], "random": random,
             "position": position}  # fmt: skip
    if run.sched is not None:
        extra["scheduler"] = run.sched.state_dict()
    if run.scaler is not None:
        extra["scaler"] = run.scaler.state_dict()
    if run.ema is not None:
        extra["ema"] = run.ema.module.state_dict()
        extra["ema_updates"] = int(run.ema.n_averaged)
    save_checkpoint(run.cfg.checkpoint, run.net, **extra)


def _finish(run: _Run) -> None:
    """Phase 4: the closing lines d2l prints (loss and accuracies, examples/sec), and the time."""
    done = run.history.epochs[run.start_epoch :]
    if not (run.cfg.verbose and done):
        return
    f = done[-1]
    speed = sum(e.seconds * e.examples_per_sec for e in done) / max(
        sum(e.seconds for e in done), 1e-9
    )
    print(f"loss {f.train_loss:.3f}, train acc {f.train_acc:.3f}, test acc {f.test_acc:.3f}")
    print(f"{speed:.1f} examples/sec on {run.cfg.device}")
    print(f"{len(done)} epochs in {run.train_seconds / 60:.1f} min of training "
          f"(+{run.eval_seconds / 60:.1f} min evaluating)")  # fmt: skip


def _device_memory(device: torch.device) -> str:
    """How much memory ``device`` has, for the out-of-memory message."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_properties(device).total_memory / 2**30:.1f} GiB"
    if device.type == "mps" and hasattr(torch, "mps"):
        return f"{torch.mps.recommended_max_memory() / 2**30:.1f} GiB"
    limit = memory_limit()
    return f"{limit / 2**30:.1f} GiB" if limit else "an unknown amount of memory"


def _out_of_memory(run: _Run, err: BaseException) -> DeviceMemoryError:
    """Out of memory while training or evaluating: the weights and history kept as after Ctrl-C
    (and the checkpoint written, when there is one), the message from :func:`_memory_error`."""
    run.history.interrupted = True
    _save(run, mid_epoch=True)
    kept = (f" The model keeps its weights and the history its {len(run.history)} finished "
            f"epoch(s) (.history of this error)"
            f"{'; the checkpoint resumes from here' if run.cfg.checkpoint else ''}.")  # fmt: skip
    error = _memory_error(run.phase, run.cfg.device, run.train_iter, err, kept)
    error.history = run.history
    return error


def _memory_error(phase: str, device: torch.device, data_iter: Iterable, err: BaseException,
                  kept: str = "") -> DeviceMemoryError:  # fmt: skip
    """The out-of-memory error as a lesson, like a layer that does not fit: which phase, at which
    batch and input size, how much memory the device has, and the batch size to try."""
    batch = getattr(data_iter, "batch_size", None)
    size = ""
    images = getattr(data_iter, "images", None)
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        h, w = getattr(data_iter, "resize", None) or images.shape[-2:]
        size = f", input {images.shape[1]}x{h}x{w}"
    advice = (f"try batch_size={max(batch // 2, 1)} (and lr scaled with it), or a smaller input"
              if batch and batch > 1 else "try a smaller input or a smaller network")  # fmt: skip
    first = str(err).splitlines()[0] if str(err) else ""
    error = DeviceMemoryError(
        f"{device} ran out of memory during {phase} (batch size {batch or '?'}{size}; the "
        f"device has {_device_memory(device)}): {advice}.{kept}\n({type(err).__name__}: {first})"
    )
    error.history = History(device=str(device))
    return error


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
