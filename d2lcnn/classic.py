"""d2l's classic functions (d2l 0.17, zh.d2l.ai's d2l-zh 2.0) that the CNN sections call from earlier
chapters or save for later ones, beside the ones the package already serves (``train_ch6``,
``evaluate_accuracy_gpu``, ``try_all_gpus``).

``sgd`` and ``train_epoch_ch3`` come from the book's linear and softmax regression chapters;
``split_batch`` from its multi-GPU section, which needs CUDA GPUs (on other devices it stops
with a message saying what to do instead).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from .metrics import Accumulator, accuracy

__all__ = ["MultiGPUError", "evaluate_accuracy", "sgd", "split_batch", "train_epoch_ch3"]


def sgd(params: Iterable[torch.Tensor], lr: float, batch_size: int) -> None:
    """Minibatch stochastic gradient descent (d2l name): ``p -= lr * p.grad / batch_size``, in
    place, then the gradients are zeroed. ``batch_size`` turns summed losses into a mean."""
    with torch.no_grad():
        for param in params:
            param -= lr * param.grad / batch_size
            param.grad.zero_()


def evaluate_accuracy(net: Callable[[torch.Tensor], torch.Tensor], data_iter: Iterable) -> float:
    """Accuracy of ``net`` on ``data_iter``, on the data's own device (d2l name, chapter 3).

    ``net`` may be any callable; an ``nn.Module`` is put in evaluation mode first."""
    if isinstance(net, nn.Module):
        net.eval()
    metric = Accumulator(2)  # correct predictions, predictions
    with torch.no_grad():
        for X, y in data_iter:
            metric.add(accuracy(net(X), y), y.numel())
    return metric[0] / metric[1]


def train_epoch_ch3(
    net: Callable[[torch.Tensor], torch.Tensor],
    train_iter: Iterable,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    updater: torch.optim.Optimizer | Callable[[int], None],
) -> tuple[float, float]:
    """One training epoch (d2l name, chapter 3); returns (mean training loss, training accuracy).

    ``loss`` returns one loss per example (``reduction='none'``). ``updater`` is an optimizer
    (the mean loss is minimized) or the book's ``updater(batch_size)`` function, such as
    ``lambda n: d2l.sgd(params, lr, n)`` (the summed loss is minimized). The data stay on their
    device: chapter 6's ``train_ch6`` is the version that moves them to a GPU.
    """
    if isinstance(net, nn.Module):
        net.train()
    metric = Accumulator(3)  # summed loss, correct predictions, examples
    for X, y in train_iter:
        y_hat = net(X)
        l = loss(y_hat, y)  # noqa: E741 (the book's name)
        if isinstance(updater, torch.optim.Optimizer):
            updater.zero_grad()
            l.mean().backward()
            updater.step()
        else:
            l.sum().backward()
            updater(X.shape[0])
        metric.add(float(l.sum().detach()), accuracy(y_hat, y), y.numel())
    return metric[0] / metric[2], metric[1] / metric[2]


class MultiGPUError(RuntimeError):
    """A multi-GPU function of the book was called without CUDA GPUs."""


def split_batch(
    X: torch.Tensor, y: torch.Tensor, devices: Sequence[torch.device | str]
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Split ``X`` and ``y`` along the batch into ``len(devices)`` near-equal shards, one on each
    CUDA device (d2l name: ``nn.parallel.scatter``, as the book's multi-GPU section does).

    It needs CUDA devices (``d2l.try_all_gpus()`` on a GPU machine); given any other device
    (``d2l.try_gpu(i)`` returns the CPU where there is no GPU ``i``) it raises
    :class:`MultiGPUError`, which says what to do instead.
    """
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X and y differ in batch size: {X.shape[0]} != {y.shape[0]}")
    devices = [torch.device(d) for d in devices]
    if not devices or any(d.type != "cuda" for d in devices) or not torch.cuda.is_available():
        raise MultiGPUError(
            f"split_batch scatters a batch over CUDA GPUs (nn.parallel.scatter), but got devices "
            f"{[str(d) for d in devices]} and this machine has {torch.cuda.device_count()} CUDA "
            "GPU(s). Run the multi-GPU section on a machine with CUDA GPUs (Colab: Runtime > "
            "Change runtime type > GPU; devices = d2l.try_all_gpus()); on one device use the "
            "batch as it is (X.to(device), y.to(device)); for data-parallel training on CPUs "
            "or GPUs see chapter 12 (d2l.train under torchrun)."
        )
    return nn.parallel.scatter(X, devices), nn.parallel.scatter(y, devices)
