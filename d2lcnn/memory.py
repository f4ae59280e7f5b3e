"""Memory: the limit this process runs under (a container's, e.g. Binder's 2 GB) and glibc's
allocator setting that keeps freed CPU memory for the next training step."""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys
from pathlib import Path

__all__ = ["LOW_MEMORY", "keep_freed_cpu_memory", "low_memory", "memory_limit"]


_NO_LIMIT = 1 << 62  # cgroup v1 writes "no limit" as a number near 2**63


def _cgroup_limits(proc_cgroup: str, root: Path) -> list[int]:
    """Memory limits (bytes) of this process's cgroup and its ancestors, v2 and v1."""
    limits = []
    for line in proc_cgroup.splitlines():
        hierarchy, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if hierarchy == "0" and controllers == "":  # cgroup v2
            bases, name = [root, root / "unified"], "memory.max"
        elif "memory" in controllers.split(","):  # cgroup v1
            bases, name = [root / "memory"], "memory.limit_in_bytes"
        else:
            continue
        parts = [p for p in path.split("/") if p]
        for base in bases:
            for depth in range(len(parts) + 1):  # the cgroup and every ancestor up to the root
                try:
                    text = (base.joinpath(*parts[:depth]) / name).read_text().strip()
                except OSError:
                    continue
                if text.isdigit() and int(text) < _NO_LIMIT:
                    limits.append(int(text))
    return limits


def memory_limit() -> int | None:
    """Bytes of memory this process may use: the smaller of the machine's RAM and the limit of
    its container (cgroup v2 ``memory.max`` or v1 ``memory.limit_in_bytes``, ancestors included).

    ``None`` when neither is known. Binder gives a session 1-2 GB this way.
    """
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        pass
    try:
        limits += _cgroup_limits(Path("/proc/self/cgroup").read_text(), Path("/sys/fs/cgroup"))
    except OSError:
        pass
    return min(limits) if limits else None


LOW_MEMORY = 4 << 30  #: below this limit (bytes) training hands freed CPU memory back


def low_memory() -> bool:
    """Whether this process is limited to less than ``LOW_MEMORY`` (Binder: 1-2 GB)."""
    limit = memory_limit()
    return limit is not None and limit < LOW_MEMORY


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


@functools.cache
def keep_freed_cpu_memory() -> bool:
    """Let this process reuse the memory PyTorch frees on the CPU instead of handing it back.

    A training step on a CPU frees and re-allocates every activation and gradient buffer. glibc's
    malloc serves big blocks (above 128 KiB to 32 MiB, a threshold it adapts as it goes) straight
    from the kernel with ``mmap`` and returns them on ``free``, so every step pays page faults that
    zero fresh pages, and the speed changes with the adapted threshold. Kept, the steps run
    faster (``benchmarks/cpu_memory.py``; figures in ``benchmarks/results/cpu-memory.md``).
    This sets ``M_MMAP_MAX=0`` (big blocks come from the heap too) and ``M_TRIM_THRESHOLD=1 GiB``
    (freed heap stays with the process), once per process.

    The price: the process keeps the memory of its largest step until it exits (peak memory
    measured in the same benchmark). Process-wide; ``d2l.train`` calls it when it trains on a CPU
    unless ``keep_cpu_memory=False``. Returns whether it applied (only on Linux with glibc).
    """
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
