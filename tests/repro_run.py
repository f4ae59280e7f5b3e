"""One training run in a fresh process, for tests/test_reproducible.py.

    python tests/repro_run.py OUT.pt [--epochs 2] [--checkpoint C.pt] [--resume]
                                     [--interrupt-at EPOCH,BATCH] [--auto]

The book's LeNet on 1,024 Fashion-MNIST images (batch 128, seed 0, loaders built afresh in this
process), with a random flip as augmentation (so the run draws from torch's random numbers every
step, as chapter 13's recipe does). Fixed switches (fp32, NCHW) unless ``--auto``. Saves the final
weights and the history's losses to OUT.pt and prints the trainer's lines.
``--interrupt-at E,B`` sends this process SIGINT (Ctrl-C) during batch B of epoch E (from 1).
"""

from __future__ import annotations

import argparse
import os
import signal

import torch

import d2lcnn as d2l

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--checkpoint")
parser.add_argument("--resume", action="store_true")
parser.add_argument("--interrupt-at")
parser.add_argument("--auto", action="store_true")
args = parser.parse_args()

train_iter, test_all = d2l.load_data_fashion_mnist(128, train_size=1024, seed=0, quick=False)
test_iter = d2l.ImageBatches(test_all.images[:256], test_all.labels[:256], 128)
batches_per_epoch = len(train_iter)
calls = [0]
stop_at = None
if args.interrupt_at:
    e, b = (int(v) for v in args.interrupt_at.split(","))
    stop_at = (e - 1) * batches_per_epoch + b  # the call count of that batch


def flip(X: torch.Tensor) -> torch.Tensor:
    calls[0] += 1
    if calls[0] == stop_at:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, in the middle of this batch's step
    mirror = torch.rand(X.shape[0], 1, 1, 1, device=X.device) < 0.5
    return torch.where(mirror, X.flip(-1), X)


switches = {} if args.auto else {"precision": "fp32", "channels_last": False}
torch.manual_seed(0)  # the biases keep their default initialisation (init='xavier': weights)
net = d2l.MODELS["lenet"].build()
history = d2l.train(net, train_iter, test_iter, args.epochs, 0.9,
                    seed=0, augment=flip, checkpoint=args.checkpoint, resume=args.resume,
                    plot=False, **switches)  # fmt: skip
torch.save({"weights": net.state_dict(), "interrupted": history.interrupted,
            "train_loss": history.column("train_loss"), "test_loss": history.column("test_loss"),
            "train_acc": history.column("train_acc")}, args.out)  # fmt: skip
