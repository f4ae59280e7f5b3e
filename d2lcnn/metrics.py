"""Counting and timing: d2l's ``accuracy``, ``Accumulator`` and ``Timer``."""

from __future__ import annotations

import time

import numpy as np
import torch

__all__ = ["accuracy", "correct_count", "Accumulator", "Timer"]


def correct_count(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Number of correct predictions as a 0-d tensor on ``y_hat``'s device (no host sync).

    ``y_hat``: (B, C) scores or (B,) class indices; ``y``: (B,) int64 labels.
    """
    if y_hat.ndim > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(dim=1)
    return (y_hat.type(y.dtype) == y).sum()


def accuracy(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """Number of correct predictions, as a float (d2l's definition: a count, not a ratio)."""
    return float(correct_count(y_hat, y))


class Accumulator:
    """Sums over ``n`` variables (d2l name): ``add(a, b)`` then ``acc[0]``, ``acc[1]``."""

    def __init__(self, n: int) -> None:
        self.data = [0.0] * n

    def add(self, *args: float) -> None:
        self.data = [a + float(b) for a, b in zip(self.data, args, strict=True)]

    def reset(self) -> None:
        self.data = [0.0] * len(self.data)

    def __getitem__(self, idx: int) -> float:
        return self.data[idx]


class Timer:
    """Records several running times (d2l name)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.start()

    def start(self) -> None:
        """Start the timer."""
        self.tik = time.perf_counter()

    def stop(self) -> float:
        """Stop the timer and record the time in a list; return it."""
        self.times.append(time.perf_counter() - self.tik)
        return self.times[-1]

    def avg(self) -> float:
        """Average time."""
        return sum(self.times) / len(self.times)

    def sum(self) -> float:
        """Total time."""
        return sum(self.times)

    def cumsum(self) -> list[float]:
        """Accumulated times."""
        return np.array(self.times).cumsum().tolist()
