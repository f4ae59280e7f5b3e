"""What ``torch.compile`` costs and gains for a chapter's model: compile time vs steady speed.

    python benchmarks/compile_cost.py [--models lenet,bn_lenet] [--device auto] [--batches 40]

Trains with plain SGD on real Fashion-MNIST batches at the book's batch size, once eager and
once compiled, and prints the time of the first two steps (where compiling happens) and the
examples/s after them. This is the measurement behind ``d2lcnn.train``'s ``compile=False``
default: compiling pays off only when (compile seconds) < (training seconds) x (speed-up - 1).
"""

from __future__ import annotations

import argparse
import os
import sys

# Measure a first compile, as on a learner's machine, not one served from inductor's disk cache.
os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")

import torch  # noqa: E402
from switches import train_steps  # noqa: E402  (benchmarks/ is on sys.path for its scripts)

import d2lcnn as d2l  # noqa: E402


def measure(model: str, device: torch.device, compiled: bool, batches: int) -> tuple[float, float]:
    """(seconds of the first two steps, examples/s after them), eager or compiled, fp32 NCHW."""
    images = d2l.MODELS[model].batch_size * batches
    return train_steps(model, device, False, "fp32", images, compiled=compiled)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="lenet,bn_lenet")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    device = d2l.resolve_device(args.device)
    print(f"device: {d2l.device.describe_device(device)}")
    print("| model | eager ex/s | compiled ex/s | speed-up | first two steps, eager s | "
          "first two steps, compiled s |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for model in args.models.split(","):
        eager_first, eager = measure(model, device, False, args.batches)
        comp_first, comp = measure(model, device, True, args.batches)
        print(f"| {model} | {eager:,.0f} | {comp:,.0f} | {comp / eager:.2f}x | {eager_first:.1f} | "
              f"{comp_first:.1f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
