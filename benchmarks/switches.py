"""Measure each speed switch of ``d2lcnn.train`` on and off, per model, on this machine.

    python benchmarks/switches.py [--models lenet,resnet18] [--device auto] [--repeats 2]

Times training steps (forward, backward, SGD step) on real Fashion-MNIST batches at the book's
batch size and input size, through ``d2lcnn.train`` itself (``max_steps``), alternating the
variants, and prints examples/s for each. This is the
measurement behind the defaults of ``channels_last='auto'`` and ``precision='auto'``; the last
column shows the layout ``channels_last='auto'`` picks by timing one training pass in each.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch
from torch import nn

import d2lcnn as d2l
from d2lcnn.autotune import fastest
from d2lcnn.precision import autocast_candidates, autocast_dtype

VARIANTS = {
    "fp32": dict(channels_last=False, precision="fp32"),
    "fp32+channels_last": dict(channels_last=True, precision="fp32"),
    "bf16": dict(channels_last=False, precision="bf16"),
    "bf16+channels_last": dict(channels_last=True, precision="bf16"),
}


def train_steps(model: str, device: torch.device, channels_last: bool, precision: str,
                images: int, compiled: bool = False,
                keep_cpu_memory: bool = True) -> tuple[float, float]:  # fmt: skip
    """(seconds of the first two steps, examples/s after them) of SGD training on real batches.

    The first two steps are warm-up: kernel choice, memory allocation, and with ``compiled``
    the ``torch.compile`` of the model. ``keep_cpu_memory`` sets the process's malloc up as
    ``d2l.train`` does on a CPU (``benchmarks/cpu_memory.py`` measures it off, in fresh processes).
    """
    recipe = d2l.MODELS[model]
    arrays = d2l.load_arrays()
    batch = recipe.batch_size
    it = d2l.ImageBatches(arrays.train_images[: max(images, batch) + 2 * batch],
                          arrays.train_labels[: max(images, batch) + 2 * batch], batch,
                          resize=recipe.resize).to(device)  # fmt: skip
    torch.manual_seed(0)
    net = recipe.build().to(device)
    batches = list(it)  # the same batches in both calls, already on the device
    return timed_steps(net, batches, device, channels_last, autocast_dtype(device, precision),
                       compiled, keep_cpu_memory=keep_cpu_memory)  # fmt: skip


def timed_steps(net: nn.Module, batches: Sequence, device: torch.device, channels_last: bool,
                dtype: torch.dtype | None, compiled: bool = False, warm_up_steps: int = 2,
                momentum: float = 0.0, keep_cpu_memory: bool = True) -> tuple[float, float]:  # fmt: skip
    """(seconds of the first ``warm_up_steps`` steps, examples/s after them) of SGD training of
    ``net`` on ``batches`` (X: (B, C, H, W), y: (B,)) under autocast ``dtype`` (None: float32),
    measured through ``d2lcnn.train`` itself, so what is timed is what learners run: one call
    trains the warm-up steps (kernel choice, allocation, the compile with ``compiled``), a second
    call on the same network (``init=None`` keeps its weights) the timed ones (``max_steps``);
    each call's epoch time is its training pass, set-up not included.

    Also the timing of ``benchmarks/modern_recipe.py --switches``."""
    precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    common = dict(device=device, momentum=momentum, precision=precision,
                  channels_last=channels_last, compile=compiled, init=None,
                  keep_cpu_memory=keep_cpu_memory, plot=False, verbose=False)  # fmt: skip
    warm = d2l.train(net, batches, None, 1, 0.01, max_steps=warm_up_steps, **common)
    timed = d2l.train(net, batches, None, 1, 0.01, max_steps=len(batches) - warm_up_steps, **common)
    return warm[0].seconds, timed[0].examples_per_sec


def steps_per_second(model: str, device: torch.device, channels_last: bool, precision: str,
                     images: int) -> float:  # fmt: skip
    """Training examples/s after two warm-up steps."""
    return train_steps(model, device, channels_last, precision, images)[1]


def auto_layout(model: str, device: torch.device) -> str:
    """What ``d2lcnn.train(channels_last='auto', precision='auto')`` picks for ``model`` here."""
    recipe = d2l.MODELS[model]
    arrays = d2l.load_arrays()
    it = d2l.ImageBatches(arrays.train_images[:256], arrays.train_labels[:256],
                          recipe.batch_size, resize=recipe.resize).to(device)  # fmt: skip
    net = recipe.build().to(device)
    nhwc, dtype = fastest(net, it, device, (True, False), autocast_candidates(device, "auto"))
    return ("bf16+" if dtype is not None else "fp32+") + ("channels_last" if nhwc else "NCHW")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default=",".join(d2l.MODELS))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variants", default="fp32,fp32+channels_last")
    args = parser.parse_args()
    device = d2l.resolve_device(args.device)
    names = args.variants.split(",")
    print(
        f"device: {d2l.device.describe_device(device)}"
        + (f"; CPU: {d2l.device.describe_cpu()}" if device.type == "cpu" else "")
    )
    print("| model | input | " + " | ".join(names) + " | best | 'auto' picks |")
    print("|---|---|" + "---|" * (len(names) + 2))
    for model in args.models.split(","):
        recipe = d2l.MODELS[model]
        size = recipe.resize or 28
        images = {28: 5120, 96: 512}.get(size, 256) if device.type == "cpu" else 8192
        results = {n: 0.0 for n in names}
        for r in range(args.repeats):
            for n in names if r % 2 == 0 else reversed(names):
                results[n] = max(
                    results[n], steps_per_second(model, device, images=images, **VARIANTS[n])
                )
        best = max(results, key=results.get)
        cells = " | ".join(f"{results[n]:,.0f}" for n in names)
        picks = auto_layout(model, device)
        print(f"| {model} | {size}x{size} | {cells} | {best} | {picks} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
