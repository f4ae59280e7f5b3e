"""Autotuning: ``channels_last='auto'`` (and ``precision='auto'`` on a CPU with bf16 instructions)
measure NHWC against NCHW, and float32 against bfloat16, on the model's own training passes --
once. The decision is remembered in the user cache (:func:`choose`), keyed by everything that
decides the speed (machine, torch version, device, architecture, input shape, batch size), and
later runs reuse it without timing anything: a timed race decided afresh in every process could
flip between close candidates (the book's LeNet in bf16 and in fp32) and with it the numerics,
so the same seed would not give the same run.

Which memory format is faster depends on the model, the device, the precision and the batch size
(on a CPU, NHWC is faster for most of the course's networks and slower for BN-LeNet, whose batch
norm on 6 channels is slow in NHWC: ``benchmarks/switches.py``). So the trainer measures, as
``cudnn.benchmark`` does for kernels, before the first epoch.

A single timed pass is noise for a fast model (one LeNet pass on 16 images takes about a
millisecond; such a probe picked the slower layout in some fresh processes:
``benchmarks/layout_choice.py``). So the probe alternates the candidates, keeping the fastest pass
of each (the least disturbed one) for up to ``_ROUNDS`` rounds or ``_BUDGET_S`` seconds, on the
learner's whole batch when a pass of it is cheap (the speed that matters is the one at the
training batch size), else on 16 images. A slow model (a pass of 16 images over ``_SLOW_PASS_S``,
e.g. AlexNet at 224 px on a CPU) is timed once per candidate: a pass that long is not noise.

On a CPU with bf16 instructions (AVX512-BF16, AMX) bfloat16 autocast is a candidate too, because
no fixed choice is right there either: bf16 is much faster for the large networks, a little for
LeNet, slower for BN-LeNet, with the same test accuracy (``cpu-switches.md``,
``cpu-bf16-accuracy.md``). The faster is kept with no margin for fp32: margins kept fp32 where
bf16 was faster over a whole epoch (``cpu-layout-choice.md``).

The figures: ``benchmarks/results/`` (each file names its CPU, torch version and date).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .data import ImageBatches
from .device import describe_cpu_parts, describe_device
from .precision import autocast
from .settings import cache_root, show_path

__all__ = ["Decision", "choose", "decisions_dir", "fastest", "place", "probe_batch"]

_SLOW_PASS_S = 0.3  #: a pass at least this long is timed once per layout, on a few images
_BUDGET_S = 1.5  #: the fast-model probe stops alternating after this much time
_ROUNDS = 5  #: at most this many passes per layout for a fast model
_FULL_BATCH_S = 0.1  #: a model whose whole-batch pass is shorter than this is probed on it


def probe_batch(data_iter: Iterable, device: torch.device, limit: int | None = None) -> tuple:
    """A training batch (at most ``limit`` examples), without advancing ImageBatches' shuffling."""
    if isinstance(data_iter, ImageBatches):
        size = data_iter.batch_size if limit is None else limit
        X, y = data_iter._make(slice(0, min(size, data_iter.num_examples)))
    else:
        X, y = next(iter(data_iter))
        X, y = X[:limit], y[:limit]
    return X.to(device), y.to(device)


def _pass_seconds(net: nn.Module, X: torch.Tensor, y: torch.Tensor, nhwc: bool,
                  dtype: torch.dtype | None) -> float:  # fmt: skip
    """Seconds of one forward + backward pass in one memory format."""
    fmt = torch.channels_last if nhwc else torch.contiguous_format
    net.to(memory_format=fmt)
    X = X.contiguous(memory_format=fmt)
    if X.is_cuda:
        torch.cuda.synchronize()
    tic = time.perf_counter()
    with autocast(X.device, dtype):
        loss = nn.functional.cross_entropy(net(X).float(), y)
    loss.backward()
    if X.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - tic


Candidate = tuple[bool, "torch.dtype | None"]  #: (NHWC?, autocast dtype or None for fp32)


def place(net: nn.Module, nhwc: bool) -> None:
    """Put ``net``'s weights in the chosen memory format (NHWC: channels-last)."""
    net.to(memory_format=torch.channels_last if nhwc else torch.contiguous_format)


def _candidates(X: torch.Tensor, layouts: Sequence[bool],
                dtypes: Sequence[torch.dtype | None]) -> list[Candidate]:  # fmt: skip
    """Every (layout, dtype) pair; NCHW only for inputs that are not images (B, C, H, W)."""
    return [(nhwc, dtype) for nhwc in (layouts if X.ndim == 4 else (False,)) for dtype in dtypes]


def _time(net: nn.Module, data_iter: Iterable, device: torch.device,
          candidates: list[Candidate]) -> dict[Candidate, float]:  # fmt: skip
    """The fastest pass of each candidate (``{(nhwc, dtype): seconds}``), taking turns."""
    X, y = probe_batch(data_iter, device, 16)
    for nhwc, dtype in candidates:  # warm-up: kernel choice, first allocations
        _pass_seconds(net, X, y, nhwc, dtype)
    best = {c: _pass_seconds(net, X, y, *c) for c in candidates}
    if min(best.values()) > _SLOW_PASS_S:
        return best
    batch = getattr(data_iter, "batch_size", None) or X.shape[0]
    if min(best.values()) * batch / X.shape[0] < _FULL_BATCH_S:  # cheap: the learner's batch
        X, y = probe_batch(data_iter, device)
        for c in candidates:
            _pass_seconds(net, X, y, *c)
        best = dict.fromkeys(candidates, math.inf)
    start = time.perf_counter()
    for _ in range(_ROUNDS):
        for c in candidates:
            best[c] = min(best[c], _pass_seconds(net, X, y, *c))
        if time.perf_counter() - start > _BUDGET_S:
            break
    return best


def fastest(net: nn.Module, data_iter: Iterable, device: torch.device,
            layouts: Sequence[bool] = (True, False),
            dtypes: Sequence[torch.dtype | None] = (None,)) -> Candidate:  # fmt: skip
    """Time training passes in each layout (NHWC: ``True``) and autocast dtype, now; leave ``net``
    in the fastest layout and return ``(nhwc, dtype)``. (:func:`choose` remembers the answer.)

    The fastest candidate wins, whatever its precision. The weights, gradients, batch-norm
    statistics, training mode and random-number state are left as they were. A model that calls
    ``.view()`` on a convolution's output cannot run in NHWC: it keeps NCHW, with a notice on
    stderr.
    """
    X, _ = probe_batch(data_iter, device, 1)
    choice, note = _measure(net, X, data_iter, device, layouts, dtypes)
    if note:
        print(note, file=sys.stderr)
    return choice


_VIEW_NOTE = ("channels_last is off for this model: it calls .view() on a convolution's output "
              "(use .reshape() or nn.Flatten() to allow the faster layout).")  # fmt: skip


def _measure(net: nn.Module, X: torch.Tensor, data_iter: Iterable, device: torch.device,
             layouts: Sequence[bool],
             dtypes: Sequence[torch.dtype | None]) -> tuple[Candidate, str | None]:  # fmt: skip
    """:func:`fastest`'s choice and the notice it has for the learner (or ``None``); ``X`` is one
    example batch of ``data_iter`` (taken once by the caller: a shuffled DataLoader draws from
    torch's random numbers for every new iterator, and every path takes exactly one)."""
    candidates = _candidates(X, layouts, dtypes)
    note = None
    if len(candidates) == 1:
        choice = candidates[0]
    else:
        seconds = _timed_without_side_effects(net, data_iter, device, candidates)
        if any(c[0] for c in candidates) and all(seconds[c] == math.inf for c in candidates if c[0]):
            note = _VIEW_NOTE
        choice = min(seconds, key=seconds.get)
    place(net, choice[0])
    return choice, note


def _timed_without_side_effects(net: nn.Module, data_iter: Iterable, device: torch.device,
                                candidates: list[Candidate]) -> dict[Candidate, float]:  # fmt: skip
    # batch-norm running statistics, by name: a layer may replace its buffer tensors (d2l's BN)
    names = {name for name, _ in net.named_buffers()}
    buffers = {k: v.clone() for k, v in net.state_dict().items() if k in names}
    grads = [p.grad for p in net.parameters()]
    was_training = net.training
    rng_devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=rng_devices):  # dropout draws random numbers
            net.train()
            return _time(net, data_iter, device, candidates)
    except RuntimeError as err:
        if "view size is not compatible" not in str(err):
            raise
        nchw = [c for c in candidates if not c[0]]
        net.to(memory_format=torch.contiguous_format)
        if len(nchw) < 2:
            return {c: (0.0 if not c[0] else math.inf) for c in candidates}
        return {**dict.fromkeys(candidates, math.inf),
                **_timed_without_side_effects(net, data_iter, device, nchw)}  # fmt: skip
    finally:
        net.load_state_dict(buffers, strict=False)
        for p, g in zip(net.parameters(), grads, strict=True):
            p.grad = g
        net.train(was_training)


# ---- remembered decisions ----------------------------------------------------------------------

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
_NAMES = {v: k for k, v in _DTYPES.items()}
_REMEASURE_ENV = "D2LCNN_REMEASURE"  #: set to 1 to time the candidates again (and remember anew)


@dataclass(frozen=True)
class Decision:
    """The layout and precision a run trains in, and how they were decided."""

    nhwc: bool
    dtype: torch.dtype | None
    how: str  #: 'fixed' (one candidate), 'measured' (timed now) or 'remembered' (from ``path``)
    path: Path | None = None  #: the file that keeps a measured or remembered decision
    note: str | None = None  #: a notice for the learner (a model that cannot run in NHWC)

    def describe(self) -> str:
        """``'NHWC, bf16: measured now, kept in ~/.cache/d2lcnn/autotune'`` ('' when fixed)."""
        if self.how == "fixed" or self.path is None:
            return ""
        what = f"{'NHWC' if self.nhwc else 'NCHW'}, {_NAMES[self.dtype]}"
        where = show_path(self.path.parent)
        if self.how == "measured":
            return f"{what} timed now, kept in {where}"
        return f"{what} remembered from {where} ({_REMEASURE_ENV}=1 times again)"


def decisions_dir() -> Path:
    """Where decisions are kept: ``<user cache>/d2lcnn/autotune`` (``XDG_CACHE_HOME`` honoured)."""
    return cache_root() / "autotune"


def _key(net: nn.Module, X: torch.Tensor, data_iter: Iterable, device: torch.device,
         candidates: list[Candidate]) -> tuple[str, dict]:  # fmt: skip
    """A file name for everything the decision depends on, and that everything (kept beside it)."""
    name, flags = describe_cpu_parts()
    what = {
        "machine": platform.node(), "cpu": name, "flags": sorted(flags),
        "cores": os.cpu_count(), "threads": torch.get_num_threads(),
        "device": describe_device(device), "torch": torch.__version__,
        "architecture": hashlib.sha256(repr(net).encode()).hexdigest()[:16],
        "parameters": [list(p.shape) for p in net.parameters()],
        "input": list(X.shape[1:]), "batch_size": getattr(data_iter, "batch_size", None),
        "candidates": [[nhwc, _NAMES[dtype]] for nhwc, dtype in candidates],
    }  # fmt: skip
    digest = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:24]
    return f"{digest}.json", what


def _remembered(path: Path, candidates: list[Candidate]) -> tuple[Candidate, str | None] | None:
    """The decision kept in ``path``, or ``None`` when there is none; a damaged file is warned
    about and ignored (the caller measures again and replaces it)."""
    try:
        entry = json.loads(path.read_text())
        choice = (bool(entry["nhwc"]), _DTYPES[entry["precision"]])
        note = entry.get("note")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        warnings.warn(f"d2lcnn: ignoring the damaged speed decision {path} ({err!r}); measuring "
                      "again", stacklevel=3)  # fmt: skip
        return None
    return (choice, note) if choice in candidates else None


def _keep(path: Path, choice: Candidate, note: str | None, what: dict) -> bool:
    """Write the decision atomically (temporary file, then rename); ``False`` if it cannot be
    written (a read-only home, a full disk): the run goes on, it just measures again next time."""
    entry = {"nhwc": choice[0], "precision": _NAMES[choice[1]], "note": note, "key": what,
             "measured": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(entry, f, indent=1)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    except OSError as err:
        warnings.warn(f"d2lcnn: could not keep the speed decision in {path} ({err}); the next run "
                      "measures again", stacklevel=3)  # fmt: skip
        return False
    return True


def remeasure_requested() -> bool:
    """Whether ``D2LCNN_REMEASURE`` asks every run to time its candidates again."""
    return os.environ.get(_REMEASURE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def choose(net: nn.Module, data_iter: Iterable, device: torch.device,
           layouts: Sequence[bool] = (True, False),
           dtypes: Sequence[torch.dtype | None] = (None,), *, remeasure: bool = False) -> Decision:  # fmt: skip
    """:func:`fastest`, measured once and remembered: the first run for this machine, torch
    version, device, architecture, input shape and batch size times the candidates and keeps
    the winner in :func:`decisions_dir`; later runs take it from there without timing anything.
    ``remeasure=True`` (or ``D2LCNN_REMEASURE=1``) times again and replaces it. Leaves ``net``
    in the chosen layout. One candidate: nothing to decide, nothing kept."""
    X, _ = probe_batch(data_iter, device, 1)
    candidates = _candidates(X, layouts, dtypes)
    if len(candidates) == 1:
        choice = candidates[0]
        place(net, choice[0])
        return Decision(choice[0], choice[1], "fixed")
    name, what = _key(net, X, data_iter, device, candidates)
    path = decisions_dir() / name
    kept = None if remeasure or remeasure_requested() else _remembered(path, candidates)
    if kept is not None:
        (nhwc, dtype), note = kept
        place(net, nhwc)
        if note:
            print(note, file=sys.stderr)
        return Decision(nhwc, dtype, "remembered", path, note)
    (nhwc, dtype), note = _measure(net, X, data_iter, device, layouts, dtypes)
    if note:
        print(note, file=sys.stderr)
    kept_ok = _keep(path, (nhwc, dtype), note, what)
    return Decision(nhwc, dtype, "measured", path if kept_ok else None, note)
