"""Checkpoints: save atomically, load with messages that say what a file is not; and the random
states a run depends on (torch's, Python's, NumPy's, a data iterator's generator), as tensors and
numbers that ``torch.load(weights_only=True)`` reads back."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["load_checkpoint", "random_state", "save_checkpoint", "set_random_state"]


def save_checkpoint(path: str | os.PathLike, net: nn.Module, **extra: object) -> Path:
    """Save ``{'model': net.state_dict(), **extra}`` atomically (temporary file, then rename).

    An interrupted save never leaves a half-written file at ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"model": net.state_dict(), **extra}, f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_checkpoint(
    path: str | os.PathLike, net: nn.Module, map_location: str | torch.device = "cpu"
) -> dict:
    """Load weights saved by :func:`save_checkpoint` into ``net`` (``weights_only=True``).

    Returns the whole checkpoint dictionary (optimizer state, epoch, history, ...). A file that is
    missing, is not a PyTorch file, holds something other than a checkpoint, or holds weights of
    another architecture raises one error that says which.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}: check the path (train(checkpoint=...) "
                                "writes one after each finished epoch).")  # fmt: skip
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch.load fails in many ways on a file that is not its own
        raise ValueError(
            f"{path} is not a d2lcnn checkpoint: it is not a file written by torch.save "
            "(d2l.save_checkpoint or d2l.train(checkpoint=...) write checkpoints), or it holds "
            f"objects other than tensors. ({type(err).__name__}: {str(err).splitlines()[0]})"
        ) from None
    if not isinstance(state, dict) or "model" not in state:
        what = "a bare state dict" if isinstance(state, dict) else f"a {type(state).__name__}"
        raise ValueError(
            f"{path} holds {what}, not a d2lcnn checkpoint (a dict with a 'model' entry, as "
            "d2l.save_checkpoint writes). For a bare state dict use "
            "net.load_state_dict(torch.load(path, weights_only=True))."
        )
    try:
        net.load_state_dict(state["model"])
    except RuntimeError as err:
        raise ValueError(
            f"The weights in {path} do not fit this network (another architecture, or other "
            f"layer sizes): build the network the checkpoint was saved from.\n{err}"
        ) from None
    return state


def random_state(generator: torch.Generator | None = None) -> dict:
    """Every random state a training run draws from: torch's (CPU and each CUDA device's),
    Python's, NumPy's and ``generator``'s (a data iterator's shuffle), in a form a checkpoint
    stores (tensors, numbers, lists)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
    }
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_random_state(state: dict, generator: torch.Generator | None = None) -> None:
    """Restore what :func:`random_state` returned (``generator``'s too, when it was kept)."""
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"].cpu())
