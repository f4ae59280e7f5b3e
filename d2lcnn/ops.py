"""From-scratch operations the chapters build and reuse: cross-correlation and pooling."""

from __future__ import annotations

import torch

__all__ = [
    "corr2d",
    "corr2d_multi_in",
    "corr2d_multi_in_out",
    "corr2d_multi_in_out_1x1",
    "pool2d",
    "conv_output_size",
    "batch_norm",
]


def corr2d(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """2-D cross-correlation of X (H, W) with kernel K (h, w) -> (H - h + 1, W - w + 1)."""
    h, w = K.shape
    Y = torch.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1), dtype=torch.result_type(X, K))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i : i + h, j : j + w] * K).sum()
    return Y


def corr2d_multi_in(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Sum over input channels: X (C_in, H, W), K (C_in, h, w) -> (H - h + 1, W - w + 1)."""
    return sum(corr2d(x, k) for x, k in zip(X, K, strict=True))


def corr2d_multi_in_out(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """One output channel per kernel: X (C_in, H, W), K (C_out, C_in, h, w) -> (C_out, H', W')."""
    return torch.stack([corr2d_multi_in(X, k) for k in K], 0)


def corr2d_multi_in_out_1x1(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution as a matrix product: X (C_in, H, W), K (C_out, C_in, 1, 1) -> (C_out, H, W)."""
    c_i, h, w = X.shape
    c_o = K.shape[0]
    Y = torch.matmul(K.reshape((c_o, c_i)), X.reshape((c_i, h * w)))
    return Y.reshape((c_o, h, w))


def pool2d(X: torch.Tensor, pool_size: tuple[int, int], mode: str = "max") -> torch.Tensor:
    """Max or average pooling with stride 1: X (H, W) -> (H - p_h + 1, W - p_w + 1)."""
    if mode not in {"max", "avg"}:
        raise ValueError(f"mode must be 'max' or 'avg', not {mode!r}.")
    p_h, p_w = pool_size
    Y = torch.zeros((X.shape[0] - p_h + 1, X.shape[1] - p_w + 1), dtype=X.dtype)
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            window = X[i : i + p_h, j : j + p_w]
            Y[i, j] = window.max() if mode == "max" else window.float().mean()
    return Y


def conv_output_size(n: int, k: int, p: int = 0, s: int = 1, d: int = 1, ceil: bool = False) -> int:
    """Output length of a convolution or pooling window: floor((n + 2p - d(k - 1) - 1) / s) + 1.

    With dilation ``d = 1`` this is the familiar floor((n + 2p - k) / s) + 1. ``ceil=True`` is
    pooling's ``ceil_mode`` (a last window may start inside the padded input but overhang it).
    """
    span = n + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= n + p:  # PyTorch: the last window must start inside input+left pad
        out -= 1
    return out


def batch_norm(
    X: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    moving_mean: torch.Tensor,
    moving_var: torch.Tensor,
    eps: float,
    momentum: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch normalization from scratch (the book's version).

    X: (N, C) for fully connected inputs (statistics per feature) or (N, C, H, W) for
    convolutional inputs (statistics per channel over N, H, W). While gradients are enabled
    (training) the batch statistics are used and the moving averages updated
    (``new = momentum * old + (1 - momentum) * batch``); otherwise the moving averages are used.
    Returns (Y, moving_mean, moving_var) with Y shaped like X.
    """
    if not torch.is_grad_enabled():
        X_hat = (X - moving_mean) / torch.sqrt(moving_var + eps)
    else:
        if X.ndim not in (2, 4):
            raise ValueError(
                f"batch_norm expects (N, C) or (N, C, H, W) input, got shape {tuple(X.shape)}."
            )
        dims = (0,) if X.ndim == 2 else (0, 2, 3)
        mean = X.mean(dim=dims, keepdim=True)
        var = ((X - mean) ** 2).mean(dim=dims, keepdim=True)
        X_hat = (X - mean) / torch.sqrt(var + eps)
        moving_mean = momentum * moving_mean + (1.0 - momentum) * mean
        moving_var = momentum * moving_var + (1.0 - momentum) * var
    Y = gamma * X_hat + beta
    return Y, moving_mean.detach(), moving_var.detach()
