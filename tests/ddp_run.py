"""A training script for tests/test_distributed.py, run by torchrun (2 processes) and alone.

    python tests/ddp_run.py OUT [--batch-size 256]        # one process
    torchrun --nproc_per_node=2 tests/ddp_run.py OUT       # two, the same code

Writes into the folder OUT: ``lenet.json`` and ``lenet.pt`` (rank 0: history and final weights of
a LeNet trained with a fixed precision and layout), ``ckpt.pt`` (the checkpoint rank 0 wrote),
and, with --all (under torchrun), ``indices_rank{r}.json`` (which examples of a DataLoader's
dataset each rank read, epoch by epoch), ``ch6_rank{r}.pt`` and ``fit_rank{r}.pt`` (every rank's
weights after ``train_ch6`` with precision 'auto' and after the class API's ``Trainer.fit``).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

import d2lcnn as d2l


def lenet() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, 2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(2, 2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10),
    )  # fmt: skip


class Logged(Dataset):
    """Fashion-MNIST tensors that note which indices this process reads."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels, self.read = images, labels, []

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.read.append(int(i))
        return self.images[i].unsqueeze(0).float() / 255, self.labels[i]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--all", action="store_true")
    args = parser.parse_args()
    out = args.out

    # 1. LeNet on 2,048 images, 2 epochs: the same global batches in one process or in several
    torch.manual_seed(0)
    net = lenet()
    train_iter, test_iter = d2l.load_data_fashion_mnist(args.batch_size, train_size=2048, seed=1,
                                                        quick=False)  # fmt: skip
    history = d2l.train(net, train_iter, test_iter, 2, 0.9, "cpu", precision="fp32",
                        channels_last=False, seed=0, checkpoint=out / "ckpt.pt")  # fmt: skip
    if d2l.is_main():
        torch.save(net.state_dict(), out / "lenet.pt")
        (out / "lenet.json").write_text(json.dumps([asdict(e) for e in history]))
    if not args.all:
        return
    rank = d2l.world().rank

    # 2. A plain DataLoader: a DistributedSampler gives each rank its share, reshuffled by epoch
    arrays = d2l.load_arrays("fashion-mnist")
    data = Logged(arrays.train_images[:1000], arrays.train_labels[:1000])
    loader = DataLoader(data, batch_size=100, shuffle=True)
    d2l.train(lenet(), loader, None, 2, 0.5, "cpu", precision="fp32", channels_last=False)
    (out / f"indices_rank{rank}.json").write_text(json.dumps(data.read))

    # 3. train_ch6 as the book calls it: precision and layout chosen on rank 0 for every rank
    train_iter, test_iter = d2l.load_data_fashion_mnist(256, train_size=1024, quick=False)
    net = lenet()
    d2l.train_ch6(net, train_iter, test_iter, 1, 0.9, d2l.try_gpu())
    torch.save(net.state_dict(), out / f"ch6_rank{rank}.pt")

    # 4. d2l 1.0's class API
    class LeNet(d2l.Classifier):
        def __init__(self, lr: float = 0.1) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = lenet()

    model = LeNet()
    fmnist = d2l.FashionMNIST(batch_size=128)
    fmnist.train = Subset(fmnist.train, range(1024))
    fmnist.val = Subset(fmnist.val, range(512))
    d2l.Trainer(max_epochs=1).fit(model, fmnist)
    torch.save(model.state_dict(), out / f"fit_rank{rank}.pt")


if __name__ == "__main__":
    main()
