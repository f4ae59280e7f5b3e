"""Chapter 13's recipe, one change at a time: test accuracy and training minutes per row.

    python benchmarks/modern_recipe.py [--rows A,B,C,D,E,F] [--seeds 0] [--epochs 12]
    python benchmarks/modern_recipe.py --switches [--repeats 3]

Every row trains on all 60,000 Fashion-MNIST images and is tested on all 10,000, with
``d2l.train`` (SGD, momentum 0.9, weight decay 5e-4, one-cycle schedule, batch 256, lr 0.2,
``precision='auto'``). Each row adds one change to the row before it:

  A  chapter 10's ResNet-18 (7x7 stride-2 stem and max-pool: 28x28 -> 7x7 before the first
     stage, four stages), trained for a third of the epochs: about the minutes B..F take
  B  a ResNet shaped for 28x28: 3x3 stem at full resolution, 2x2 max-pool, three stages of two
     residual blocks at 14x14, 7x7, 4x4 with 32, 64, 128 channels (``--width``)
  C  + data augmentation on whole batches, on the training device: random crop with 2 pixels
     of zero padding and a horizontal flip, drawn per image
  D  + label smoothing 0.1
  E  + weight decay on the weights only (not on biases and batch-norm scale and shift)
  F  + an exponential moving average of the weights (decay 0.999) evaluated instead of them

Each run reports the test accuracy as trained and with flip test-time augmentation (the mean
prediction for an image and its mirror image). Rows run in order, seeds alternate; the table
shows the mean and, with several seeds, the range. Prints a Markdown table and the CPU's flags.

``--switches`` instead times training steps of row B's network (SGD on real batches of 256, after
three warm-up steps) with each speed switch of Section 13.9 on and off: float32 or bfloat16
autocast, NCHW or channels-last, and ``torch.compile`` (the first repeat's warm-up includes its
compilation; later repeats reuse the compiled code), variants alternating, and says what
``'auto'`` picks.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import d2lcnn as d2l  # noqa: E402
from d2lcnn.autotune import fastest  # noqa: E402
from d2lcnn.device import describe_cpu  # noqa: E402
from d2lcnn.models import resnet18, resnet_block  # noqa: E402
from d2lcnn.precision import autocast_candidates  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from switches import timed_steps  # noqa: E402  (the step timing of benchmarks/switches.py)

ROWS = {
    "A": "chapter 10's ResNet-18, a third of the epochs",
    "B": "a ResNet shaped for 28x28",
    "C": "+ random crop (pad 2) and flip",
    "D": "+ label smoothing 0.1",
    "E": "+ weight decay on weights only",
    "F": "+ weight average (EMA 0.999)",
}


def resnet_28(width: int = 32) -> nn.Sequential:
    """(B, 1, 28, 28) -> (B, 10): 3x3 stem, then stages at 14x14, 7x7 and 4x4."""
    w = width
    return nn.Sequential(
        nn.Conv2d(1, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2),
        resnet_block(w, w, 2, first_block=True), resnet_block(w, 2 * w, 2),
        resnet_block(2 * w, 4 * w, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, 10),
    )  # fmt: skip


def crop_and_flip(X: torch.Tensor, pad: int = 2) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H, W): each image shifted by up to ``pad`` pixels (zeros enter at
    the border) and mirrored with probability 1/2, all on X's device in one indexing operation."""
    B, C, H, W = X.shape
    padded = F.pad(X, (pad, pad, pad, pad))
    dy, dx = torch.randint(0, 2 * pad + 1, (2, B), device=X.device)
    rows = (torch.arange(H, device=X.device) + dy[:, None])[:, None, :, None]
    cols = (torch.arange(W, device=X.device) + dx[:, None])[:, None, None, :]
    batch = torch.arange(B, device=X.device)[:, None, None, None]
    channel = torch.arange(C, device=X.device)[None, :, None, None]
    out = padded[batch, channel, rows, cols]
    mirror = torch.rand(B, device=X.device) < 0.5
    return torch.where(mirror[:, None, None, None], out.flip(-1), out)


def sgd_decaying_weights_only(net: nn.Module, lr: float, weight_decay: float) -> torch.optim.SGD:
    """SGD with momentum whose weight decay skips 1-D parameters (biases, BN scale and shift)."""
    decay = [p for p in net.parameters() if p.ndim > 1]
    rest = [p for p in net.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0}]
    return torch.optim.SGD(groups, lr=lr, momentum=0.9, fused=True)


def run(row: str, seed: int, args: argparse.Namespace) -> dict:
    torch.manual_seed(seed)
    later = "BCDEF".index(row) if row != "A" else -1
    net = resnet18() if row == "A" else resnet_28(args.width)
    epochs = max(args.epochs // 3, 1) if row == "A" else args.epochs
    lr, wd = 0.2, 5e-4
    train_iter, test_iter = d2l.load_data_fashion_mnist(256, seed=seed, quick=False)
    options = {
        "augment": crop_and_flip if later >= 1 else None,
        "label_smoothing": 0.1 if later >= 2 else 0.0,
        "optimizer": sgd_decaying_weights_only(net, lr, wd) if later >= 3 else "sgd",
        "ema": 0.999 if later >= 4 else None,
    }
    tic = time.perf_counter()
    history = d2l.train(net, train_iter, test_iter, epochs, lr, "cpu", momentum=0.9,
                        weight_decay=wd, schedule="onecycle", plot=False, verbose=False,
                        **options)  # fmt: skip
    wall = time.perf_counter() - tic
    return {
        "acc": history.final.test_acc, "tta": d2l.evaluate_accuracy_gpu(net, test_iter, tta=True),
        "epochs": epochs,
        "train_min": sum(e.seconds for e in history) / 60, "wall_min": wall / 60,
        "precision": history.precision, "channels_last": history.channels_last,
        "examples_per_sec": 60_000 * epochs / sum(e.seconds for e in history),
    }  # fmt: skip


SWITCHES = {  # name: (channels_last, autocast dtype, compiled)
    "fp32": (False, None, False), "fp32+NHWC": (True, None, False),
    "bf16": (False, torch.bfloat16, False), "bf16+NHWC": (True, torch.bfloat16, False),
    "bf16+NHWC+compile": (True, torch.bfloat16, True),
}  # fmt: skip


def time_steps(variant: str, width: int, batches: list, steps: int = 20) -> tuple[float, float]:
    """(seconds of the first three steps, training examples/s over the next ``steps``)."""
    nhwc, dtype, compiled = SWITCHES[variant]
    torch.manual_seed(0)
    return timed_steps(resnet_28(width), batches[: steps + 3], torch.device("cpu"), nhwc, dtype,
                       compiled, warm_up_steps=3, momentum=0.9)  # fmt: skip


def switches(args: argparse.Namespace) -> None:
    """Print a Markdown table: examples/s of each switch variant (median, min-max of repeats)."""
    train_iter, _ = d2l.load_data_fashion_mnist(256, seed=0, quick=False)
    batches = list(itertools.islice(train_iter, 23))  # 3 warm-up + 20 timed steps
    d2l.memory.keep_freed_cpu_memory()
    speeds: dict[str, list[float]] = {v: [] for v in SWITCHES}
    warm: dict[str, list[float]] = {v: [] for v in SWITCHES}
    for _ in range(args.repeats):
        for v in SWITCHES:
            w, eps = time_steps(v, args.width, batches)
            speeds[v].append(eps)
            warm[v].append(w)
    net = resnet_28(args.width)
    nhwc, dtype = fastest(net, train_iter, torch.device("cpu"), (True, False),
                          autocast_candidates(torch.device("cpu"), "auto"))  # fmt: skip
    base = statistics.median(speeds["fp32"])
    print(f"CPU: {describe_cpu()}; {os.cpu_count()} cores; torch {torch.__version__}; row B's "
          f"network (width {args.width}), batches of 256, 20 timed steps after 3 warm-up steps, "
          f"{args.repeats} repeats, variants alternating\n")  # fmt: skip
    print(
        "| variant | examples/s (median, min-max) | vs fp32 | first 3 steps of the first repeat, s |"
    )
    print("|---|---|---|---|")
    for v in SWITCHES:
        m = statistics.median(speeds[v])
        print(f"| {v} | {m:,.0f} ({min(speeds[v]):,.0f}-{max(speeds[v]):,.0f}) | {m / base:.2f}x | "
              f"{warm[v][0]:.1f} |")  # fmt: skip
    print(
        f"\n'auto' picks: {'bf16' if dtype is not None else 'fp32'}{'+NHWC' if nhwc else ' (NCHW)'}"
    )


def _mean(values: list[float], fmt: str) -> str:
    m = statistics.mean(values)
    return (
        f"{m:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})" if len(values) > 1 else f"{m:{fmt}}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", default="A,B,C,D,E,F")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--switches", action="store_true", help="time the speed switches instead")
    parser.add_argument("--repeats", type=int, default=3, help="with --switches")
    args = parser.parse_args()
    if args.switches:
        switches(args)
        return
    rows, seeds = args.rows.split(","), [int(s) for s in args.seeds.split(",")]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        sys.exit(f"--rows: unknown {unknown}; choose from {','.join(ROWS)}")
    results: dict[str, list[dict]] = {r: [] for r in rows}
    for seed in seeds:
        for r in rows:
            results[r].append(run(r, seed, args))
            print(r, seed, results[r][-1], file=sys.stderr, flush=True)
    print(f"CPU: {describe_cpu()}; {os.cpu_count()} cores; torch {torch.__version__}; "
          f"seeds {args.seeds}\n")  # fmt: skip
    print(
        "| row | change | epochs | precision, NHWC | test acc | with flip TTA | training min | examples/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r, runs in results.items():
        print(f"| {r} | {ROWS[r]} | {runs[0]['epochs']} | {runs[0]['precision']}, "
              f"{'/'.join(sorted({str(x['channels_last']) for x in runs}))} | "
              f"{_mean([x['acc'] for x in runs], '.4f')} | {_mean([x['tta'] for x in runs], '.4f')} | "
              f"{_mean([x['train_min'] for x in runs], '.1f')} | "
              f"{_mean([x['examples_per_sec'] for x in runs], ',.0f')} |")  # fmt: skip


if __name__ == "__main__":
    main()
