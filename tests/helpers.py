"""Small helpers shared by the unit tests."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

STEMS = {
    "train-images-idx3-ubyte": (2051, 60000),
    "train-labels-idx1-ubyte": (2049, 60000),
    "t10k-images-idx3-ubyte": (2051, 10000),
    "t10k-labels-idx1-ubyte": (2049, 10000),
}


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    """An IDX file's bytes: magic, dimensions (big-endian int32), then uint8 data."""
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, magic: int, array: np.ndarray, gz: bool = True) -> Path:
    data = idx_bytes(magic, array)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def small_cnn() -> torch.nn.Module:
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 7 * 7, 10),
    )  # fmt: skip
