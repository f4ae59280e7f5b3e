"""Devices: d2l's ``try_gpu`` family, explicit device requests, and what the hardware is
(:func:`describe_device`, :func:`describe_cpu`, the CPU's instruction sets)."""

from __future__ import annotations

import functools
import os
import platform
import sys
from pathlib import Path

import torch

__all__ = [
    "cpu", "gpu", "num_gpus", "try_gpu", "try_all_gpus", "resolve_device", "cpu_flags",
    "describe_cpu_parts",
    "describe_cpu", "describe_device",
]  # fmt: skip


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


def describe_cpu_parts() -> tuple[str, frozenset[str]]:
    """(model name, instruction-set flags) of this CPU."""
    return _cpuinfo()


def cpu_flags() -> frozenset[str]:
    """The instruction-set flags of this CPU (``/proc/cpuinfo`` on Linux; empty elsewhere)."""
    return _cpuinfo()[1]


def describe_cpu() -> str:
    """The CPU and the instruction sets that decide its training speed, for benchmark tables:
    ``'AMD EPYC, 2 cores: avx2 avx512f avx512_bf16'``."""
    name, flags = _cpuinfo()
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "neon", "asimd")
    present = [f for f in wanted if f in flags] or ["none of avx2/avx512/amx"]
    return f"{name}, {os.cpu_count()} cores: {' '.join(present)}"


def describe_device(device: torch.device) -> str:
    """A human-readable device name: ``'cuda:0 (NVIDIA H100 80GB HBM3)'``, ``'cpu (2 threads)'``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)
