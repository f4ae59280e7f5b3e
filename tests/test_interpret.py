"""d2lcnn's attribution maps and attacks (chapter 14) against Captum and against their definitions.

Tolerances. The comparisons with Captum run in float64 on a small network with batch
normalization: both sides compute the same sums of the same gradients, only possibly in another
order, so they differ by rounding, a few units of float64's 2.2e-16 per operation over at most a
few thousand operations (about 1e-13 relative). ``rtol=1e-9, atol=1e-12`` leaves a wide margin
for that and none for a different method: using the trapezoid instead of the midpoint rule in
integrated gradients, the sum instead of the mean of Grad-CAM's gradients, or the signed instead
of the absolute gradient changes the maps by 1e-3 or more relative (``test_a_different_method_is_
caught`` checks that these tolerances do reject them). Captum's ``Occlusion`` alone returns
float32 (it casts the summed score drops to float32 before dividing by the window count), so
occlusion is compared at float32's precision: ``rtol=1e-6`` (float32's epsilon is 1.2e-7; the
cast and the division round twice), ``atol`` 1e-6 of the map's largest value.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import d2lcnn as d2l

captum_attr = pytest.importorskip("captum.attr")

RTOL, ATOL = 1e-9, 1e-12


def small_net(seed: int = 0) -> nn.Sequential:
    """(B, 1, 28, 28) -> (B, 10): two convolutions with batch norm, a 7x7 last stage."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, kernel_size=3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, kernel_size=3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.MaxPool2d(2),                                    # index 7: (B, 16, 7, 7)
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )  # fmt: skip


@pytest.fixture(scope="module")
def data():
    train_iter, test_iter = d2l.load_data_fashion_mnist(128, quick=True)
    X, y = next(iter(test_iter))
    return train_iter, X[:16], y[:16]


def trained(train_iter, seed: int, epochs: int = 3) -> nn.Sequential:
    net = small_net(seed)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for _ in range(epochs):
        for X, y in train_iter:
            opt.zero_grad()
            nn.functional.cross_entropy(net(X), y).backward()
            opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def nets(data):
    train_iter = data[0]
    torch.manual_seed(0)
    return trained(train_iter, 0), trained(train_iter, 1)


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, rtol=RTOL, atol=ATOL)


@pytest.fixture(scope="module")
def float64(nets, data):
    net = small_net(0)
    net.load_state_dict(nets[0].state_dict())
    net = net.double().eval()
    X = data[1][:4].double()  # four images: float64 gradients are slow
    with torch.no_grad():
        target = net(X).argmax(1)
    return net, X, target


def test_saliency_equals_captum(float64):
    net, X, target = float64
    theirs = captum_attr.Saliency(net).attribute(X, target=target, abs=True)
    assert close(d2l.saliency(net, X, target), theirs)


def test_integrated_gradients_equals_captum_and_is_complete(float64):
    net, X, target = float64
    mine = d2l.integrated_gradients(net, X, target, baseline=0.0, steps=32)
    theirs = captum_attr.IntegratedGradients(net).attribute(
        X, baselines=torch.zeros_like(X), target=target, n_steps=32, method="riemann_middle")
    assert close(mine, theirs)
    # completeness: the attributions add up to f(x) - f(0), up to the quadrature's error
    with torch.no_grad():
        gap = (net(X) - net(torch.zeros_like(X))).gather(1, target[:, None]).squeeze(1)
    fine = d2l.integrated_gradients(net, X, target, steps=128).flatten(1).sum(1)
    assert torch.allclose(fine, gap, rtol=0.02, atol=0.02 * gap.abs().max().item())


def test_grad_cam_equals_captum(float64):
    net, X, target = float64
    layer = net[7]
    theirs = captum_attr.LayerGradCam(net, layer).attribute(X, target=target,
                                                            relu_attributions=True)
    mine = d2l.grad_cam(net, layer, X, target)
    assert mine.shape == (len(X), 1, 7, 7) and close(mine, theirs)
    assert d2l.grad_cam(net, layer, X, target, size=28).shape == (len(X), 1, 28, 28)


def test_occlusion_equals_captum(float64):
    net, X, target = float64
    theirs = captum_attr.Occlusion(net).attribute(
        X, target=target, sliding_window_shapes=(1, 4, 4), strides=(1, 2, 2), baselines=0.5)
    mine = d2l.occlusion(net, X, target, window=4, stride=2, value=0.5)
    assert theirs.dtype == torch.float32  # Captum's result, see the module's docstring
    assert mine.shape == theirs.shape and torch.allclose(
        mine.float(), theirs, rtol=1e-6, atol=1e-6 * mine.abs().max().item())


def test_a_different_method_is_caught(float64):
    """The tolerances reject what a wrong implementation would compute."""
    net, X, target = float64
    signed = captum_attr.Saliency(net).attribute(X, target=target, abs=False)
    assert not close(d2l.saliency(net, X, target), signed)
    trapezoid = captum_attr.IntegratedGradients(net).attribute(
        X, target=target, n_steps=32, method="riemann_trapezoid")
    assert not close(d2l.integrated_gradients(net, X, target, steps=32), trapezoid)
    summed = captum_attr.LayerGradCam(net, net[7]).attribute(X, target=target) * 49
    assert not close(d2l.grad_cam(net, net[7], X, target), summed)


def test_maps_leave_mode_and_gradients_alone(float64):
    net, X, target = float64
    net.train()
    d2l.saliency(net, X, target)
    d2l.grad_cam(net, net[7], X, target)
    assert net.training and all(p.grad is None for p in net.parameters())
    net.eval()


def test_randomization_check_separates_trained_from_random_weights(nets, data):
    """Adebayo et al. (2018): a map that explains the network changes when its weights are
    replaced by random ones. Saliency and Grad-CAM maps of a trained network correlate weakly
    with a random network's (and less than with a second trained network's); a map that ignores
    the weights (here the image itself) correlates perfectly, and the check flags it."""
    net_a, net_b = nets
    X, target = data[1], data[2]
    random_net = small_net(2).eval()
    methods = {
        "saliency": d2l.saliency,
        "grad-cam": lambda n, X, t: d2l.grad_cam(n, n[7], X, t, size=28),
        "the image": lambda n, X, t: X + 0 * n(X).sum(),  # depends on no weight
    }
    for name, method in methods.items():
        a, b, r = (method(n, X, target).detach() for n in (net_a, net_b, random_net))
        trained_vs_trained = d2l.rank_correlation(a, b).mean().item()
        trained_vs_random = d2l.rank_correlation(a, r).mean().item()
        if name == "the image":
            assert trained_vs_random > 0.99
        else:
            assert trained_vs_random < 0.5 and trained_vs_trained > trained_vs_random, (
                name, trained_vs_trained, trained_vs_random)


def test_rank_correlation():
    a = torch.arange(10.0).view(1, 10)
    assert d2l.rank_correlation(a, a ** 3).item() == pytest.approx(1.0)  # monotone: 1
    assert d2l.rank_correlation(a, -a).item() == pytest.approx(-1.0)


def accuracy(net, X, y) -> float:
    with torch.no_grad():
        return (net(X).argmax(1) == y).float().mean().item()


def test_fgsm_and_pgd(nets, data):
    net, X, y = nets[0], data[1], data[2]
    _, test_iter = d2l.load_data_fashion_mnist(512, quick=True)
    X, y = next(iter(test_iter))
    assert torch.equal(d2l.fgsm(net, X, y, 0.0), X)  # eps = 0 changes nothing
    assert torch.equal(d2l.pgd(net, X, y, 0.0), X)
    clean = accuracy(net, X, y)
    accs = [accuracy(net, d2l.fgsm(net, X, y, eps), y) for eps in (0.0, 0.02, 0.05, 0.1)]
    assert accs[0] == clean
    assert all(later < earlier for earlier, later in zip(accs, accs[1:], strict=False)), accs
    pgd_accs = []
    for eps in (0.02, 0.1):
        X_adv = d2l.pgd(net, X, y, eps, steps=5)
        assert (X_adv - X).abs().max() <= eps + 1e-6 and X_adv.min() >= 0 and X_adv.max() <= 1
        pgd_accs.append(accuracy(net, X_adv, y))
    assert clean > pgd_accs[0] > pgd_accs[1], (clean, pgd_accs)
