"""Devices: d2l's ``try_gpu`` family, explicit device requests, and the precision choice."""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys
from pathlib import Path

import torch

__all__ = [
    "cpu",
    "gpu",
    "num_gpus",
    "try_gpu",
    "try_all_gpus",
    "resolve_device",
    "cpu_has_bf16",
    "describe_cpu",
    "autocast",
    "autocast_dtype",
    "autocast_candidates",
    "cuda_capability",
    "precision_name",
    "describe_device",
    "keep_freed_cpu_memory",
    "low_memory",
    "memory_limit",
]


def cpu() -> torch.device:
    """The CPU device (d2l name)."""
    return torch.device("cpu")


def gpu(i: int = 0) -> torch.device:
    """The ``i``-th CUDA device, whether or not it exists (d2l name)."""
    return torch.device(f"cuda:{i}")


def num_gpus() -> int:
    """Number of CUDA devices visible to PyTorch."""
    return torch.cuda.device_count()


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def try_gpu(i: int = 0) -> torch.device:
    """Return ``cuda:i`` if it exists, else Apple's ``mps`` (for ``i == 0``), else the CPU.

    Like d2l's ``try_gpu`` this never fails: a missing GPU falls back to the CPU.
    Use :func:`resolve_device` when a missing device should be an error.
    """
    if num_gpus() >= i + 1:
        return gpu(i)
    if i == 0 and _mps_available():
        return torch.device("mps")
    return cpu()


def try_all_gpus() -> list[torch.device]:
    """All CUDA devices, or ``[cpu()]`` when there is none (d2l name)."""
    return [gpu(i) for i in range(num_gpus())] or [cpu()]


def resolve_device(spec: str | torch.device | None = None) -> torch.device:
    """Turn ``None``/``'auto'``/``'cpu'``/``'cuda:1'``/``'mps'`` into a device that exists.

    ``None`` and ``'auto'`` pick :func:`try_gpu`. Asking for a device this machine does not
    have raises a ``ValueError`` that says what is available.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "auto"):
        return try_gpu()
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"{spec!r} is not a device name: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."
        ) from err
    if device.type == "cuda":
        n = num_gpus()
        index = 0 if device.index is None else device.index
        if index >= n:
            have = ", ".join(f"cuda:{k}" for k in range(n)) or "none"
            raise ValueError(
                f"Device {device} was asked for, but this machine has {n} CUDA device(s) ({have}). "
                "Use device='cpu' or 'auto' (d2l.try_gpu() picks the best one available)."
            )
        return torch.device("cuda", index)
    if device.type == "mps" and not _mps_available():
        raise ValueError(
            "Device 'mps' was asked for, but Apple's Metal backend is not available here. "
            "Use device='cpu' or 'auto'."
        )
    return device


@functools.cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """(model name, instruction-set flags) of this CPU, from /proc/cpuinfo on Linux."""
    name, flags = platform.processor() or platform.machine(), frozenset()
    if sys.platform.startswith("linux"):
        try:
            text = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return name, flags
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                name = value.strip()
            if key.strip() == "flags" and not flags:
                flags = frozenset(value.split())
    return name, flags


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bfloat16 instructions (AVX512-BF16 or AMX-BF16 on x86)."""
    return bool({"avx512_bf16", "amx_bf16"} & _cpuinfo()[1])


def describe_cpu() -> str:
    """The CPU and the instruction sets that decide its training speed, for benchmark tables:
    ``'AMD EPYC, 2 cores: avx2 avx512f avx512_bf16'``."""
    name, flags = _cpuinfo()
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "neon", "asimd")
    present = [f for f in wanted if f in flags] or ["none of avx2/avx512/amx"]
    return f"{name}, {os.cpu_count()} cores: {' '.join(present)}"


_PRECISIONS = {
    "auto": "auto",
    "fp32": None, "float32": None, "32": None, "off": None,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
}  # fmt: skip


def cuda_capability(device: torch.device) -> tuple[int, int]:
    """The compute capability of a CUDA device, e.g. ``(9, 0)`` for an H100, ``(7, 5)`` a T4."""
    return torch.cuda.get_device_capability(device)


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (``None`` means plain float32).

    ``'bf16'``, ``'fp16'`` and ``'fp32'`` force that precision. ``'auto'`` chooses by what the
    hardware does natively, not what it can emulate:

    ======================================  =========================================
    CUDA, capability >= 8.0 (A100, H100,    bfloat16
    RTX 30xx/40xx, L4)
    CUDA, capability 7.x (T4, V100,         float16, with loss scaling
    RTX 20xx)                               (cuDNN has no bf16 convolutions below 8.0)
    CUDA below 7.0                          float32
    Apple mps                               float32 (unmeasured)
    CPU                                     float32; with bf16 instructions the trainer
                                            times bf16 too (:func:`autocast_candidates`)
    ======================================  =========================================

    ``torch.cuda.is_bf16_supported()`` is not asked: it answers True on a T4, where bf16 is
    emulated. float16 needs loss scaling (:func:`d2lcnn.train` adds a ``GradScaler``).
    """
    key = precision.lower() if isinstance(precision, str) else precision
    if key not in _PRECISIONS:
        raise ValueError(f"precision must be 'auto', 'bf16', 'fp16' or 'fp32', not {precision!r}.")
    if key != "auto":
        return _PRECISIONS[key]
    if device.type == "cuda":
        major = cuda_capability(device)[0]
        return torch.bfloat16 if major >= 8 else torch.float16 if major == 7 else None
    return None


def autocast_candidates(device: torch.device, precision: str = "auto") -> tuple:
    """The precisions ``precision`` leaves open on ``device``: float32 and bfloat16 for ``'auto'``
    on a CPU with bf16 instructions (the trainer times both on the model, see
    :func:`d2lcnn.layout.fastest`), otherwise the one :func:`autocast_dtype` chooses."""
    dtype = autocast_dtype(device, precision)  # validates the name
    if precision.lower() == "auto" and device.type == "cpu" and cpu_has_bf16():
        return (None, torch.bfloat16)
    return (dtype,)


def precision_name(dtype: torch.dtype | None) -> str:
    """How the trainer names a precision in its printed lines."""
    return {torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}.get(dtype, "fp32")


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` to ``dtype`` on ``device``, or a no-op context for ``None``."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def describe_device(device: torch.device) -> str:
    """A human-readable device name: ``'cuda:0 (NVIDIA H100 80GB HBM3)'``, ``'cpu (2 threads)'``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


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
    zero fresh pages: on a 2-core CPU 16-35 % of the CPU time of a LeNet, ResNet-18 or DenseNet
    step went to the kernel, and LeNet's speed flipped between ~11k and ~17k examples/s with the
    adapted threshold. Kept, the steps ran 1.05-1.56x faster (``benchmarks/cpu_memory.py``).
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
