"""bf16 autocast against fp32 on a CPU: test accuracy of the chapters' stored recipes, per seed.

    python benchmarks/cpu_bf16.py [--models lenet,bn_lenet,resnet18] [--seeds 0,1,2]

The question behind ``precision='auto'`` on a CPU with bf16 instructions (AVX512-BF16, AMX): does
bf16 cost the chapters accuracy? Each model trains with its chapter's laptop recipe (the recipe
its notebook stores a run of) on all of Fashion-MNIST's test set, once per seed and precision,
the precisions alternating; the layout is the trainer's choice (``channels_last='auto'``). The
speed of each precision is measured apart, on a quiet machine, by ``benchmarks/switches.py
--variants fp32,fp32+channels_last,bf16,bf16+channels_last``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass

import torch

import d2lcnn as d2l


@dataclass(frozen=True)
class Recipe:
    chapter: str
    lr: float
    epochs: int
    batch_size: int
    train_size: int | None = None
    options: tuple = ()  #: extra keyword arguments of d2l.train, as (name, value) pairs


RECIPES = {  # the laptop recipes of notebooks 03, 09 and 10
    "lenet": Recipe("03 LeNet", 0.9, 10, 256),
    "bn_lenet": Recipe("09 BN-LeNet", 1.0, 10, 256),
    "resnet18": Recipe("10 ResNet-18 (28x28)", 0.1, 3, 128, 30_000,
                       (("momentum", 0.9), ("weight_decay", 5e-4), ("schedule", "onecycle"))),
}  # fmt: skip


def run(model: str, precision: str, seed: int) -> d2l.History:
    r = RECIPES[model]
    train_iter, test_iter = d2l.load_data_fashion_mnist(r.batch_size, train_size=r.train_size,
                                                        seed=seed)  # fmt: skip
    torch.manual_seed(seed)
    net = d2l.MODELS[model].build()
    return d2l.train(net, train_iter, test_iter, r.epochs, r.lr, "cpu", precision=precision,
                     plot=False, verbose=False, seed=seed, **dict(r.options))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="lenet,bn_lenet,resnet18")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--precisions",
        default="fp32,bf16",
        help="e.g. bf16 alone, to run the "
        "precisions in two processes side by side (OMP_NUM_THREADS=1 each)",
    )
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    precisions = args.precisions.split(",")
    print(f"CPU: {d2l.device.describe_cpu()}; {torch.get_num_threads()} threads per run")
    print("| model | recipe | precision | test acc per seed | mean | spread | layout |")
    print("|---|---|---|---|---|---|---|", flush=True)
    for model in args.models.split(","):
        r = RECIPES[model]
        acc: dict[str, list[float]] = {p: [] for p in precisions}
        layouts: dict[str, set] = {p: set() for p in precisions}
        for i, seed in enumerate(seeds):
            for precision in precisions if i % 2 == 0 else reversed(precisions):
                h = run(model, precision, seed)
                acc[precision].append(h.final.test_acc)
                layouts[precision].add("NHWC" if h.channels_last else "NCHW")
        recipe = (f"{r.chapter}: {r.train_size or 60_000:,} x {r.epochs}, batch {r.batch_size}, "
                  f"lr {r.lr}")  # fmt: skip
        for precision, values in acc.items():
            print(f"| {model} | {recipe} | {precision} | "
                  f"{', '.join(f'{v:.3f}' for v in values)} | {statistics.mean(values):.3f} | "
                  f"{max(values) - min(values):.3f} | {'/'.join(sorted(layouts[precision]))} |",
                  flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
