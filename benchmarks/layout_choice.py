"""Is ``'auto'`` stable and right? The book's LeNet, one epoch, in fresh processes.

    python benchmarks/layout_choice.py [--model lenet] [--processes 6]

Each run is a fresh Python process that trains the chapter model for one epoch of 60,000 images
with ``d2l.train`` (the book's batch size and learning rate) and reports the training
examples/s, the layout (NHWC/NCHW) and the precision it trained in. The variants alternate, run
by run: ``'auto'`` (what a learner gets: ``channels_last='auto'``, ``precision='auto'``) and every
fixed layout/precision pair. Printed per variant: the median, the spread of the runs around it
(min and max as % of the median) and what ``'auto'`` chose in each run. Goal: ``'auto'`` within
+-15 % of its median, and that median at least the best fixed pair's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

import d2lcnn as d2l

RUN = """
import json, torch
import d2lcnn as d2l
recipe = d2l.MODELS[{model!r}]
train_iter, test_iter = d2l.load_data_fashion_mnist(recipe.batch_size, resize=recipe.resize)
torch.manual_seed(0)
h = d2l.train(recipe.build(), train_iter, test_iter, 1, recipe.lr, "cpu", plot=False,
              verbose=False, channels_last={layout!r}, precision={precision!r})
print(json.dumps([h.final.examples_per_sec, h.channels_last, h.precision]))
"""

VARIANTS = {
    "auto": ("auto", "auto"),
    "fp32 NHWC": (True, "fp32"),
    "fp32 NCHW": (False, "fp32"),
    "bf16 NHWC": (True, "bf16"),
    "bf16 NCHW": (False, "bf16"),
}


def one_run(model: str, layout: object, precision: str) -> tuple[float, bool, str]:
    code = RUN.format(model=model, layout=layout, precision=precision)
    # every process times its own choice (D2LCNN_REMEASURE): the question is what a fresh
    # measurement picks, not what the first one remembered
    env = {**os.environ, "D2LCNN_REMEASURE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env)  # fmt: skip
    speed, nhwc, prec = json.loads(out.stdout.strip().splitlines()[-1])
    return speed, nhwc, prec


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="lenet")
    parser.add_argument("--processes", type=int, default=6)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    names = args.variants.split(",")
    if not d2l.precision.cpu_has_bf16():
        names = [n for n in names if not n.startswith("bf16")]
    runs: dict[str, list[tuple[float, bool, str]]] = {n: [] for n in names}
    for i in range(args.processes):
        for name in names if i % 2 == 0 else reversed(names):
            runs[name].append(one_run(args.model, *VARIANTS[name]))
    print(f"CPU: {d2l.device.describe_cpu()}; model: {args.model}, {args.processes} fresh "
          "processes per variant, 1 epoch of 60,000 images each")  # fmt: skip
    print("| variant | median ex/s | min | max | runs (ex/s, layout, precision) |")
    print("|---|---|---|---|---|")
    for name in names:
        speeds = [r[0] for r in runs[name]]
        med = statistics.median(speeds)
        detail = "; ".join(f"{s:,.0f} {'NHWC' if n else 'NCHW'} {p}" for s, n, p in runs[name])
        print(f"| {name} | {med:,.0f} | {min(speeds) / med - 1:+.0%} | {max(speeds) / med - 1:+.0%} "
              f"| {detail} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
