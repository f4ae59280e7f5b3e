"""Chapter 13, Section 13.8: does a weight average help the one-cycle recipe, and with which decay?

    python benchmarks/ema_decay.py [--seed 0] [--epochs 12] [--decays 0.9,0.99,0.995,0.999]

One training run of the recipe's row E (``benchmarks/modern_recipe.py``: the ResNet shaped for
28x28, crop and flip, label smoothing 0.1, weight decay on weights only, one-cycle, 12 epochs,
batch 256, lr 0.2) with several exponential moving averages of the weights kept side by side,
all updated after every optimizer step (an optimizer step hook), so every average sees the same
trajectory. At the end, each is tested on all 10,000 test images in two ways:

- ``buffers averaged``: batch norm's running mean and variance averaged like the weights, as
  ``d2l.train(..., ema=decay)`` does (``AveragedModel(..., use_buffers=True)``);
- ``BN recomputed``: the averaged weights with the batch-norm statistics measured afresh on the
  60,000 training images (``torch.optim.swa_utils.update_bn``), as stochastic weight averaging does.

It also prints how much of each average the weights of each third of the run make up
(``(1 - d) * sum of d^(T - t)`` over the steps of that third, plus ``d^(T - 1)`` for the first
step's weights): an average that still leans on the high-rate middle of the run mixes weights
from far-apart points of the loss surface.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import d2lcnn as d2l  # noqa: E402
from d2lcnn.device import describe_cpu  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from modern_recipe import crop_and_flip, resnet_28, sgd_decaying_weights_only  # noqa: E402


def weight_shares(decay: float, steps: int, parts: int = 3) -> list[float]:
    """Share of an EMA after ``steps`` updates that each of ``parts`` equal parts of the run holds."""
    shares = [0.0] * parts
    # step t's weights count with (1 - d) d^(T - t); the first step's with d^(T - 1)
    for t in range(1, steps + 1):
        weight = decay ** (steps - 1) if t == 1 else (1 - decay) * decay ** (steps - t)
        shares[min((t - 1) * parts // steps, parts - 1)] += weight
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--decays", default="0.9,0.99,0.995,0.999")
    args = parser.parse_args()
    decays = [float(d) for d in args.decays.split(",")]
    if not all(0 < d < 1 for d in decays):
        sys.exit(f"--decays: every decay must lie between 0 and 1, not {args.decays}")

    torch.manual_seed(args.seed)
    net = resnet_28(args.width)
    lr = 0.2
    train_iter, test_iter = d2l.load_data_fashion_mnist(256, seed=args.seed, quick=False)
    optimizer = sgd_decaying_weights_only(net, lr, weight_decay=5e-4)
    averages = {d: AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(d), use_buffers=True)
                for d in decays}  # fmt: skip

    def update_averages(opt, args, kwargs) -> None:  # after every optimizer step
        for average in averages.values():
            average.update_parameters(net)

    optimizer.register_step_post_hook(update_averages)
    tic = time.perf_counter()
    history = d2l.train(net, train_iter, test_iter, args.epochs, lr, "cpu", optimizer=optimizer,
                        schedule="onecycle", augment=crop_and_flip, label_smoothing=0.1,
                        plot=False, verbose=False)  # fmt: skip
    train_min = sum(e.seconds for e in history) / 60
    steps = int(next(iter(averages.values())).n_averaged)

    def accuracies(model: torch.nn.Module) -> str:
        plain = d2l.evaluate_accuracy_gpu(model, test_iter)
        return f"{plain:.4f} | {d2l.evaluate_accuracy_gpu(model, test_iter, tta=True):.4f}"

    rows = [f"| trained weights (no average) | | {accuracies(net)} |"]
    for d, average in averages.items():
        shares = " / ".join(f"{s:.0%}" for s in weight_shares(d, steps))
        rows.append(f"| EMA {d}, buffers averaged | {shares} | {accuracies(average.module)} |")
        update_bn(train_iter, average.module)  # fresh batch-norm statistics for these weights
        rows.append(f"| EMA {d}, BN recomputed | {shares} | {accuracies(average.module)} |")

    print(f"CPU: {describe_cpu()}; {os.cpu_count()} cores; torch {torch.__version__}; "
          f"seed {args.seed}; {args.epochs} epochs ({steps} steps) in {train_min:.1f} min of "
          f"training, {history.precision}, channels_last {history.channels_last}; "
          f"{(time.perf_counter() - tic) / 60:.1f} min in all\n")  # fmt: skip
    print("| weights tested | share of the average from the run's first / middle / last third "
          "| test acc | with flip TTA |")  # fmt: skip
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
