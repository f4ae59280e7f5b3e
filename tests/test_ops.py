"""From-scratch operations, checked against the book's numbers and against PyTorch."""

from __future__ import annotations

import itertools

import torch
from torch import nn

import d2lcnn as d2l


def test_corr2d_book_example():
    X = torch.arange(9.0).reshape(3, 3)
    K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    assert d2l.corr2d(X, K).tolist() == [[19.0, 25.0], [37.0, 43.0]]


def test_multi_channel_and_1x1():
    X = torch.stack([torch.arange(9.0).reshape(3, 3), torch.arange(1.0, 10.0).reshape(3, 3)])
    K = torch.stack(
        [torch.tensor([[0.0, 1.0], [2.0, 3.0]]), torch.tensor([[1.0, 2.0], [3.0, 4.0]])]
    )
    assert d2l.corr2d_multi_in(X, K).tolist() == [[56.0, 72.0], [104.0, 120.0]]
    K3 = torch.stack((K, K + 1, K + 2), 0)
    assert K3.shape == (3, 2, 2, 2) and d2l.corr2d_multi_in_out(X, K3).shape == (3, 2, 2)
    torch.manual_seed(0)
    X, K = torch.normal(0, 1, (3, 3, 3)), torch.normal(0, 1, (2, 3, 1, 1))
    assert (d2l.corr2d_multi_in_out_1x1(X, K) - d2l.corr2d_multi_in_out(X, K)).abs().max() < 1e-6


def test_pool2d():
    X = torch.arange(9.0).reshape(3, 3)
    assert d2l.pool2d(X, (2, 2)).tolist() == [[4.0, 5.0], [7.0, 8.0]]
    assert d2l.pool2d(X, (2, 2), "avg").tolist() == [[2.0, 3.0], [5.0, 6.0]]


def test_output_size_formula_matches_pytorch():
    for n, k, p, s in itertools.product((5, 8, 11), (1, 2, 3, 5), (0, 1, 2), (1, 2, 3)):
        if 2 * p > k or k > n + 2 * p:
            continue
        out = nn.Conv2d(1, 1, k, stride=s, padding=p)(torch.zeros(1, 1, n, n)).shape[-1]
        assert d2l.conv_output_size(n, k, p, s) == out, (n, k, p, s)
        for ceil in (False, True):
            pooled = nn.MaxPool2d(k, s, p, ceil_mode=ceil)(torch.zeros(1, 1, n, n)).shape[-1]
            assert d2l.conv_output_size(n, k, p, s, ceil=ceil) == pooled, (n, k, p, s, ceil)
