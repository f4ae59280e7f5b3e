"""d2l's framework aliases: the names d2l's ``torch.py`` defines so one text runs on several frameworks.

The d2l books write much of their code once for MXNet, PyTorch, TensorFlow and Paddle
(``#@tab all`` blocks in zh.d2l.ai, d2l-zh 2.0, and d2l 0.17), calling ``d2l.tensor``,
``d2l.reshape``, ``d2l.reduce_sum``, ... instead of the framework's own names. This module is
that list for PyTorch, with the book's behaviour: most are PyTorch's functions themselves;
the rest call the tensor method the book's alias calls (``d2l.size(x)`` is ``x.numel()``,
``d2l.transpose(x)`` is ``x.t()``, ``d2l.reduce_sum(x, axis=0)`` is ``x.sum(axis=0)``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = [
    "abs", "arange", "argmax", "astype", "concat", "cos", "cosh", "exp", "eye", "float32",
    "int32", "linspace", "log", "matmul", "meshgrid", "nn_Module", "normal", "numpy", "ones",
    "rand", "randn", "reduce_mean", "reduce_sum", "reshape", "sin", "sinh", "size", "stack",
    "tanh", "tensor", "to", "transpose", "zeros",
]  # fmt: skip

# PyTorch's own functions and types under the book's names
nn_Module = nn.Module
ones = torch.ones
zeros = torch.zeros
tensor = torch.tensor
arange = torch.arange
meshgrid = torch.meshgrid
sin = torch.sin
sinh = torch.sinh
cos = torch.cos
cosh = torch.cosh
tanh = torch.tanh
linspace = torch.linspace
exp = torch.exp
log = torch.log
normal = torch.normal
rand = torch.rand
randn = torch.randn
matmul = torch.matmul
int32 = torch.int32
float32 = torch.float32
concat = torch.cat  # TensorFlow's name for torch.cat
stack = torch.stack
abs = torch.abs  # the book's name; shadows builtins.abs only as d2l.abs
eye = torch.eye


# Tensor methods called as functions (the first argument is the tensor)
def numpy(x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
    """``x`` as a NumPy array, detached from the autograd graph (``x.detach().numpy()``)."""
    return x.detach().numpy(*args, **kwargs)


def size(x: torch.Tensor, *args: Any, **kwargs: Any) -> int:
    """Number of elements of ``x`` (``x.numel()``), not its shape."""
    return x.numel(*args, **kwargs)


def reshape(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """``x.reshape(shape)``."""
    return x.reshape(*args, **kwargs)


def to(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """``x.to(device or dtype)``."""
    return x.to(*args, **kwargs)


def reduce_sum(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """``x.sum(...)`` (TensorFlow's name); ``axis=`` works as PyTorch's ``dim=``."""
    return x.sum(*args, **kwargs)


def reduce_mean(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """``x.mean(...)`` (TensorFlow's name)."""
    return x.mean(*args, **kwargs)


def argmax(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """``x.argmax(...)``; ``axis=`` works as ``dim=``."""
    return x.argmax(*args, **kwargs)


def astype(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """``x.type(dtype)`` (NumPy's name)."""
    return x.type(*args, **kwargs)


def transpose(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """``x.t()``: the transpose of a matrix (at most 2 dimensions), as the book's alias."""
    return x.t(*args, **kwargs)
