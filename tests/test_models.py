"""Reference architectures: the shapes the chapters promise, and the from-scratch blocks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import d2lcnn as d2l
from d2lcnn import models


def shapes(net, size):
    return [r[2][1:] for r in d2l.layer_summary(net, (1, 1, size, size), show=False).rows]


def test_alexnet_shapes():
    s = shapes(models.alexnet(), 224)
    assert s[0] == (96, 54, 54) and s[2] == (96, 26, 26) and s[5] == (256, 12, 12)
    assert s[12] == (256, 5, 5) and s[13] == (6400,) and s[-1] == (10,)


def test_vgg11_and_narrow_vgg():
    assert shapes(models.vgg11(), 224)[:6] == [
        (64, 112, 112), (128, 56, 56), (256, 28, 28), (512, 14, 14), (512, 7, 7), (25088,)
    ]  # fmt: skip
    assert shapes(models.vgg11(ratio=4), 224)[4] == (128, 7, 7)


def test_nin_shapes():
    assert shapes(models.nin(), 224) == [
        (96, 54, 54), (96, 26, 26), (256, 26, 26), (256, 12, 12), (384, 12, 12),
        (384, 5, 5), (384, 5, 5), (10, 5, 5), (10, 1, 1), (10,),
    ]  # fmt: skip


def test_googlenet_shapes_and_inception_paths():
    assert shapes(models.googlenet(), 96) == [
        (64, 24, 24),
        (192, 12, 12),
        (480, 6, 6),
        (832, 3, 3),
        (1024,),
        (10,),
    ]
    blk = models.Inception(192, 64, (96, 128), (16, 32), 32)
    assert blk(torch.rand(2, 192, 12, 12)).shape == (2, 256, 12, 12)
    assert blk.p2_2.kernel_size == (3, 3) and blk.p3_2.kernel_size == (5, 5)


def test_resnet_blocks_and_resnet18():
    assert models.Residual(3, 3)(torch.rand(4, 3, 6, 6)).shape == (4, 3, 6, 6)
    assert models.Residual(3, 6, use_1x1conv=True, strides=2)(torch.rand(4, 3, 6, 6)).shape == (
        4,
        6,
        3,
        3,
    )
    assert shapes(models.resnet18(), 224) == [
        (64, 56, 56), (64, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7), (512, 1, 1), (512,), (10,)
    ]  # fmt: skip


def test_densenet_blocks():
    assert models.DenseBlock(2, 3, 10)(torch.rand(4, 3, 8, 8)).shape == (4, 23, 8, 8)
    assert models.transition_block(23, 10)(torch.rand(4, 23, 8, 8)).shape == (4, 10, 4, 4)
    assert shapes(models.densenet(), 96)[-1] == (10,)


@pytest.mark.parametrize("name", sorted(d2l.MODELS))
def test_every_registered_model_runs_at_its_recipe_size(name):
    recipe = d2l.MODELS[name]
    net = recipe.build()
    size = recipe.resize or 28
    assert net(torch.rand(2, 1, size, size)).shape == (2, 10)


def test_scratch_batch_norm_matches_pytorch():
    torch.manual_seed(0)
    ours, theirs = models.bn_lenet_scratch(), models.bn_lenet()
    # same parameters: copy the concise network's weights into the scratch one
    for a, b in zip(ours, theirs, strict=True):
        if isinstance(b, (nn.BatchNorm1d, nn.BatchNorm2d)):
            a.gamma.data.copy_(b.weight.view_as(a.gamma))
            a.beta.data.copy_(b.bias.view_as(a.beta))
        elif isinstance(b, (nn.Conv2d, nn.Linear)):
            a.load_state_dict(b.state_dict())
    X = torch.rand(16, 1, 28, 28)
    assert torch.allclose(ours(X), theirs(X), atol=1e-5)  # training mode: batch statistics
    # the moving statistics are buffers: they follow .to(device) and live in the state_dict
    assert ours[1].moving_mean.shape == (1, 6, 1, 1)
    assert {"1.moving_mean", "1.moving_var"} <= set(ours.state_dict())


def test_batch_norm_function_modes():
    X = torch.rand(8, 3, 4, 4) * 5 + 2
    g, b = torch.ones(1, 3, 1, 1), torch.zeros(1, 3, 1, 1)
    mm, mv = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
    Y, mm2, mv2 = d2l.batch_norm(X, g, b, mm, mv, 1e-5, 0.9)
    assert torch.allclose(Y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(mm2, 0.1 * X.mean(dim=(0, 2, 3), keepdim=True))
    with torch.no_grad():
        Y_eval, mm3, _ = d2l.batch_norm(X, g, b, mm2, mv2, 1e-5, 0.9)
    assert torch.equal(mm3, mm2)  # prediction mode leaves the moving averages alone
    assert torch.allclose(Y_eval, (X - mm2) / torch.sqrt(mv2 + 1e-5))
