"""Shape printers: the book's one-line-per-layer form and a torchinfo-based table.

Both run one forward pass with hooks. When a layer fails, the error names the layer, its
position, the input shape it received and what it expected.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["LayerError", "Summary", "check_forward", "layer_summary", "print_shapes"]


class LayerError(RuntimeError):
    """A layer failed in a forward pass; the message says which one and why."""


def _expectation(module: nn.Module, shape: Sequence[int]) -> str:
    if isinstance(module, nn.Linear):
        hint = ""
        if len(shape) > 2:
            hint = " (did you forget nn.Flatten() before it?)"
        return (
            f"it expects {module.in_features} features in the last dimension, got {shape[-1]}"
            f"{hint}; set in_features={shape[-1]} or fix the layers before it"
        )
    if isinstance(module, nn.modules.conv._ConvNd):
        channel = shape[1] if len(shape) > 1 else "?"
        return (
            f"it expects input of shape (N, {module.in_channels}, ...) with {module.in_channels} "
            f"channels, got {channel}"
        )
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return f"it expects {module.num_features} channels/features in dimension 1"
    return "see the original error below"


def _shape(x: object) -> tuple[int, ...] | None:
    return tuple(x.shape) if torch.is_tensor(x) else None


def _run_with_hooks(
    net: nn.Module,
    X: torch.Tensor,
    modules: list[tuple[str, nn.Module]],
    on_output: Callable[[int, str, nn.Module, object], None],
) -> torch.Tensor:
    """Forward ``X`` through ``net``; call ``on_output(seq, name, module, output)`` for each of
    ``modules`` as it returns, ``seq`` numbering the calls in the order they started.

    A failure inside any leaf module is re-raised as :class:`LayerError` naming it.
    """
    names = {id(m): n for n, m in net.named_modules()}
    positions = {id(m): i for i, (_, m) in enumerate(modules)}
    failing: list[tuple[nn.Module, tuple[int, ...] | None, int]] = []
    handles = []
    calls = iter(range(1 << 62))

    def pre(m: nn.Module, args: tuple) -> None:
        failing.append((m, _shape(args[0]) if args else None, next(calls)))

    def post(m: nn.Module, args: tuple, out: object) -> None:
        seq = failing.pop()[2]
        if id(m) in positions:
            on_output(seq, names.get(id(m), ""), m, out)

    for m in net.modules():
        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post))
    try:
        with torch.no_grad():
            return net(X)
    except (LayerError, torch.OutOfMemoryError):  # out of memory: not the layer's shape
        raise
    except Exception as err:
        if not failing:
            raise
        m, shape, _ = failing[-1]
        path = names.get(id(m), "") or type(m).__name__
        top = next(
            (i for i, (n, _) in enumerate(modules) if path == n or path.startswith(n + ".")), None
        )
        where = f"layer {top}" if top is not None else "layer"
        if path != str(top):
            where += f" '{path}'"
        raise LayerError(
            f"{where} ({m}) failed on input of shape {shape}: "
            f"{_expectation(m, shape or ())}.\nOriginal error: {err}"
        ) from err
    finally:
        for h in handles:
            h.remove()


def _example(net: nn.Module, X_or_shape: torch.Tensor | Sequence[int]) -> torch.Tensor:
    if torch.is_tensor(X_or_shape):
        return X_or_shape
    p = next(net.parameters(), None)
    return torch.rand(*X_or_shape, device=p.device if p is not None else "cpu")


def _layers(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers a learner numbers: the direct children, looking through single-child wrappers
    (a d2l 1.0 ``Classifier`` holds its layers in ``self.net``)."""
    prefix, m = "", net
    while len(children := list(m.named_children())) == 1 and list(children[0][1].children()):
        prefix, m = f"{prefix}{children[0][0]}.", children[0][1]
    return [(prefix + n, c) for n, c in children] or [("", net)]


def check_forward(net: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """One forward pass of ``X`` in evaluation mode without gradients; return the output.

    Lazy layers (``nn.LazyConv2d``, ``nn.LazyLinear``) take their shapes from it, and a layer that
    fails raises :class:`LayerError` naming the layer, its input shape and what to set. Nothing
    else changes: batch-norm statistics are not updated and no random numbers are drawn.
    """
    was_training = net.training
    net.eval()
    try:
        return _run_with_hooks(net, X, _layers(net), lambda *args: None)
    finally:
        net.train(was_training)


def print_shapes(net: nn.Module, X_or_shape: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """The book's form, one line per top-level layer: ``Conv2d output shape:\\t torch.Size([...])``.

    Returns the network's output. Works for ``nn.Sequential`` and for custom blocks (each
    direct child is printed when it returns).
    """
    children = list(net.named_children()) or [("", net)]

    def show(seq: int, name: str, m: nn.Module, out: object) -> None:
        print(m.__class__.__name__, "output shape:\t", out.shape if torch.is_tensor(out) else out)

    was_training = net.training
    net.eval()
    try:
        return _run_with_hooks(net, _example(net, X_or_shape), children, show)
    finally:
        net.train(was_training)


@dataclass
class Summary:
    """What :func:`layer_summary` returns: rows of (path, type, output shape, parameters)."""

    rows: list[tuple[str, str, tuple[int, ...], int]] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    mult_adds: int = 0  #: multiply-adds for one sample (torchinfo's count: bias additions included)
    input_shape: tuple[int, ...] = ()

    def table(self) -> str:
        """The table as text."""
        head = ("Layer", "Type", "Output shape", "Params")
        body = [
            (p, t, " x ".join(map(str, s[1:])) if s else "-", f"{n:,}") for p, t, s, n in self.rows
        ]
        widths = [max(len(r[i]) for r in [head, *body]) for i in range(4)]
        fmt = "  ".join(f"{{:<{w}}}" if i < 3 else f"{{:>{w}}}" for i, w in enumerate(widths))
        rule = "-" * len(fmt.format(*head))
        lines = [f"Input: {' x '.join(map(str, self.input_shape))}", rule, fmt.format(*head), rule]
        lines += [fmt.format(*r) for r in body]
        lines += [rule, f"Total parameters: {self.total_params:,}"]
        if self.trainable_params != self.total_params:
            lines.append(f"Trainable parameters: {self.trainable_params:,}")
        lines.append(f"Multiply-adds per sample: {self.mult_adds / 1e6:,.2f} M")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"Summary({len(self.rows)} layers, {self.total_params:,} parameters, "
            f"{self.mult_adds / 1e6:,.2f} M multiply-adds per sample)"
        )


def layer_summary(
    net: nn.Module, X_or_shape: torch.Tensor | Sequence[int], depth: int = 1, show: bool = True
) -> Summary:
    """Print and return a table: layer path, type, output shape, parameters, totals, mult-adds.

    ``X_or_shape`` is an input tensor or its shape, e.g. ``(1, 1, 224, 224)``. ``depth=1`` lists
    the network's direct children; ``depth=2`` also shows the layers inside blocks. Parameter
    and multiply-add counts come from torchinfo; a failing layer raises :class:`LayerError`.
    """
    import torchinfo

    X = _example(net, X_or_shape)
    wanted = [(n, m) for n, m in net.named_modules() if n and n.count(".") < depth]
    rows: list[tuple[int, tuple[str, str, tuple[int, ...], int]]] = []

    def record(seq: int, name: str, m: nn.Module, out: object) -> None:
        n_params = sum(p.numel() for p in m.parameters())
        rows.append((seq, (name, type(m).__name__, _shape(out) or (), n_params)))

    was_training = net.training
    net.eval()
    try:
        _run_with_hooks(net, X, wanted, record)
        stats = torchinfo.summary(net, input_data=X, verbose=0, depth=depth, mode="eval")
    finally:
        net.train(was_training)
    batch = X.shape[0] if X.ndim else 1
    summary = Summary(
        rows=[row for _, row in sorted(rows, key=lambda r: r[0])],
        total_params=int(stats.total_params),
        trainable_params=int(stats.trainable_params),
        mult_adds=int(stats.total_mult_adds) // max(batch, 1),
        input_shape=tuple(X.shape),
    )
    if show:
        print(summary.table())
    return summary
