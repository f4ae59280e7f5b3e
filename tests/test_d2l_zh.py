"""The code of zh.d2l.ai (《动手学深度学习》, d2l-zh 2.0, PyTorch tab) on ``import d2lcnn as d2l``.

One test per section of 卷积神经网络 (conv-layer, padding-and-strides, channels, pooling, lenet),
现代卷积神经网络 (alexnet, vgg, nin, googlenet, batch-norm, resnet, densenet) and the multi-GPU
sections of 计算性能 (multiple-gpus, multiple-gpus-concise). Each makes the calls its section
makes, through the names d2l-zh's ``torch.py`` defines: the framework aliases (``d2l.tensor``,
``d2l.size``, ``d2l.reshape``, ...) and the chapter functions (``d2l.train_ch6``,
``d2l.Residual``, ``d2l.resnet18``, ``d2l.split_batch``, ``d2l.sgd``), and checks what the
section shows against something computed independently (PyTorch's own operations, the shapes the
book prints). Networks are written as the sections write them. Training runs on real
Fashion-MNIST in quick mode; the big networks train on a 16- to 24-image slice of it for one
epoch
(a comment per test says so), to keep each test within a few seconds on a 2-core CPU.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import d2lcnn as d2l


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setenv("D2LCNN_QUICK", "1")


def shapes_printed(net, X, capsys):
    """The book's shape loop: ``print(layer.__class__.__name__, 'output shape:\\t', X.shape)``;
    returns [(name, shape), ...] read back from what was printed."""
    capsys.readouterr()
    for layer in net:
        X = layer(X)
        print(layer.__class__.__name__, "output shape:\t", X.shape)
    out = []
    for line in capsys.readouterr().out.splitlines():
        m = re.match(r"^(\w+) output shape:\t torch\.Size\(\[([\d, ]*)\]\)$", line)
        assert m, line
        out.append((m[1], tuple(int(s) for s in m[2].split(", "))))
    return out


def real_slice(batch_size, resize=None, n=24):
    """``n`` real Fashion-MNIST training and test images (a seeded random pick, all classes
    likely), as the book's iterators: ``d2l.load_data_fashion_mnist`` then a slice of it."""
    train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size, resize=resize)
    g = torch.Generator().manual_seed(0)
    out = []
    for it in (train_iter, test_iter):
        idx = torch.randperm(len(it.labels), generator=g)[:n]
        out.append(d2l.ImageBatches(it.images[idx], it.labels[idx], batch_size, resize=resize))
    return out


def check_trained(history, side, train_iter):
    assert len(history) == 1
    e = history.final
    assert math.isfinite(e.train_loss) and 0.0 <= e.train_acc <= 1.0 and 0.0 <= e.test_acc <= 1.0
    assert next(iter(train_iter))[0].shape[-2:] == (side, side)


# --- 6.2 图像卷积 (conv-layer) ----------------------------------------------------------------------


def corr2d(X, K):  # the section's corr2d, written with d2l's aliases
    h, w = K.shape
    Y = d2l.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = d2l.reduce_sum(X[i : i + h, j : j + w] * K)
    return Y


def test_conv_layer():
    X = d2l.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    K = d2l.tensor([[0.0, 1.0], [2.0, 3.0]])
    assert isinstance(X, torch.Tensor) and X.dtype == torch.float32
    torch.testing.assert_close(corr2d(X, K), F.conv2d(X[None, None], K[None, None])[0, 0])
    assert torch.equal(corr2d(X, K), d2l.corr2d(X, K))

    X = d2l.ones((6, 8))
    X[:, 2:6] = 0
    K = d2l.tensor([[1.0, -1.0]])
    Y = corr2d(X, K)
    assert Y.shape == (6, 7) and Y[:, 1].eq(1).all() and Y[:, 5].eq(-1).all()
    assert Y.abs().sum() == 12  # only the two edges
    assert torch.equal(d2l.transpose(X), X.T)
    assert corr2d(d2l.transpose(X), K).abs().sum() == 0  # the kernel sees vertical edges only

    # learning the kernel from X and Y, as the section does
    torch.manual_seed(0)
    conv2d = nn.Conv2d(1, 1, kernel_size=(1, 2), bias=False)
    X, Y = d2l.reshape(X, (1, 1, 6, 8)), d2l.reshape(Y, (1, 1, 6, 7))
    assert X.shape == (1, 1, 6, 8) and Y.shape == (1, 1, 6, 7)
    for _ in range(10):
        Y_hat = conv2d(X)
        l = (Y_hat - Y) ** 2  # noqa: E741 (the book's name)
        conv2d.zero_grad()
        l.sum().backward()
        conv2d.weight.data[:] -= 3e-2 * conv2d.weight.grad
    torch.testing.assert_close(d2l.reshape(conv2d.weight.data, (1, 2)), K, atol=0.1, rtol=0)


# --- 6.3 填充和步幅 (padding-and-strides) ------------------------------------------------------------


def comp_conv2d(conv2d, X):
    X = X.reshape((1, 1) + X.shape)
    Y = conv2d(X)
    return Y.reshape(Y.shape[2:])


def test_padding_and_strides():
    # The section calls no d2l name besides the import; its shapes follow the formula
    # floor((n - k + p_total + s) / s), which d2l.conv_output_size computes.
    X = torch.rand(size=(8, 8))
    cases = [  # (layer, the shape the book prints)
        (nn.Conv2d(1, 1, kernel_size=3, padding=1), (8, 8)),
        (nn.Conv2d(1, 1, kernel_size=(5, 3), padding=(2, 1)), (8, 8)),
        (nn.Conv2d(1, 1, kernel_size=3, padding=1, stride=2), (4, 4)),
        (nn.Conv2d(1, 1, kernel_size=(3, 5), padding=(0, 1), stride=(3, 4)), (2, 2)),
    ]
    for conv, shape in cases:
        assert comp_conv2d(conv, X).shape == shape
        k, p, s = conv.kernel_size, conv.padding, conv.stride
        assert shape == tuple(d2l.conv_output_size(8, k[i], p[i], s[i]) for i in range(2))


# --- 6.4 多输入多输出通道 (channels) --------------------------------------------------------------------


def corr2d_multi_in(X, K):
    return sum(d2l.corr2d(x, k) for x, k in zip(X, K, strict=True))


def corr2d_multi_in_out(X, K):
    return d2l.stack([corr2d_multi_in(X, k) for k in K], 0)


def corr2d_multi_in_out_1x1(X, K):
    c_i, h, w = X.shape
    c_o = K.shape[0]
    X = d2l.reshape(X, (c_i, h * w))
    K = d2l.reshape(K, (c_o, c_i))
    Y = d2l.matmul(K, X)
    return d2l.reshape(Y, (c_o, h, w))


def test_channels():
    X = d2l.tensor([[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]],
                    [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]])  # fmt: skip
    K = d2l.tensor([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]]])
    assert torch.equal(corr2d_multi_in(X, K), d2l.tensor([[56.0, 72.0], [104.0, 120.0]]))
    K = d2l.stack((K, K + 1, K + 2), 0)
    assert K.shape == (3, 2, 2, 2)
    torch.testing.assert_close(corr2d_multi_in_out(X, K), F.conv2d(X[None], K)[0])

    torch.manual_seed(0)
    X = d2l.normal(0, 1, (3, 3, 3))
    K = d2l.normal(0, 1, (2, 3, 1, 1))
    assert X.shape == (3, 3, 3) and K.shape == (2, 3, 1, 1)
    Y1 = corr2d_multi_in_out_1x1(X, K)
    Y2 = corr2d_multi_in_out(X, K)
    assert float(d2l.reduce_sum(d2l.abs(Y1 - Y2))) < 1e-6
    torch.testing.assert_close(Y1, F.conv2d(X[None], K)[0])


# --- 6.5 汇聚层 (pooling) ---------------------------------------------------------------------------


def pool2d(X, pool_size, mode="max"):
    p_h, p_w = pool_size
    Y = d2l.zeros((X.shape[0] - p_h + 1, X.shape[1] - p_w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            window = X[i : i + p_h, j : j + p_w]
            Y[i, j] = window.max() if mode == "max" else window.mean()
    return Y


def test_pooling():
    X = d2l.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    assert torch.equal(pool2d(X, (2, 2)), d2l.tensor([[4.0, 5.0], [7.0, 8.0]]))
    assert torch.equal(pool2d(X, (2, 2), "avg"), d2l.tensor([[2.0, 3.0], [5.0, 6.0]]))
    torch.testing.assert_close(pool2d(X, (2, 2), "avg"), F.avg_pool2d(X[None], 2, stride=1)[0])

    X = d2l.reshape(d2l.arange(16, dtype=d2l.float32), (1, 1, 4, 4))
    assert X.dtype == torch.float32 and X[0, 0, 3, 3] == 15
    assert torch.equal(nn.MaxPool2d(3)(X), d2l.tensor([[[[10.0]]]]))
    Y = nn.MaxPool2d(3, padding=1, stride=2)(X)
    assert torch.equal(Y, d2l.tensor([[[[5.0, 7.0], [13.0, 15.0]]]]))
    Y = nn.MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1))(X)
    assert torch.equal(Y, d2l.tensor([[[[5.0, 7.0], [13.0, 15.0]]]]))

    X = d2l.concat((X, X + 1), 1)
    assert X.shape == (1, 2, 4, 4)
    Y = nn.MaxPool2d(3, padding=1, stride=2)(X)
    assert torch.equal(Y[0, 1], Y[0, 0] + 1)  # pooling works per channel


# --- 6.6 卷积神经网络（LeNet） ------------------------------------------------------------------------


def lenet_zh():
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10))  # fmt: skip


def evaluate_accuracy_gpu_zh(net, data_iter, device=None):  # the section's, with d2l.size
    if isinstance(net, nn.Module):
        net.eval()
        if not device:
            device = next(iter(net.parameters())).device
    metric = d2l.Accumulator(2)
    with torch.no_grad():
        for X, y in data_iter:
            X, y = X.to(device), y.to(device)
            metric.add(d2l.accuracy(net(X), y), d2l.size(y))
    return metric[0] / metric[1]


def train_ch6_zh(net, train_iter, test_iter, num_epochs, lr, device):  # the section's loop
    def init_weights(m):
        if type(m) == nn.Linear or type(m) == nn.Conv2d:  # noqa: E721 (the book's test)
            nn.init.xavier_uniform_(m.weight)

    net.apply(init_weights)
    net.to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss = nn.CrossEntropyLoss()
    animator = d2l.Animator(xlabel="epoch", xlim=[1, num_epochs],
                            legend=["train loss", "train acc", "test acc"])  # fmt: skip
    timer, num_batches = d2l.Timer(), len(train_iter)
    for epoch in range(num_epochs):
        metric = d2l.Accumulator(3)
        net.train()
        for i, (X, y) in enumerate(train_iter):
            timer.start()
            optimizer.zero_grad()
            X, y = X.to(device), y.to(device)
            y_hat = net(X)
            l = loss(y_hat, y)  # noqa: E741
            l.backward()
            optimizer.step()
            with torch.no_grad():
                metric.add(l * X.shape[0], d2l.accuracy(y_hat, y), X.shape[0])
            timer.stop()
            train_l, train_acc = metric[0] / metric[2], metric[1] / metric[2]
            if (i + 1) % (num_batches // 5) == 0 or i == num_batches - 1:
                animator.add(epoch + (i + 1) / num_batches, (train_l, train_acc, None))
        test_acc = evaluate_accuracy_gpu_zh(net, test_iter)
        animator.add(epoch + 1, (None, None, test_acc))
    return train_l, train_acc, test_acc, metric[2] * num_epochs / timer.sum(), animator


def test_lenet(capsys):
    net = lenet_zh()
    X = torch.rand(size=(1, 1, 28, 28), dtype=torch.float32)
    assert shapes_printed(net, X, capsys) == [
        ("Conv2d", (1, 6, 28, 28)), ("Sigmoid", (1, 6, 28, 28)), ("AvgPool2d", (1, 6, 14, 14)),
        ("Conv2d", (1, 16, 10, 10)), ("Sigmoid", (1, 16, 10, 10)), ("AvgPool2d", (1, 16, 5, 5)),
        ("Flatten", (1, 400)), ("Linear", (1, 120)), ("Sigmoid", (1, 120)),
        ("Linear", (1, 84)), ("Sigmoid", (1, 84)), ("Linear", (1, 10)),
    ]  # fmt: skip
    # the book: batch 256, all of Fashion-MNIST, 10 epochs; here 80 images, batch 16, one epoch
    # (5 batches: the book's loop plots every len(train_iter) // 5 batches)
    train_iter, test_iter = real_slice(16, n=80)
    torch.manual_seed(0)
    train_l, train_acc, test_acc, speed, animator = train_ch6_zh(
        net, train_iter, test_iter, 1, 0.9, d2l.try_gpu()
    )
    assert math.isfinite(train_l) and 0 <= train_acc <= 1 and speed > 0
    assert len(animator.X[0]) >= 5  # the plot was updated 5 times in the epoch, as in the book
    # d2l.size counts the labels; the section's evaluation equals the package's
    assert d2l.size(torch.zeros(3, 4)) == 12
    assert test_acc == d2l.evaluate_accuracy_gpu(net, test_iter)
    logits = torch.cat([net(X) for X, _ in test_iter])
    labels = torch.cat([y for _, y in test_iter])
    assert test_acc == pytest.approx((logits.argmax(1) == labels).float().mean().item())
    # and the package's train_ch6, with the book's call
    history = d2l.train_ch6(lenet_zh(), train_iter, test_iter, 1, 0.9, d2l.try_gpu())
    check_trained(history, 28, train_iter)


def test_classic_functions_the_sections_call():
    # d2l.sgd (the multi-GPU section's update) is one plain SGD step on the mean gradient.
    torch.manual_seed(0)
    w = torch.randn(5, 3, requires_grad=True)
    w_ref = w.detach().clone().requires_grad_()
    X = torch.randn(8, 5)
    (X @ w).pow(2).sum().backward()
    (X @ w_ref).pow(2).sum().div(8).backward()
    opt = torch.optim.SGD([w_ref], lr=0.1)
    opt.step()
    d2l.sgd([w], 0.1, 8)
    torch.testing.assert_close(w, w_ref)
    assert torch.equal(w.grad, torch.zeros_like(w))  # zeroed for the next batch

    # d2l.train_epoch_ch3 (the LeNet section's point of comparison): with a zero step the model
    # stays as it is, so the loss and accuracy it returns are those of the model on the data.
    train_iter, _ = d2l.load_data_fashion_mnist(256)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    loss = nn.CrossEntropyLoss(reduction="none")
    l0, acc = d2l.train_epoch_ch3(net, train_iter, loss, lambda n: d2l.sgd(net.parameters(), 0, n))
    batches = list(train_iter)  # one pass: each pass reshuffles
    X, y = torch.cat([X for X, _ in batches]), torch.cat([y for _, y in batches])
    with torch.no_grad():
        assert l0 == pytest.approx(F.cross_entropy(net(X), y).item(), rel=1e-5)
        assert acc == pytest.approx((net(X).argmax(1) == y).float().mean().item())
    assert d2l.evaluate_accuracy(net, train_iter) == pytest.approx(acc)
    l2, _ = d2l.train_epoch_ch3(net, train_iter, loss, torch.optim.SGD(net.parameters(), lr=0.1))
    assert l2 < l0  # an optimizer updater trains


def test_aliases_are_d2l_torch_py():
    # d2l-zh's torch.py, "Alias defined in config.ini": framework functions and tensor methods.
    x = torch.tensor([[1.0, -2.0], [3.0, 4.0]])
    assert d2l.nn_Module is nn.Module and d2l.float32 is torch.float32 and d2l.int32 is torch.int32
    for name, fn in [("ones", torch.ones), ("zeros", torch.zeros), ("tensor", torch.tensor),
                     ("arange", torch.arange), ("meshgrid", torch.meshgrid), ("sin", torch.sin),
                     ("sinh", torch.sinh), ("cos", torch.cos), ("cosh", torch.cosh),
                     ("tanh", torch.tanh), ("linspace", torch.linspace), ("exp", torch.exp),
                     ("log", torch.log), ("normal", torch.normal), ("rand", torch.rand),
                     ("randn", torch.randn), ("matmul", torch.matmul), ("concat", torch.cat),
                     ("stack", torch.stack), ("abs", torch.abs), ("eye", torch.eye)]:  # fmt: skip
        assert getattr(d2l, name) is fn, name
    assert d2l.size(x) == 4 and (d2l.numpy(x.requires_grad_()) == x.detach().numpy()).all()
    assert d2l.reshape(x, (4,)).tolist() == [1.0, -2.0, 3.0, 4.0]
    assert d2l.to(x, torch.float64).dtype == torch.float64
    assert d2l.reduce_sum(x).item() == 6.0 and d2l.reduce_sum(x, axis=0).tolist() == [4.0, 2.0]
    assert d2l.reduce_mean(x, axis=1).tolist() == [-0.5, 3.5]
    assert d2l.argmax(x, axis=1).tolist() == [0, 1]
    assert d2l.astype(x, torch.int64).dtype == torch.int64
    assert d2l.transpose(x).tolist() == [[1.0, 3.0], [-2.0, 4.0]]
    assert set(d2l.aliases.__all__) <= set(d2l.__all__)


# --- 7.1 深度卷积神经网络（AlexNet） ----------------------------------------------------------------


def test_alexnet(capsys):
    net = nn.Sequential(
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
        nn.Linear(4096, 10))  # fmt: skip
    X = torch.randn(1, 1, 224, 224)
    shapes = shapes_printed(net, X, capsys)
    assert [s for n, s in shapes if n in ("Conv2d", "MaxPool2d")] == [
        (1, 96, 54, 54), (1, 96, 26, 26), (1, 256, 26, 26), (1, 256, 12, 12),
        (1, 384, 12, 12), (1, 384, 12, 12), (1, 256, 12, 12), (1, 256, 5, 5),
    ]  # fmt: skip
    assert shapes[13] == ("Flatten", (1, 6400)) and shapes[-1] == ("Linear", (1, 10))
    # the book: batch 128, resize=224, lr 0.01, 10 epochs; here 16 images, batch 8, one epoch
    train_iter, test_iter = real_slice(8, resize=224, n=16)
    history = d2l.train_ch6(net, train_iter, test_iter, 1, 0.01, d2l.try_gpu())
    check_trained(history, 224, train_iter)


# --- 7.2 使用块的网络（VGG） -----------------------------------------------------------------------


def vgg_block(num_convs, in_channels, out_channels):
    layers = []
    for _ in range(num_convs):
        layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
        layers.append(nn.ReLU())
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def vgg(conv_arch):
    conv_blks = []
    in_channels = 1
    for num_convs, out_channels in conv_arch:
        conv_blks.append(vgg_block(num_convs, in_channels, out_channels))
        in_channels = out_channels
    return nn.Sequential(
        *conv_blks, nn.Flatten(),
        nn.Linear(out_channels * 7 * 7, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 10))  # fmt: skip


def test_vgg(capsys):
    conv_arch = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))
    ratio = 4
    small_conv_arch = [(pair[0], pair[1] // ratio) for pair in conv_arch]
    net = vgg(small_conv_arch)  # the section prints the full net; the shapes differ in channels
    X = torch.randn(size=(1, 1, 224, 224))
    assert shapes_printed(net, X, capsys) == [
        ("Sequential", (1, 16, 112, 112)), ("Sequential", (1, 32, 56, 56)),
        ("Sequential", (1, 64, 28, 28)), ("Sequential", (1, 128, 14, 14)),
        ("Sequential", (1, 128, 7, 7)), ("Flatten", (1, 6272)), ("Linear", (1, 4096)),
        ("ReLU", (1, 4096)), ("Dropout", (1, 4096)), ("Linear", (1, 4096)), ("ReLU", (1, 4096)),
        ("Dropout", (1, 4096)), ("Linear", (1, 10)),
    ]  # fmt: skip
    # the book: lr 0.05, batch 128, resize=224, 10 epochs; here 16 images, batch 8, one epoch
    train_iter, test_iter = real_slice(8, resize=224, n=16)
    history = d2l.train_ch6(net, train_iter, test_iter, 1, 0.05, d2l.try_gpu())
    check_trained(history, 224, train_iter)


# --- 7.3 网络中的网络（NiN） -----------------------------------------------------------------------


def nin_block(in_channels, out_channels, kernel_size, strides, padding):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, strides, padding), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU())  # fmt: skip


def test_nin(capsys):
    net = nn.Sequential(
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
    X = torch.rand(size=(1, 1, 224, 224))
    assert [s for _, s in shapes_printed(net, X, capsys)] == [
        (1, 96, 54, 54), (1, 96, 26, 26), (1, 256, 26, 26), (1, 256, 12, 12), (1, 384, 12, 12),
        (1, 384, 5, 5), (1, 384, 5, 5), (1, 10, 5, 5), (1, 10, 1, 1), (1, 10),
    ]  # fmt: skip
    # the book: lr 0.1, batch 128, resize=224; 16 images at 96x96 (global pooling takes any size)
    train_iter, test_iter = real_slice(8, resize=96, n=16)
    history = d2l.train_ch6(net, train_iter, test_iter, 1, 0.1, d2l.try_gpu())
    check_trained(history, 96, train_iter)


# --- 7.4 含并行连结的网络（GoogLeNet） -----------------------------------------------------------------


class Inception(nn.Module):
    def __init__(self, in_channels, c1, c2, c3, c4, **kwargs):
        super().__init__(**kwargs)
        self.p1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        self.p2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.p3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.p4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)

    def forward(self, x):
        p1 = F.relu(self.p1_1(x))
        p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
        p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
        p4 = F.relu(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)


def test_googlenet(capsys):
    b1 = nn.Sequential(nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3), nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))  # fmt: skip
    b2 = nn.Sequential(nn.Conv2d(64, 64, kernel_size=1), nn.ReLU(),
                       nn.Conv2d(64, 192, kernel_size=3, padding=1), nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))  # fmt: skip
    b3 = nn.Sequential(Inception(192, 64, (96, 128), (16, 32), 32),
                       Inception(256, 128, (128, 192), (32, 96), 64),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))  # fmt: skip
    b4 = nn.Sequential(Inception(480, 192, (96, 208), (16, 48), 64),
                       Inception(512, 160, (112, 224), (24, 64), 64),
                       Inception(512, 128, (128, 256), (24, 64), 64),
                       Inception(512, 112, (144, 288), (32, 64), 64),
                       Inception(528, 256, (160, 320), (32, 128), 128),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))  # fmt: skip
    b5 = nn.Sequential(Inception(832, 256, (160, 320), (32, 128), 128),
                       Inception(832, 384, (192, 384), (48, 128), 128),
                       nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())  # fmt: skip
    net = nn.Sequential(b1, b2, b3, b4, b5, nn.Linear(1024, 10))
    X = torch.rand(size=(1, 1, 96, 96))
    assert [s for _, s in shapes_printed(net, X, capsys)] == [
        (1, 64, 24, 24),
        (1, 192, 12, 12),
        (1, 480, 6, 6),
        (1, 832, 3, 3),
        (1, 1024),
        (1, 10),
    ]
    # the book: lr 0.1, batch 128, resize=96; here 16 images at 32x32, one epoch
    train_iter, test_iter = real_slice(8, resize=32, n=16)
    history = d2l.train_ch6(net, train_iter, test_iter, 1, 0.1, d2l.try_gpu())
    check_trained(history, 32, train_iter)


# --- 7.5 批量规范化 (batch-norm) --------------------------------------------------------------------


def batch_norm(X, gamma, beta, moving_mean, moving_var, eps, momentum):
    if not torch.is_grad_enabled():
        X_hat = (X - moving_mean) / torch.sqrt(moving_var + eps)
    else:
        assert len(X.shape) in (2, 4)
        if len(X.shape) == 2:
            mean = X.mean(dim=0)
            var = ((X - mean) ** 2).mean(dim=0)
        else:
            mean = X.mean(dim=(0, 2, 3), keepdim=True)
            var = ((X - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        X_hat = (X - mean) / torch.sqrt(var + eps)
        moving_mean = momentum * moving_mean + (1.0 - momentum) * mean
        moving_var = momentum * moving_var + (1.0 - momentum) * var
    Y = gamma * X_hat + beta
    return Y, moving_mean.data, moving_var.data


class BatchNorm(nn.Module):
    def __init__(self, num_features, num_dims):
        super().__init__()
        shape = (1, num_features) if num_dims == 2 else (1, num_features, 1, 1)
        self.gamma = nn.Parameter(torch.ones(shape))
        self.beta = nn.Parameter(torch.zeros(shape))
        self.moving_mean = torch.zeros(shape)
        self.moving_var = torch.ones(shape)

    def forward(self, X):
        if self.moving_mean.device != X.device:
            self.moving_mean = self.moving_mean.to(X.device)
            self.moving_var = self.moving_var.to(X.device)
        Y, self.moving_mean, self.moving_var = batch_norm(
            X, self.gamma, self.beta, self.moving_mean, self.moving_var, eps=1e-5, momentum=0.9
        )
        return Y


def test_batch_norm():
    torch.manual_seed(0)
    X = torch.randn(8, 3, 5, 5) * 2 + 1
    mine, ref = BatchNorm(3, num_dims=4), nn.BatchNorm2d(3, momentum=0.1)
    torch.testing.assert_close(mine(X), ref(X))  # batch statistics in training
    torch.testing.assert_close(mine.moving_mean.flatten(), ref.running_mean)
    net = nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5), BatchNorm(6, num_dims=4), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), BatchNorm(16, num_dims=4), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
        nn.Linear(16 * 4 * 4, 120), BatchNorm(120, num_dims=2), nn.Sigmoid(),
        nn.Linear(120, 84), BatchNorm(84, num_dims=2), nn.Sigmoid(),
        nn.Linear(84, 10))  # fmt: skip
    lr, num_epochs, batch_size = 1.0, 1, 256  # the book: 10 epochs
    train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size)
    history = d2l.train_ch6(net, train_iter, test_iter, num_epochs, lr, d2l.try_gpu())
    check_trained(history, 28, train_iter)
    gamma, beta = net[1].gamma.reshape((-1,)), net[1].beta.reshape((-1,))
    assert gamma.shape == beta.shape == (6,)
    assert not torch.equal(gamma.detach(), torch.ones(6))  # trained


# --- 7.6 残差网络（ResNet） -----------------------------------------------------------------------


class Residual(nn.Module):  # the section's (#@save: d2l.Residual)
    def __init__(self, input_channels, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, num_channels,
                               kernel_size=3, padding=1, stride=strides)  # fmt: skip
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        if use_1x1conv:
            self.conv3 = nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


def resnet_block(input_channels, num_channels, num_residuals, first_block=False):
    blk = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blk.append(d2l.Residual(input_channels, num_channels, use_1x1conv=True, strides=2))
        else:
            blk.append(d2l.Residual(num_channels, num_channels))
    return blk


def test_resnet(capsys):
    torch.manual_seed(0)
    X = torch.rand(4, 3, 6, 6)
    for args, kw, shape in [((3, 3), {}, (4, 3, 6, 6)),
                            ((3, 6), {"use_1x1conv": True, "strides": 2}, (4, 6, 3, 3))]:  # fmt: skip
        book, ours = Residual(*args, **kw), d2l.Residual(*args, **kw)
        ours.load_state_dict(book.state_dict())  # same parameter names and shapes
        assert book(X).shape == shape
        torch.testing.assert_close(ours(X), book(X))
    b1 = nn.Sequential(nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3),
                       nn.BatchNorm2d(64), nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))  # fmt: skip
    b2 = nn.Sequential(*resnet_block(64, 64, 2, first_block=True))
    b3 = nn.Sequential(*resnet_block(64, 128, 2))
    b4 = nn.Sequential(*resnet_block(128, 256, 2))
    b5 = nn.Sequential(*resnet_block(256, 512, 2))
    net = nn.Sequential(b1, b2, b3, b4, b5,
                        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(512, 10))  # fmt: skip
    X = torch.rand(size=(1, 1, 224, 224))
    assert [s for _, s in shapes_printed(net, X, capsys)] == [
        (1, 64, 56, 56), (1, 64, 56, 56), (1, 128, 28, 28), (1, 256, 14, 14), (1, 512, 7, 7),
        (1, 512, 1, 1), (1, 512), (1, 10),
    ]  # fmt: skip
    # the book: lr 0.05, batch 256, resize=96; here 16 images at 32x32, batch 8, one epoch
    train_iter, test_iter = real_slice(8, resize=32, n=16)
    history = d2l.train_ch6(net, train_iter, test_iter, 1, 0.05, d2l.try_gpu())
    check_trained(history, 32, train_iter)


# --- 7.7 稠密连接网络（DenseNet） ----------------------------------------------------------------


def conv_block(input_channels, num_channels):
    return nn.Sequential(
        nn.BatchNorm2d(input_channels), nn.ReLU(),
        nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1))  # fmt: skip


class DenseBlock(nn.Module):
    def __init__(self, num_convs, input_channels, num_channels):
        super().__init__()
        layer = []
        for i in range(num_convs):
            layer.append(conv_block(num_channels * i + input_channels, num_channels))
        self.net = nn.Sequential(*layer)

    def forward(self, X):
        for blk in self.net:
            Y = blk(X)
            X = torch.cat((X, Y), dim=1)
        return X


def transition_block(input_channels, num_channels):
    return nn.Sequential(
        nn.BatchNorm2d(input_channels), nn.ReLU(),
        nn.Conv2d(input_channels, num_channels, kernel_size=1),
        nn.AvgPool2d(kernel_size=2, stride=2))  # fmt: skip


def test_densenet():
    blk = DenseBlock(2, 3, 10)
    X = torch.randn(4, 3, 8, 8)
    Y = blk(X)
    assert Y.shape == (4, 23, 8, 8)
    assert transition_block(23, 10)(Y).shape == (4, 10, 4, 4)
    b1 = nn.Sequential(nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3),
                       nn.BatchNorm2d(64), nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))  # fmt: skip
    num_channels, growth_rate = 64, 32
    num_convs_in_dense_blocks = [4, 4, 4, 4]
    blks = []
    for i, num_convs in enumerate(num_convs_in_dense_blocks):
        blks.append(DenseBlock(num_convs, num_channels, growth_rate))
        num_channels += num_convs * growth_rate
        if i != len(num_convs_in_dense_blocks) - 1:
            blks.append(transition_block(num_channels, num_channels // 2))
            num_channels = num_channels // 2
    assert num_channels == 248
    net = nn.Sequential(b1, *blks, nn.BatchNorm2d(num_channels), nn.ReLU(),
                        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
                        nn.Linear(num_channels, 10))  # fmt: skip
    # the book: lr 0.1, batch 256, resize=96; here 16 images at 32x32, batch 8, one epoch
    train_iter, test_iter = real_slice(8, resize=32, n=16)
    history = d2l.train_ch6(net, train_iter, test_iter, 1, 0.1, d2l.try_gpu())
    check_trained(history, 32, train_iter)


# --- 12.5 多GPU训练 (multiple-gpus) ------------------------------------------------------------


def allreduce(data):
    for i in range(1, len(data)):
        data[0][:] += data[i].to(data[0].device)
    for i in range(1, len(data)):
        data[i][:] = data[0].to(data[i].device)


def test_multiple_gpus():
    scale = 0.01
    torch.manual_seed(0)
    params = [torch.randn(size=(20, 1, 3, 3)) * scale, torch.zeros(20)]
    new_params = [p.to(d2l.try_gpu(0)).requires_grad_() for p in params]
    assert new_params[1].grad is None and torch.equal(new_params[1].detach().cpu(), params[1])
    data = [torch.ones((1, 2), device=d2l.try_gpu(i)) * (i + 1) for i in range(2)]
    allreduce(data)
    assert [d.tolist() for d in data] == [[[3.0, 3.0]], [[3.0, 3.0]]]

    # d2l.split_batch: the book's nn.parallel.scatter on CUDA GPUs; elsewhere one clear error
    X, y = torch.arange(20.0).reshape(4, 5), torch.arange(4)
    cuda = [torch.device(f"cuda:{i}") for i in range(torch.cuda.device_count())]
    if cuda:
        X_shards, y_shards = d2l.split_batch(X, y, cuda)
        assert torch.equal(torch.cat([x.cpu() for x in X_shards]), X)
        assert [x.device for x in X_shards] == cuda[: len(X_shards)]
    with pytest.raises(d2l.MultiGPUError, match="CUDA GPUs") as err:
        d2l.split_batch(X, y, [torch.device("cpu"), torch.device("cpu")])
    assert "d2l.try_all_gpus()" in str(err.value)  # it says what to do
    with pytest.raises(ValueError, match="batch size"):
        d2l.split_batch(X, y[:3], cuda or [torch.device("cpu")])

    # the section's train_batch on one device, without the scatter: d2l.sgd on the summed loss
    def lenet(X, params):
        h1 = F.avg_pool2d(F.relu(F.conv2d(X, params[0], params[1])), kernel_size=2, stride=2)
        return h1.reshape(h1.shape[0], -1) @ params[2] + params[3]

    params = [torch.randn(20, 1, 3, 3) * scale, torch.zeros(20),
              torch.randn(20 * 13 * 13, 10) * scale, torch.zeros(10)]  # fmt: skip
    device_params = [p.clone().requires_grad_() for p in params]
    train_iter, test_iter = d2l.load_data_fashion_mnist(256)
    loss = nn.CrossEntropyLoss(reduction="none")
    X, y = next(iter(train_iter))
    loss(lenet(X, device_params), y).sum().backward()
    expected = [p - 0.2 * p.grad / X.shape[0] for p in device_params]
    d2l.sgd(device_params, 0.2, X.shape[0])
    for p, e in zip(device_params, expected, strict=True):
        torch.testing.assert_close(p.detach(), e.detach())


def test_multiple_gpus_evaluates_a_function():
    """The book's multi-GPU section evaluates a function of the batch, not an nn.Module."""
    params = [torch.zeros(784, 10), torch.zeros(10)]
    _, test_iter = d2l.load_data_fashion_mnist(256)
    acc = d2l.evaluate_accuracy_gpu(
        lambda x: x.reshape(x.shape[0], -1) @ params[0] + params[1], test_iter, d2l.try_gpu()
    )
    # all-zero scores predict class 0: the accuracy is the share of class 0 among the images
    assert acc == pytest.approx((test_iter.labels == 0).float().mean().item())


# --- 12.6 多GPU的简洁实现 (multiple-gpus-concise) -------------------------------------------------


def resnet18_zh(num_classes, in_channels=1):  # the section's (#@save: d2l.resnet18)
    def block(in_channels, out_channels, num_residuals, first_block=False):
        return nn.Sequential(*resnet_block(in_channels, out_channels, num_residuals, first_block))

    net = nn.Sequential(nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1),
                        nn.BatchNorm2d(64), nn.ReLU())  # fmt: skip
    net.add_module("resnet_block1", block(64, 64, 2, first_block=True))
    net.add_module("resnet_block2", block(64, 128, 2))
    net.add_module("resnet_block3", block(128, 256, 2))
    net.add_module("resnet_block4", block(256, 512, 2))
    net.add_module("global_avg_pool", nn.AdaptiveAvgPool2d((1, 1)))
    net.add_module("fc", nn.Sequential(nn.Flatten(), nn.Linear(512, num_classes)))
    return net


def test_multiple_gpus_concise(capsys):
    net = d2l.resnet18(10)
    book = resnet18_zh(10)
    net.load_state_dict(book.state_dict())  # same modules, names and shapes (strict)
    torch.manual_seed(0)
    X = torch.rand(2, 1, 28, 28)
    net.eval(), book.eval()
    torch.testing.assert_close(net(X), book(X))
    assert [s for _, s in shapes_printed(net.train(), X, capsys)] == [
        (2, 64, 28, 28), (2, 64, 28, 28), (2, 64, 28, 28), (2, 64, 28, 28), (2, 128, 14, 14),
        (2, 256, 7, 7), (2, 512, 4, 4), (2, 512, 1, 1), (2, 10),
    ]  # fmt: skip
    assert d2l.resnet18(7, in_channels=3)(torch.rand(2, 3, 16, 16)).shape == (2, 7)

    # the section's train(net, num_gpus=1, ...) loop: nn.DataParallel over d2l.try_gpu devices
    devices = d2l.try_all_gpus()
    assert devices == ([torch.device(f"cuda:{i}") for i in range(torch.cuda.device_count())]
                       or [torch.device("cpu")])  # fmt: skip
    # the book: batch 256, lr 0.1, 10 epochs; here 24 images, batch 8, one epoch
    train_iter, test_iter = real_slice(8)
    devices = [d2l.try_gpu(i) for i in range(1)]

    def init_weights(m):
        if type(m) in [nn.Linear, nn.Conv2d]:
            nn.init.normal_(m.weight, std=0.01)

    net.apply(init_weights)
    net = nn.DataParallel(net, device_ids=devices)
    trainer = torch.optim.SGD(net.parameters(), 0.1)
    loss = nn.CrossEntropyLoss()
    timer = d2l.Timer()
    net.train()
    timer.start()
    for X, y in train_iter:
        trainer.zero_grad()
        X, y = X.to(devices[0]), y.to(devices[0])
        l = loss(net(X), y)  # noqa: E741
        l.backward()
        trainer.step()
    timer.stop()
    acc = d2l.evaluate_accuracy_gpu(net, test_iter)
    module = net.module.to("cpu").eval()
    with torch.no_grad():
        ref = torch.cat([module(X).argmax(1) == y for X, y in test_iter]).float().mean().item()
    assert acc == pytest.approx(ref) and timer.avg() > 0
