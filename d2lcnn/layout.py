"""``channels_last='auto'`` (and ``precision='auto'`` on a CPU with bf16 instructions): measure
NHWC against NCHW, and float32 against bfloat16, on the model's own training passes.

Which memory format is faster depends on the model, the device, the precision and the batch size
(on a 2-core CPU: NHWC is faster for AlexNet ... DenseNet and LeNet, slower for BN-LeNet, whose
batch norm on 6 channels is slow in NHWC; ``benchmarks/switches.py``). So the trainer measures,
as ``cudnn.benchmark`` does for kernels, before the first epoch.

A single timed pass is noise for a fast model: one LeNet pass on 16 images takes about a
millisecond, and such a probe picked the slower layout in some fresh processes (the book's LeNet
measured 12,500 to 26,500 examples/s over six processes). So the probe alternates the layouts,
NHWC, NCHW, NHWC, NCHW, ..., keeping the fastest pass of each (the least disturbed one) for up to
5 rounds or 1.5 s, on the learner's whole batch when a pass of it is cheap (under 0.1 s: the
speed that matters is the one at the training batch size), else on 16 images. A slow model (a
pass of 16 images over 0.3 s, e.g. AlexNet at 224 px on a CPU) is timed once per layout: a pass
that long is not noise. ``benchmarks/layout_choice.py`` measures the choice in fresh processes.

On a CPU with bf16 instructions (AVX512-BF16, AMX) bfloat16 autocast is a candidate too, because
no fixed choice is right there either: on a 2-core AMD EPYC with AVX512-BF16, bf16 (in the better
layout) trained ResNet-18, GoogLeNet, DenseNet, NiN and AlexNet 1.6-1.9x faster than fp32, LeNet
8-11 % faster, and BN-LeNet 15 % slower (``benchmarks/results/cpu-switches.md``), with the same
test accuracy in both (``benchmarks/results/cpu-bf16-accuracy.md``). The faster is kept, with no
margin for fp32: LeNet's probe passes see only 2-4 % of bf16's 8-11 % gain over a whole epoch, and 10 % and 5 %
margins kept fp32 in 11 of 12 fresh processes (``benchmarks/results/cpu-layout-choice.md``).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from .data import ImageBatches
from .device import autocast

__all__ = ["faster_layout", "fastest", "probe_batch"]

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
    """Time training passes in each layout (NHWC: ``True``) and autocast dtype; leave ``net`` in
    the fastest layout and return ``(nhwc, dtype)``.

    The fastest candidate wins, whatever its precision. The weights, gradients, batch-norm
    statistics, training mode and random-number state are left as they were. A model that calls
    ``.view()`` on a convolution's output cannot run in NHWC: it keeps NCHW, with a notice on
    stderr.
    """
    X, _ = probe_batch(data_iter, device, 1)
    if X.ndim != 4:
        layouts = (False,)
    candidates = [(nhwc, dtype) for nhwc in layouts for dtype in dtypes]
    if len(candidates) == 1:
        choice = candidates[0]
    else:
        seconds = _timed_without_side_effects(net, data_iter, device, candidates)
        choice = min(seconds, key=seconds.get)
    net.to(memory_format=torch.channels_last if choice[0] else torch.contiguous_format)
    return choice


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
        print("channels_last is off for this model: it calls .view() on a convolution's output "
              "(use .reshape() or nn.Flatten() to allow the faster layout).", file=sys.stderr)  # fmt: skip
        nchw = [c for c in candidates if not c[0]]
        if len(nchw) < 2:
            return {c: (0.0 if not c[0] else math.inf) for c in candidates}
        net.to(memory_format=torch.contiguous_format)
        return _timed_without_side_effects(net, data_iter, device, nchw)
    finally:
        net.load_state_dict(buffers, strict=False)
        for p, g in zip(net.parameters(), grads, strict=True):
            p.grad = g
        net.train(was_training)


def faster_layout(net: nn.Module, data_iter: Iterable, device: torch.device,
                  dtype: torch.dtype | None) -> bool:  # fmt: skip
    """:func:`fastest` over the two layouts at one precision: ``True`` for NHWC."""
    return fastest(net, data_iter, device, (True, False), (dtype,))[0]
