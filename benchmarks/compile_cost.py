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
import time

# Measure a first compile, as on a learner's machine, not one served from inductor's disk cache.
os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

import d2lcnn as d2l  # noqa: E402


def measure(model: str, device: torch.device, compiled: bool, batches: int) -> tuple[float, float]:
    recipe = d2l.MODELS[model]
    arrays = d2l.load_arrays()
    n = recipe.batch_size * (batches + 2)
    it = d2l.ImageBatches(arrays.train_images[:n], arrays.train_labels[:n], recipe.batch_size,
                          resize=recipe.resize).to(device)  # fmt: skip
    torch.manual_seed(0)
    net = recipe.build().to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    step_model = torch.compile(net) if compiled else net
    tic, first, seen = time.perf_counter(), 0.0, 0
    for i, (X, y) in enumerate(it):
        if i == 2:
            if device.type == "cuda":
                torch.cuda.synchronize()
            first, tic, seen = time.perf_counter() - tic, time.perf_counter(), 0
        loss = nn.functional.cross_entropy(step_model(X), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += y.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return first, seen / (time.perf_counter() - tic)


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
