"""One process or several: examples/s and time to a test accuracy, side by side in one run.

    python benchmarks/distributed.py [--procs 1,2] [--repeats 2] [--target 0.80]

Each configuration trains with ``d2l.train`` exactly as a chapter does, launched the way a learner
would launch it: 1 process with ``python`` (PyTorch then uses every core for its threads), N
processes with ``torchrun --nproc_per_node=N`` (DistributedDataParallel on gloo; torchrun gives
each process 1 thread). Runs alternate between configurations, ``--repeats`` times, and the table
shows median (min-max). Models: LeNet (chapter 3's laptop recipe: batch 256, lr 0.9, all 60,000
images) for ``--max-epochs`` epochs, noting the training seconds until the test accuracy first
reached ``--target``, and ResNet-18 at 28x28 (chapter 10: batch 128, lr 0.05) for one epoch of
``--resnet-images`` images (speed only).
Prints a Markdown table and the CPU's flags.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def worker(args: argparse.Namespace) -> None:
    """One training run (in every process of a torchrun launch); rank 0 writes the result."""
    import torch

    import d2lcnn as d2l

    torch.manual_seed(args.seed)
    recipe = d2l.MODELS[args.model]
    if args.model == "lenet":
        batch, lr, epochs, size = 256, 0.9, args.max_epochs, None
    else:
        batch, lr, epochs, size = 128, 0.05, 1, args.resnet_images
    train_iter, test_iter = d2l.load_data_fashion_mnist(batch, train_size=size, seed=args.seed,
                                                        quick=False)  # fmt: skip
    history = d2l.train(recipe.build(), train_iter, test_iter, epochs, lr, args.device,
                        plot=False, verbose=False)  # fmt: skip
    if d2l.is_main():
        train_s = sum(e.seconds for e in history)
        seen = sum(e.seconds * e.examples_per_sec for e in history)
        elapsed, reached = 0.0, None
        for e in history:  # training seconds until the first epoch at the target
            elapsed += e.seconds
            if e.test_acc >= args.target:
                reached = elapsed
                break
        Path(args.result).write_text(json.dumps({
            "examples_per_sec": seen / train_s, "epochs": len(history),
            "test_acc": history.final.test_acc, "to_target_s": reached,
            "precision": history.precision, "threads": torch.get_num_threads(),
        }))  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(model: str, procs: int, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        flags = ["--worker", "--device", args.device, "--model", model, "--result", str(result), "--target",
                 str(args.target), "--max-epochs", str(args.max_epochs), "--resnet-images",
                 str(args.resnet_images), "--seed", str(args.seed)]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != "D2LCNN_QUICK"}
        if procs == 1:
            cmd = [sys.executable, __file__, *flags]
        else:
            cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={procs}",
                   "--master_addr=127.0.0.1", f"--master_port={_free_port()}", __file__, *flags]  # fmt: skip
        tic = time.perf_counter()
        run = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{run.stderr[-3000:]}")
        out = json.loads(result.read_text())
        out["wall_s"] = time.perf_counter() - tic
        return out


def _spread(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    return f"{med:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})" if len(values) > 1 else f"{med:{fmt}}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--procs", default="1,2")
    parser.add_argument("--models", default="lenet,resnet18")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--target", type=float, default=0.75)
    parser.add_argument("--max-epochs", type=int, default=8)
    parser.add_argument("--resnet-images", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda: one GPU per process (NCCL)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from d2lcnn.device import describe_cpu

    procs = [int(p) for p in args.procs.split(",")]
    models = args.models.split(",")
    results: dict[tuple[str, int], list[dict]] = {(m, p): [] for m in models for p in procs}
    for _ in range(args.repeats):
        for m in models:
            for p in procs:  # alternating: drift hits every configuration alike
                results[m, p].append(launch(m, p, args))
    if args.device == "cpu":
        print(f"CPU: {describe_cpu()}; {os.cpu_count()} cores\n")
    else:
        import torch

        print(f"{torch.cuda.device_count()} x {torch.cuda.get_device_name()}; CPU: {describe_cpu()}\n")
    print("| model | processes x threads | precision | examples/s | epochs | test acc | "
          f"training s to test acc {args.target:.2f} | whole run incl. start-up (s) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for (m, p), runs in results.items():
        reached = [r["to_target_s"] for r in runs if r["to_target_s"] is not None]
        to_target = _spread(reached, ".1f") if m == "lenet" else "(speed only)"
        if m == "lenet" and len(reached) < len(runs):
            to_target += f", {len(runs) - len(reached)} of {len(runs)} runs missed it"
        print(f"| {m} | {p} x {runs[0]['threads']} | {runs[0]['precision']} | "
              f"{_spread([r['examples_per_sec'] for r in runs], ',.0f')} | "
              f"{_spread([r['epochs'] for r in runs], '.0f')} | "
              f"{_spread([r['test_acc'] for r in runs], '.3f')} | {to_target} | "
              f"{_spread([r['wall_s'] for r in runs], '.1f')} |")  # fmt: skip
    base = procs[0]
    for m in models:
        speed = {p: statistics.median(r["examples_per_sec"] for r in results[m, p]) for p in procs}
        ratios = ", ".join(f"{p} processes {speed[p] / speed[base]:.2f}x" for p in procs[1:])
        print(f"\n{m}: examples/s relative to {base} process(es): {ratios}", end="")
    print()
    print(f"\n{args.repeats} alternating repeats; median (min-max). LeNet: all 60,000 images, "
          f"batch 256 (split {'/'.join(str(p) for p in procs)} ways), lr 0.9; ResNet-18: "
          f"{args.resnet_images:,} images at 28x28, batch 128, lr 0.05, 1 epoch. N processes "
          f"share this machine's {os.cpu_count()} cores (one thread each) and all-reduce the "
          "gradients every step: with fewer devices than processes they cannot be faster than "
          "one process using every core; the same global batches give the same accuracy, but for "
          "models with batch norm (ResNet-18), which normalizes over each rank's B/N examples. "
          "More processes pay off with one device (GPU or machine) each.")  # fmt: skip


if __name__ == "__main__":
    main()
