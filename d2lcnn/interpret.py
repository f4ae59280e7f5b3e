"""Looking inside a trained classifier (chapter 14): attribution maps and adversarial examples.

Every function takes a classifier ``net`` mapping images X: (B, C, H, W) to scores (B, K) (the
logits, before softmax) and, where it explains a score, ``target``: (B,) int64, the class whose
score is explained for each image. The attribution maps are computed in evaluation mode (batch
normalization with its running statistics, whatever mode ``net`` was in; the mode is restored
afterwards) and never accumulate into the parameters' ``.grad``. The chapter writes each method
by hand and checks it against Captum; ``tests/test_interpret.py`` does the same for these.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

__all__ = [
    "fgsm", "grad_cam", "integrated_gradients", "occlusion", "pgd", "rank_correlation",
    "saliency",
]  # fmt: skip


@contextlib.contextmanager
def _evaluating(net: nn.Module) -> Iterator[nn.Module]:
    """Evaluation mode inside the block, the previous mode after it."""
    was_training = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was_training)


def _target_score(net: nn.Module, X: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Scores (B,) of class ``target[b]`` for image ``X[b]``."""
    return net(X).gather(1, target.view(-1, 1)).squeeze(1)


def _input_gradient(net: nn.Module, X: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """d score[b, target[b]] / d X[b]: (B, C, H, W). Each image's score depends only on itself
    (in evaluation mode), so the gradient of the sum gives every image its own gradient."""
    X = X.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(_target_score(net, X, target).sum(), X)
    return grad


def saliency(net: nn.Module, X: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gradient saliency |d score_target / d x| (Simonyan et al., 2014): (B, C, H, W)."""
    with _evaluating(net):
        return _input_gradient(net, X, target).abs()


def integrated_gradients(
    net: nn.Module,
    X: torch.Tensor,
    target: torch.Tensor,
    baseline: torch.Tensor | float = 0.0,
    steps: int = 32,
) -> torch.Tensor:
    """Integrated gradients (Sundararajan et al., 2017) by the midpoint rule: (B, C, H, W).

    (x - x') * (1/m) * sum_k grad f(x' + a_k (x - x')) with a_k = (k + 1/2) / m, k = 0..m-1;
    ``baseline`` x' is a tensor shaped like X or a number (0: a black image). The attributions of
    an image sum to about f(x) - f(x'), closer the larger ``steps`` (m).
    """
    baseline = torch.as_tensor(baseline, dtype=X.dtype, device=X.device).expand_as(X)
    total = torch.zeros_like(X)
    with _evaluating(net):
        for k in range(steps):
            alpha = (k + 0.5) / steps
            total += _input_gradient(net, baseline + alpha * (X - baseline), target)
    return (X - baseline) * total / steps


def grad_cam(
    net: nn.Module, layer: nn.Module, X: torch.Tensor, target: torch.Tensor, size: int | None = None
) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al., 2017) at the output of ``layer`` (a module inside ``net``).

    With A: (B, K, h, w) the layer's output and w_k = mean over (h, w) of d score / d A_k,
    the map is ReLU(sum_k w_k A_k): (B, 1, h, w); with ``size`` it is bilinearly upsampled to
    (B, 1, size, size) for drawing over the image.
    """
    saved = {}
    hook = layer.register_forward_hook(lambda module, inputs, output: saved.update(A=output))
    try:
        with _evaluating(net):
            score = _target_score(net, X, target)
            (grad,) = torch.autograd.grad(score.sum(), saved["A"])
    finally:
        hook.remove()
    weights = grad.mean(dim=(2, 3), keepdim=True)  # (B, K, 1, 1)
    cam = torch.relu((weights * saved["A"]).sum(dim=1, keepdim=True)).detach()  # (B, 1, h, w)
    if size is not None:
        cam = nn.functional.interpolate(cam, size=(size, size), mode="bilinear",
                                        align_corners=False)  # fmt: skip
    return cam


@torch.no_grad()
def occlusion(
    net: nn.Module,
    X: torch.Tensor,
    target: torch.Tensor,
    window: int = 4,
    stride: int = 2,
    value: float = 0.5,
) -> torch.Tensor:
    """Occlusion sensitivity (Zeiler and Fergus, 2014): (B, 1, H, W).

    A ``window`` x ``window`` square of grey (``value``) slides over the image with ``stride``;
    each position records the drop of the target score, score(x) - score(x occluded). A pixel's
    value is the mean drop over the positions whose square covers it (as Captum's ``Occlusion``).
    """
    B, C, H, W = X.shape
    drop = torch.zeros(B, 1, H, W, device=X.device)
    count = torch.zeros(1, 1, H, W, device=X.device)
    with _evaluating(net):
        clean = _target_score(net, X, target)
        for i in range(0, H - window + 1, stride):
            for j in range(0, W - window + 1, stride):
                hidden = X.clone()
                hidden[:, :, i:i + window, j:j + window] = value
                delta = clean - _target_score(net, hidden, target)  # (B,)
                drop[:, :, i:i + window, j:j + window] += delta.view(B, 1, 1, 1)
                count[:, :, i:i + window, j:j + window] += 1
    return drop / count.clamp(min=1)


def fgsm(net: nn.Module, X: torch.Tensor, y: torch.Tensor, eps: float,
         loss: Callable = nn.functional.cross_entropy) -> torch.Tensor:  # fmt: skip
    """Fast gradient sign method (Goodfellow et al., 2015): (B, C, H, W) images in [0, 1].

    x + eps * sign(d loss / d x), clipped to [0, 1]. Runs ``net`` in the mode it is in (evaluation
    to attack a trained network; training mode inside adversarial training, as is usual).
    """
    X0 = X.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(net(X0), y), X0)
    return (X + eps * grad.sign()).clamp(0, 1).detach()


def pgd(
    net: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int = 7,
    step_size: float | None = None,
    random_start: bool = True,
    loss: Callable = nn.functional.cross_entropy,
) -> torch.Tensor:
    """Projected gradient descent on the loss (Madry et al., 2018): (B, C, H, W) images in [0, 1].

    ``steps`` ascent steps x <- P(x + step_size * sign(grad)), P the projection onto the L-infinity
    ball of radius ``eps`` around X intersected with [0, 1]; ``step_size`` defaults to
    2.5 eps / steps, and the start is a uniform random point of the ball if ``random_start``.
    """
    if eps == 0:
        return X.detach().clone()
    step_size = 2.5 * eps / steps if step_size is None else step_size
    X_adv = X.detach().clone()
    if random_start:
        X_adv = (X_adv + torch.empty_like(X).uniform_(-eps, eps)).clamp(0, 1)
    for _ in range(steps):
        X_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(loss(net(X_adv), y), X_adv)
        X_adv = X_adv.detach() + step_size * grad.sign()
        X_adv = torch.min(torch.max(X_adv, X - eps), X + eps).clamp(0, 1)
    return X_adv.detach()


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of two batches of maps, per image: (B, ...) x (B, ...) -> (B,).

    Ties are broken by position (maps of real networks have almost none).
    """
    ranks = [m.flatten(1).argsort(dim=1).argsort(dim=1).float() for m in (a, b)]
    ra, rb = (r - r.mean(dim=1, keepdim=True) for r in ranks)
    return (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1))
