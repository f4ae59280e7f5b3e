"""Run settings read from the environment: quick mode, the laptop/full choice, the cache folder.

Quick mode: small class-balanced subsets and one epoch, for CI and fast checks.

Set ``D2LCNN_QUICK=1`` in the environment. The notebook code a learner reads is the same in
both modes; only the amount of data and the number of epochs change, and a one-line banner
(on stderr) says so whenever quick mode changes something.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = [
    "QUICK_TRAIN", "QUICK_TEST", "QUICK_TRAIN_LARGE", "QUICK_TEST_LARGE", "QUICK_EPOCHS", "SETTINGS", "cache_root", "is_quick", "pick_setting",
    "quick_banner", "show_path",
]  # fmt: skip

SETTINGS = ("full", "laptop")

QUICK_TRAIN = 1024  #: training images in quick mode
QUICK_TEST = 512  #: test images in quick mode
QUICK_TRAIN_LARGE = 256  #: training images in quick mode at inputs of 96x96 and more
QUICK_TEST_LARGE = 128  #: test images in quick mode at inputs of 96x96 and more
QUICK_EPOCHS = 1  #: epoch cap in quick mode

_TRUE = {"1", "true", "yes", "on"}


def is_quick() -> bool:
    """Whether ``D2LCNN_QUICK`` is set to a true value (1, true, yes, on)."""
    return os.environ.get("D2LCNN_QUICK", "").strip().lower() in _TRUE


def quick_banner(what: str) -> None:
    """Print the one-line quick-mode banner to stderr."""
    print(f"[d2lcnn quick mode] {what} (unset D2LCNN_QUICK to train for real)", file=sys.stderr)


def pick_setting(setting: str | None = None) -> str:
    """Choose a chapter's training setting and announce it in one line.

    ``'full'``: the book's recipe, picked when a GPU (CUDA or Apple mps) is present.
    ``'laptop'``: the chapter's reduced recipe that trains for real on a CPU in minutes.
    Override with the argument (``pick_setting('full')``) or ``D2LCNN_SETTING=full|laptop``.
    Quick mode (``D2LCNN_QUICK=1``) still shrinks either one. Under a memory limit below 4 GB
    (Binder) the line says so: training then hands freed memory back instead of keeping it.
    """
    from .device import try_gpu  # local: this module stays at the bottom
    from .memory import low_memory, memory_limit

    chosen = setting or os.environ.get("D2LCNN_SETTING", "").strip().lower() or None
    if chosen is None:
        device = try_gpu()
        chosen = "full" if device.type != "cpu" else "laptop"
        why = f"{device} found" if device.type != "cpu" else "no GPU found"
    else:
        why = "chosen by you"
    if chosen not in SETTINGS:
        raise ValueError(f"setting must be 'full' or 'laptop', not {chosen!r}.")
    other = "laptop" if chosen == "full" else "full"
    memory = ""
    if low_memory():
        memory = (f"; {memory_limit() / 2**30:.1f} GB of memory: training hands freed memory "
                  "back to the system")  # fmt: skip
    print(f"setting: {chosen} ({why}; d2l.pick_setting('{other}') switches){memory}")
    return chosen


def cache_root() -> Path:
    """The user cache folder of d2lcnn: ``$XDG_CACHE_HOME/d2lcnn``, else ``~/.cache/d2lcnn``
    (downloaded data sets, remembered speed decisions); created by whoever writes into it."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "d2lcnn"


def show_path(path: Path) -> str:
    """``path`` as printed to a learner: under the home folder as ``~/...``."""
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)
