"""What keeping freed memory in the process (``d2l.memory.keep_freed_cpu_memory``) does on a CPU.

    python benchmarks/cpu_memory.py [--models lenet,resnet18] [--repeats 3]

glibc's malloc hands big freed blocks back to the kernel, so a CPU training step that frees and
re-allocates its activations pays page faults for fresh zeroed pages every step. The setting is
process-wide and lasting, so every measurement runs in a fresh Python process, the two variants
alternating: training examples/s after two warm-up steps (median of the repeats), the share of
the process's CPU time spent in the kernel, and the peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys

import d2lcnn as d2l

# images per measurement by input size; the layout that won for each model in
# benchmarks/switches.py (fixed here: one 16-image timing per process would add its noise)
IMAGES = {28: 15360, 96: 512, 224: 256}
NCHW_MODELS = {"bn_lenet"}


def worker(model: str, keep: bool) -> dict:
    """One measurement, in this (fresh) process."""
    import torch
    from switches import train_steps  # benchmarks/ is on sys.path for its scripts

    size = d2l.MODELS[model].resize or 28
    before = os.times()
    _, eps = train_steps(model, torch.device("cpu"), model not in NCHW_MODELS, "fp32",
                         IMAGES.get(size, 256), keep_cpu_memory=keep)  # fmt: skip
    after = os.times()
    user, system = after.user - before.user, after.system - before.system
    return {"eps": eps, "system": system / (user + system),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


def measure(model: str, keep: bool) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", model, str(int(keep))],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="lenet,bn_lenet,resnet18,densenet,alexnet")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], bool(int(args.worker[1])))))
        return 0
    print(f"device: {d2l.device.describe_device(d2l.cpu())}, fp32; median of {args.repeats} "
          "fresh processes per cell")  # fmt: skip
    print("| model | input | malloc as is: ex/s | kernel time | peak MB | memory kept: ex/s | "
          "kernel time | peak MB | speed-up |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        runs: dict[bool, list[dict]] = {False: [], True: []}
        for r in range(args.repeats):
            for keep in (False, True) if r % 2 == 0 else (True, False):
                runs[keep].append(measure(model, keep))
        cells, eps = [], {}
        for keep in (False, True):
            eps[keep] = statistics.median(x["eps"] for x in runs[keep])
            system = statistics.median(x["system"] for x in runs[keep])
            peak = max(x["peak_mb"] for x in runs[keep])
            cells.append(f"{eps[keep]:,.1f} | {system:.0%} | {peak:,.0f}")
        size = d2l.MODELS[model].resize or 28
        print(f"| {model} | {size}x{size} | {' | '.join(cells)} | {eps[True] / eps[False]:.2f}x |",
              flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
