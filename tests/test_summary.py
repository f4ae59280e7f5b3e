"""Shape printers: the table, the book's form, and the failing-layer message."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import d2lcnn as d2l
from d2lcnn import models


def test_lenet_table_against_hand_counts(capsys):
    s = d2l.layer_summary(models.lenet(), (1, 1, 28, 28))
    # conv1 6*25+6, conv2 16*6*25+16, fc 400*120+120, 120*84+84, 84*10+10
    assert s.total_params == 156 + 2416 + 48120 + 10164 + 850 == 61706
    # multiply-adds: 28*28*6*25 + 10*10*16*150 + 400*120 + 120*84 + 84*10, plus (torchinfo's
    # convention) one addition per output element for the biases: 6*28*28 + 16*10*10 + 120+84+10
    assert s.mult_adds == 117600 + 240000 + 48000 + 10080 + 840 + 4704 + 1600 + 214
    shapes = [r[2][1:] for r in s.rows if r[1] != "Sigmoid"]
    assert shapes == [
        (6, 28, 28),
        (6, 14, 14),
        (16, 10, 10),
        (16, 5, 5),
        (400,),
        (120,),
        (84,),
        (10,),
    ]
    printed = capsys.readouterr().out
    assert "Total parameters: 61,706" in printed and "16 x 5 x 5" in printed
    assert s.table() in printed


def test_alexnet_parameter_count_by_hand():
    s = d2l.layer_summary(models.alexnet(), (1, 1, 224, 224), show=False)
    convs = (
        (96 * 121 + 96)
        + (256 * 96 * 25 + 256)
        + (384 * 256 * 9 + 384)
        + (384 * 384 * 9 + 384)
        + (256 * 384 * 9 + 256)
    )
    linears = (6400 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 10 + 10)
    assert s.total_params == convs + linears == 46_764_746


def test_custom_blocks_and_depth_two():
    net = models.resnet18()
    top = d2l.layer_summary(net, (1, 1, 96, 96), show=False)
    inside = d2l.layer_summary(net, (1, 1, 96, 96), depth=2, show=False)
    assert [r[0] for r in top.rows] == [str(i) for i in range(8)]
    assert "1.0" in [r[0] for r in inside.rows] and "Residual" in [r[1] for r in inside.rows]
    # a block comes before the layers inside it
    names = [r[0] for r in inside.rows]
    assert names.index("1") < names.index("1.0")
    assert top.total_params == inside.total_params == sum(p.numel() for p in net.parameters())


def test_book_form_prints_one_line_per_layer(capsys):
    out = d2l.print_shapes(models.lenet(), (1, 1, 28, 28))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Conv2d output shape:\t torch.Size([1, 6, 28, 28])"
    assert lines[-1] == "Linear output shape:\t torch.Size([1, 10])"
    assert len(lines) == 12 and out.shape == (1, 10)


def test_failing_layer_is_named_with_shapes():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(300, 10))
    with pytest.raises(d2l.LayerError) as err:
        d2l.layer_summary(net, (1, 1, 28, 28))
    msg = str(err.value)
    assert msg.startswith("layer 2 (Linear(in_features=300")
    assert "input of shape (1, 2704)" in msg
    assert "expects 300 features in the last dimension, got 2704" in msg


def test_failing_layer_inside_a_block_and_missing_flatten():
    net = nn.Sequential(nn.Sequential(nn.Conv2d(3, 8, 3)), nn.Linear(8, 2))
    with pytest.raises(d2l.LayerError, match=r"'0\.0' .*\(N, 3, \.\.\.\) with 3 channels, got 1"):
        d2l.print_shapes(net, (1, 1, 8, 8))
    with pytest.raises(d2l.LayerError, match="did you forget nn.Flatten"):
        d2l.print_shapes(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Linear(72, 2)), (1, 1, 8, 8))


def test_summary_keeps_training_mode_and_weights():
    net = models.bn_lenet()
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    d2l.layer_summary(net, torch.rand(4, 1, 28, 28), show=False)
    assert net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
