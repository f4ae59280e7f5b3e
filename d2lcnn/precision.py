"""Precision: which autocast dtype a device trains in (``precision='auto'``), and autocast itself."""

from __future__ import annotations

import torch

from .device import cpu_flags

__all__ = [
    "autocast", "autocast_dtype", "autocast_candidates", "cpu_has_bf16", "cuda_capability",
    "precision_name",
]  # fmt: skip


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bfloat16 instructions (AVX512-BF16 or AMX-BF16 on x86)."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


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
    :func:`d2lcnn.autotune.fastest`), otherwise the one :func:`autocast_dtype` chooses."""
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
