"""Small helpers shared by the unit tests."""

from __future__ import annotations

import gzip
import shutil
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

# A test of the CUDA path: marked `cuda` (scripts/gpu_session.sh cuda runs `pytest -m cuda` on a GPU
# machine), skipped where there is no CUDA GPU. DEVICES: a test that runs on the CPU and on CUDA.
NEEDS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = pytest.param("cuda", marks=[pytest.mark.cuda, NEEDS_CUDA])
DEVICES = ["cpu", CUDA]

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


def loss_and_accuracy(
    net: torch.nn.Module, batches, precision: str = "fp32"
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``net`` over ``batches`` of (X, y), counted here in
    evaluation mode, independently of the trainer's own bookkeeping. ``precision``: a History's
    (``'bf16 autocast'``...), to count under the autocast the trainer evaluated with."""
    from torch.nn import functional as F

    net.eval()
    bf16 = precision.startswith("bf16")
    loss_sum, correct, n = 0.0, 0, 0
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        for X, y in batches:
            y_hat = net(X).float()
            loss_sum += F.cross_entropy(y_hat, y, reduction="sum").item()
            correct += int((y_hat.argmax(dim=1) == y).sum())
            n += len(y)
    return loss_sum / n, correct / n


@contextmanager
def weights_at_first_step(net: torch.nn.Module) -> Iterator[dict]:
    """``with weights_at_first_step(net) as box:`` ``box["state"]`` is a copy of ``net``'s
    state dict as the first optimizer step of the block found it: the weights training started
    from, after whatever initialisation and timing passes the trainer did first."""
    box: dict = {}

    def hook(optimizer, args, kwargs):
        if "state" not in box:
            box["state"] = {k: v.detach().clone() for k, v in net.state_dict().items()}

    handle = register_optimizer_step_pre_hook(hook)
    try:
        yield box
    finally:
        handle.remove()
    assert "state" in box, "no optimizer step ran: nothing was trained"


#: Debian's Chromium (``apt install chromium``): the browser tests use it, not Playwright's download
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: headless, offline and quiet: no sandbox (CI runs as root), no GPU, no network of its own
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync")  # fmt: skip


def launch_chromium(playwright):
    """Headless Chromium from ``CHROMIUM`` through a started ``sync_playwright()``."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
