"""Command line: ``python -m d2lcnn train MODEL ...`` (the benchmarks live in ``benchmarks/``)."""

from __future__ import annotations

import argparse
import sys


def train_command(argv: list[str]) -> int:
    from . import MODELS, init_distributed, load_data_fashion_mnist, train

    parser = argparse.ArgumentParser(
        prog="python -m d2lcnn train",
        description="Train a chapter's model on Fashion-MNIST with a progress bar; the defaults "
        "are the book's recipe for that model. Under torchrun (torchrun --nproc_per_node=N -m "
        "d2lcnn train ...) it trains on N processes with DistributedDataParallel; --batch-size "
        "is then the global batch.",
    )
    parser.add_argument("model", choices=sorted(MODELS))
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--resize", type=int, help="input size (default: the model's)")
    parser.add_argument("--train-size", type=int, help="a class-balanced subset of training images")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--momentum", type=float, default=0.0)
    parser.add_argument("--schedule", choices=["cosine", "onecycle"])
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    parser.add_argument("--compile", action="store_true", help="use torch.compile")
    parser.add_argument("--checkpoint", help="save after every epoch here (and --resume from it)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=["nccl", "gloo"],
                        help="under torchrun: the process group's backend (default: nccl on "
                        "GPUs, gloo on CPUs)")  # fmt: skip
    args = parser.parse_args(argv)
    init_distributed(args.backend, args.device)  # one process (no torchrun): does nothing
    recipe = MODELS[args.model]
    batch_size = args.batch_size or recipe.batch_size
    resize = args.resize or recipe.resize
    train_iter, test_iter = load_data_fashion_mnist(
        batch_size, resize=resize, train_size=args.train_size, seed=args.seed
    )
    history = train(
        recipe.build(), train_iter, test_iter, args.epochs or recipe.num_epochs, args.lr or recipe.lr,
        args.device, momentum=args.momentum, schedule=args.schedule, precision=args.precision,
        compile=args.compile, checkpoint=args.checkpoint, resume=args.resume, seed=args.seed,
        plot=False,
    )  # fmt: skip
    return 130 if history.interrupted else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "train":
        print("usage: python -m d2lcnn train MODEL ...  (add --help after train)", file=sys.stderr)
        return 2
    return train_command(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
