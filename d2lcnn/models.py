"""Reference versions of the chapters' architectures, for Fashion-MNIST (1 input channel, 10 classes).

Each chapter notebook builds its model step by step; these are the same definitions in one
place, used by the benchmark and the command line (a test checks the notebooks' shape tables
against them). ``MODELS`` maps a name to its constructor and the book's training recipe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .ops import batch_norm

__all__ = [
    "BatchNorm", "DenseBlock", "Inception", "MODELS", "Recipe", "ResNeXtBlock", "Residual",
    "alexnet", "bn_lenet", "bn_lenet_scratch", "conv_block", "densenet", "googlenet", "lenet",
    "nin", "nin_block", "resnet18", "resnet18_small", "resnet_block", "transition_block", "vgg",
    "vgg_block", "vgg11", "VGG11_ARCH",
]  # fmt: skip


# --- Chapter 3: LeNet --------------------------------------------------------------------------
def lenet() -> nn.Sequential:
    """LeNet-5 as in the book: sigmoid activations, average pooling. Input (N, 1, 28, 28)."""
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10),
    )  # fmt: skip


def alexnet() -> nn.Sequential:
    """AlexNet for 1-channel 224x224 inputs, 10 classes."""
    return nn.Sequential(
        nn.Conv2d(1, 96, kernel_size=11, stride=4, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Flatten(),
        nn.Linear(6400, 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, 10),
    )  # fmt: skip


# --- Chapter 6: VGG ----------------------------------------------------------------------------
VGG11_ARCH = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))


def vgg_block(num_convs: int, in_channels: int, out_channels: int) -> nn.Sequential:
    """``num_convs`` 3x3 convolutions (padding 1) with ReLU, then 2x2 max pooling: halves H and W."""
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers += [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU()]
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def vgg(conv_arch: Sequence[tuple[int, int]]) -> nn.Sequential:
    """VGG from ``conv_arch`` = ((num_convs, out_channels), ...). Input (N, 1, 224, 224)."""
    blocks: list[nn.Module] = []
    in_channels = 1
    for num_convs, out_channels in conv_arch:
        blocks.append(vgg_block(num_convs, in_channels, out_channels))
        in_channels = out_channels
    return nn.Sequential(
        *blocks, nn.Flatten(),
        nn.Linear(in_channels * 7 * 7, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 10),
    )  # fmt: skip


def vgg11(ratio: int = 1) -> nn.Sequential:
    """VGG-11; ``ratio=4`` divides every convolution's channels by 4, as the book trains it."""
    return vgg([(n, c // ratio) for n, c in VGG11_ARCH])


# --- Chapter 7: NiN ----------------------------------------------------------------------------
def nin_block(
    in_channels: int, out_channels: int, kernel_size: int, strides: int, padding: int
) -> nn.Sequential:
    """A convolution followed by two 1x1 convolutions, each with ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, strides, padding), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
    )  # fmt: skip


def nin() -> nn.Sequential:
    """Network in Network: no fully connected layers; global average pooling over 10 channels."""
    return nn.Sequential(
        nin_block(1, 96, kernel_size=11, strides=4, padding=0),
        nn.MaxPool2d(3, stride=2),
        nin_block(96, 256, kernel_size=5, strides=1, padding=2),
        nn.MaxPool2d(3, stride=2),
        nin_block(256, 384, kernel_size=3, strides=1, padding=1),
        nn.MaxPool2d(3, stride=2),
        nn.Dropout(0.5),
        nin_block(384, 10, kernel_size=3, strides=1, padding=1),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
    )


# --- Chapter 8: GoogLeNet ----------------------------------------------------------------------
class Inception(nn.Module):
    """Four parallel paths concatenated on channels: (N, in, H, W) -> (N, c1 + c2[1] + c3[1] + c4, H, W).

    Path 1: 1x1. Path 2: 1x1 then 3x3 (padding 1). Path 3: 1x1 then 5x5 (padding 2).
    Path 4: 3x3 max pooling (stride 1, padding 1) then 1x1.
    """

    def __init__(
        self, in_channels: int, c1: int, c2: tuple[int, int], c3: tuple[int, int], c4: int
    ) -> None:
        super().__init__()
        self.p1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        self.p2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.p3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.p4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p1 = F.relu(self.p1_1(x))
        p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
        p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
        p4 = F.relu(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)


def googlenet() -> nn.Sequential:
    """GoogLeNet b1..b5 as in the book, for 1-channel inputs (the book trains it at 96x96)."""
    b1 = nn.Sequential(
        nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )  # fmt: skip
    b2 = nn.Sequential(
        nn.Conv2d(64, 64, kernel_size=1), nn.ReLU(),
        nn.Conv2d(64, 192, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )  # fmt: skip
    b3 = nn.Sequential(
        Inception(192, 64, (96, 128), (16, 32), 32),
        Inception(256, 128, (128, 192), (32, 96), 64),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    b4 = nn.Sequential(
        Inception(480, 192, (96, 208), (16, 48), 64),
        Inception(512, 160, (112, 224), (24, 64), 64),
        Inception(512, 128, (128, 256), (24, 64), 64),
        Inception(512, 112, (144, 288), (32, 64), 64),
        Inception(528, 256, (160, 320), (32, 128), 128),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    b5 = nn.Sequential(
        Inception(832, 256, (160, 320), (32, 128), 128),
        Inception(832, 384, (192, 384), (48, 128), 128),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
    )
    return nn.Sequential(b1, b2, b3, b4, b5, nn.Linear(1024, 10))


# --- Chapter 9: batch normalization --------------------------------------------------------------
class BatchNorm(nn.Module):
    """Batch normalization from scratch. ``num_dims``: 2 for (N, C) inputs, 4 for (N, C, H, W).

    gamma and beta are parameters; the moving statistics are buffers, so ``.to(device)`` and
    ``state_dict()`` carry them along.
    """

    def __init__(self, num_features: int, num_dims: int) -> None:
        super().__init__()
        shape = (1, num_features) if num_dims == 2 else (1, num_features, 1, 1)
        self.gamma = nn.Parameter(torch.ones(shape))
        self.beta = nn.Parameter(torch.zeros(shape))
        self.register_buffer("moving_mean", torch.zeros(shape))
        self.register_buffer("moving_var", torch.ones(shape))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y, self.moving_mean, self.moving_var = batch_norm(
            X, self.gamma, self.beta, self.moving_mean, self.moving_var, eps=1e-5, momentum=0.9
        )
        return Y


def _bn_lenet(bn2d: Callable[[int], nn.Module], bn1d: Callable[[int], nn.Module]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5), bn2d(6), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), bn2d(16), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
        nn.Linear(16 * 4 * 4, 120), bn1d(120), nn.Sigmoid(),
        nn.Linear(120, 84), bn1d(84), nn.Sigmoid(),
        nn.Linear(84, 10),
    )  # fmt: skip


def bn_lenet() -> nn.Sequential:
    """LeNet with ``nn.BatchNorm2d``/``nn.BatchNorm1d`` after each conv and linear layer."""
    return _bn_lenet(nn.BatchNorm2d, nn.BatchNorm1d)


def bn_lenet_scratch() -> nn.Sequential:
    """The same network with the from-scratch :class:`BatchNorm`."""
    return _bn_lenet(lambda c: BatchNorm(c, num_dims=4), lambda c: BatchNorm(c, num_dims=2))


# --- Chapter 10: ResNet ------------------------------------------------------------------------
class Residual(nn.Module):
    """Two 3x3 convolutions with batch norm plus a shortcut: (N, C_in, H, W) -> (N, C, H/s, W/s).

    With ``use_1x1conv`` the shortcut is a 1x1 convolution with stride ``strides`` (needed when
    the channel count or the size changes); otherwise it is the identity.
    """

    def __init__(
        self, input_channels: int, num_channels: int, use_1x1conv: bool = False, strides: int = 1
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            input_channels, num_channels, kernel_size=3, padding=1, stride=strides
        )
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        self.conv3 = (
            nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides)
            if use_1x1conv
            else None
        )
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3 is not None:
            X = self.conv3(X)
        return F.relu(Y + X)


def resnet_block(
    input_channels: int, num_channels: int, num_residuals: int, first_block: bool = False
) -> nn.Sequential:
    """A ResNet stage; unless ``first_block``, its first residual halves H and W."""
    blk: list[nn.Module] = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blk.append(Residual(input_channels, num_channels, use_1x1conv=True, strides=2))
        else:
            blk.append(Residual(num_channels, num_channels))
    return nn.Sequential(*blk)


def _stem() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3),
        nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )  # fmt: skip


def resnet18(num_classes: int = 10) -> nn.Sequential:
    """ResNet-18 for 1-channel inputs: stem, four stages of two residual blocks, GAP, Linear."""
    return nn.Sequential(
        _stem(),
        resnet_block(64, 64, 2, first_block=True),
        resnet_block(64, 128, 2),
        resnet_block(128, 256, 2),
        resnet_block(256, 512, 2),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
        nn.Linear(512, num_classes),
    )


def resnet18_small(num_classes: int, in_channels: int = 1) -> nn.Sequential:
    """``d2l.resnet18``: the book's "slightly modified" ResNet-18 of its multi-GPU sections
    (d2l 0.17, d2l-zh 2.0), for small images such as Fashion-MNIST's 28x28.

    Unlike :func:`resnet18` (chapter 10) the stem is one 3x3 convolution with stride 1 and no
    max pooling, so the first stage sees the full image: (N, in_channels, 28, 28) -> 28, 14, 7,
    4 -> (N, num_classes). Modules are named as in the book (``resnet_block1`` ...
    ``global_avg_pool``, ``fc``), so its state dicts load here and the other way round.
    """
    net = nn.Sequential(
        nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1),
        nn.BatchNorm2d(64), nn.ReLU(),
    )  # fmt: skip
    net.add_module("resnet_block1", resnet_block(64, 64, 2, first_block=True))
    net.add_module("resnet_block2", resnet_block(64, 128, 2))
    net.add_module("resnet_block3", resnet_block(128, 256, 2))
    net.add_module("resnet_block4", resnet_block(256, 512, 2))
    net.add_module("global_avg_pool", nn.AdaptiveAvgPool2d((1, 1)))
    net.add_module("fc", nn.Sequential(nn.Flatten(), nn.Linear(512, num_classes)))
    return net


# --- Chapter 11: DenseNet ----------------------------------------------------------------------
def conv_block(input_channels: int, num_channels: int) -> nn.Sequential:
    """BN, ReLU, 3x3 convolution (padding 1): keeps H and W."""
    return nn.Sequential(
        nn.BatchNorm2d(input_channels), nn.ReLU(),
        nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1),
    )  # fmt: skip


class DenseBlock(nn.Module):
    """``num_convs`` conv blocks, each input the concatenation of all earlier outputs.

    (N, C_in, H, W) -> (N, C_in + num_convs * num_channels, H, W).
    """

    def __init__(self, num_convs: int, input_channels: int, num_channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            *[conv_block(num_channels * i + input_channels, num_channels) for i in range(num_convs)]
        )

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        for blk in self.net:
            Y = blk(X)
            X = torch.cat((X, Y), dim=1)
        return X


def transition_block(input_channels: int, num_channels: int) -> nn.Sequential:
    """BN, ReLU, 1x1 convolution to ``num_channels``, 2x2 average pooling: halves H and W."""
    return nn.Sequential(
        nn.BatchNorm2d(input_channels), nn.ReLU(),
        nn.Conv2d(input_channels, num_channels, kernel_size=1),
        nn.AvgPool2d(kernel_size=2, stride=2),
    )  # fmt: skip


def densenet(growth_rate: int = 32, convs_per_block: Sequence[int] = (4, 4, 4, 4)) -> nn.Sequential:
    """DenseNet as in the book: ResNet stem, dense blocks with transitions halving channels."""
    blks: list[nn.Module] = []
    num_channels = 64
    for i, num_convs in enumerate(convs_per_block):
        blks.append(DenseBlock(num_convs, num_channels, growth_rate))
        num_channels += num_convs * growth_rate
        if i != len(convs_per_block) - 1:
            blks.append(transition_block(num_channels, num_channels // 2))
            num_channels = num_channels // 2
    return nn.Sequential(
        _stem(), *blks,
        nn.BatchNorm2d(num_channels), nn.ReLU(),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
        nn.Linear(num_channels, 10),
    )  # fmt: skip


# --- The registry ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    """A chapter's model and the book's full training recipe for it."""

    build: Callable[[], nn.Module]
    resize: int | None  #: input size (None: Fashion-MNIST's 28x28)
    lr: float
    batch_size: int
    num_epochs: int = 10
    chapter: str = ""


MODELS: dict[str, Recipe] = {
    "lenet": Recipe(lenet, None, 0.9, 256, chapter="03_lenet"),
    "alexnet": Recipe(alexnet, 224, 0.01, 128, chapter="05_alexnet"),
    "vgg11": Recipe(vgg11, 224, 0.01, 128, chapter="06_vgg"),
    "vgg11_4": Recipe(lambda: vgg11(ratio=4), 224, 0.05, 128, chapter="06_vgg"),
    "nin": Recipe(nin, 224, 0.1, 128, chapter="07_nin"),
    "googlenet": Recipe(googlenet, 96, 0.1, 128, chapter="08_googlenet"),
    "bn_lenet": Recipe(bn_lenet, None, 1.0, 256, chapter="09_batch_norm"),
    "resnet18": Recipe(resnet18, 96, 0.05, 256, chapter="10_resnet"),
    "densenet": Recipe(densenet, 96, 0.1, 256, chapter="11_densenet"),
}


class ResNeXtBlock(nn.Module):
    """d2l 1.0's ResNeXt block (lazy layers; its cnn-design section builds RegNetX from it).

    1x1 convolution to ``num_channels * bot_mul`` channels, a grouped 3x3 convolution
    (``groups`` channels per group, stride ``strides``), a 1x1 convolution back to
    ``num_channels``, each with batch norm, plus a shortcut (a strided 1x1 convolution when
    ``use_1x1conv``): (N, C_in, H, W) -> (N, num_channels, H / strides, W / strides).
    """

    def __init__(self, num_channels: int, groups: int, bot_mul: float,
                 use_1x1conv: bool = False, strides: int = 1) -> None:  # fmt: skip
        super().__init__()
        bot_channels = int(round(num_channels * bot_mul))
        self.conv1 = nn.LazyConv2d(bot_channels, kernel_size=1, stride=1)
        self.conv2 = nn.LazyConv2d(bot_channels, kernel_size=3, stride=strides, padding=1,
                                   groups=bot_channels // groups)  # fmt: skip
        self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1, stride=1)
        self.bn1, self.bn2, self.bn3 = (
            nn.LazyBatchNorm2d(),
            nn.LazyBatchNorm2d(),
            nn.LazyBatchNorm2d(),
        )
        self.conv4 = (
            nn.LazyConv2d(num_channels, kernel_size=1, stride=strides) if use_1x1conv else None
        )
        self.bn4 = nn.LazyBatchNorm2d() if use_1x1conv else None

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = F.relu(self.bn2(self.conv2(Y)))
        Y = self.bn3(self.conv3(Y))
        if self.conv4 is not None:
            X = self.bn4(self.conv4(X))
        return F.relu(Y + X)
