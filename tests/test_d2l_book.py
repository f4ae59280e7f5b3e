"""The code of the d2l book's CNN chapters (d2l-en 1.0.3, PyTorch) on ``import d2lcnn as d2l``.

One test per section of "Convolutional Neural Networks" (7.1-7.6) and "Modern Convolutional
Neural Networks" (8.1-8.8). Each makes the calls its section makes, with the same API and the
models written as in the book, and checks what the section shows: printed shapes, the learned
kernel, a finished training run. Training runs in quick mode (1,024 train / 512 test images, one
epoch); a comment per test says what else differs from the book (smaller images, to keep the
file well under a minute on a 2-core CPU).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
from helpers import loss_and_accuracy
from torch import nn
from torch.nn import functional as F

import d2lcnn as d2l

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from vs_d2l import book_classes  # noqa: E402


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setenv("D2LCNN_QUICK", "1")


SHAPE_LINE = re.compile(r"^(\w+) output shape:\t torch\.Size\(\[([\d, ]*)\]\)$")


def printed_shapes(capsys) -> list[tuple[str, tuple[int, ...]]]:
    """The ``Name output shape:\\t torch.Size([...])`` lines printed since the last call."""
    lines = capsys.readouterr().out.splitlines()
    shapes = []
    for line in lines:
        m = SHAPE_LINE.match(line)
        assert m, f"not the book's shape line: {line!r}"
        shapes.append((m[1], tuple(int(s) for s in m[2].split(", ") if s)))
    return shapes


def first_batch(data):
    return next(iter(data.get_dataloader(True)))[0]


def untrained(model, data) -> dict:
    """The model as training will start from it: its validation loss and accuracy, counted here
    (the pass materialises lazy layers, as the trainer's own first pass would), and its weights."""
    loss, acc = loss_and_accuracy(model, data.get_dataloader(False))
    return {"loss": loss, "acc": acc, "weights": [p.detach().clone() for p in model.parameters()]}


def check_fit(history, trainer, model, data, side, before, learns=False):
    """A finished quick run: one epoch (the book's 10 are capped) that trained this model, no
    lazy layer left, the book's data at the test's image size.

    ``before``: :func:`untrained`'s measure of the model. The History's validation figures must
    be those of the trained model, counted again here, and the weights must have moved. In one
    quick epoch (8 steps) most of the book's networks stay at chance at the book's learning rate
    (AlexNet, VGG, NiN, GoogLeNet, RegNet: training loss 2.29-2.31 from 2.30); ``learns``: the
    ones that do learn (with batch norm, measured 1.79-1.95 from 2.30-2.46, training accuracy
    0.42-0.46), whose training loss must fall below 0.9 of the untrained loss and accuracy pass
    0.25, which a trainer that does not step (loss and accuracy stay at 2.3 and 0.1) cannot.
    """
    assert isinstance(history, d2l.History) and trainer.history is history
    assert len(history) == 1
    e = history.final
    loss, acc = loss_and_accuracy(model, data.get_dataloader(False), history.precision)
    assert e.test_acc == pytest.approx(acc, abs=2 / 512)  # this model's accuracy, not another's
    assert e.test_loss == pytest.approx(loss, rel=0.01)
    moved = [not torch.equal(p, w) for p, w in zip(model.parameters(), before["weights"],
                                                    strict=True)]  # fmt: skip
    assert sum(moved) >= 0.9 * len(moved), f"{moved.count(False)} of {len(moved)} never changed"
    if learns:
        assert e.train_loss < 0.9 * before["loss"] and e.train_acc > 0.25, (before["loss"], e)
    assert not any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters())
    assert not any(isinstance(m, nn.modules.lazy.LazyModuleMixin) for m in model.modules())
    assert (len(data.train), len(data.val)) == (1024, 512)
    assert first_batch(data).shape == (128, 1, side, side)


# --- 7.1 From Fully Connected Layers to Convolutions ----------------------------------------------


def test_why_conv():
    # The section has no code. What it derives: a convolution H[i, j] = sum_ab V[a, b] X[i+a, j+b]
    # is translation-equivariant (shift the input, the output shifts) and local (H[i, j] sees
    # only the window at (i, j)), with as many parameters as the kernel, not the image.
    torch.manual_seed(0)
    X, V = torch.rand(8, 8), torch.rand(3, 3)
    H = d2l.corr2d(X, V)
    assert H.shape == (6, 6)
    torch.testing.assert_close(d2l.corr2d(X[1:, 2:], V), H[1:, 2:])  # shifted input
    X2 = X.clone()
    X2[5:, 5:] += 1.0  # change pixels outside the windows of H[:3, :3]
    torch.testing.assert_close(d2l.corr2d(X2, V)[:3, :3], H[:3, :3])
    torch.testing.assert_close(H[2, 3], (X[2:5, 3:6] * V).sum())


# --- 7.2 Convolutions for Images ------------------------------------------------------------------


def corr2d(X, K):  # @save in the book: d2l.corr2d
    """Compute 2D cross-correlation."""
    h, w = K.shape
    Y = torch.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i : i + h, j : j + w] * K).sum()
    return Y


class Conv2D(nn.Module):
    def __init__(self, kernel_size):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(kernel_size))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return corr2d(x, self.weight) + self.bias


def test_conv_layer(capsys):
    X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    assert torch.equal(corr2d(X, K), torch.tensor([[19.0, 25.0], [37.0, 43.0]]))
    assert torch.equal(d2l.corr2d(X, K), corr2d(X, K))
    assert Conv2D((2, 2))(X).shape == (2, 2)

    X = torch.ones((6, 8))
    X[:, 2:6] = 0
    K = torch.tensor([[1.0, -1.0]])
    Y = corr2d(X, K)
    edges = torch.zeros((6, 7))
    edges[:, 1], edges[:, 5] = 1.0, -1.0
    assert torch.equal(Y, edges)
    assert torch.equal(corr2d(X.t(), K), torch.zeros((8, 5)))  # vertical edges only

    torch.manual_seed(0)
    conv2d = nn.LazyConv2d(1, kernel_size=(1, 2), bias=False)
    X = X.reshape((1, 1, 6, 8))
    Y = Y.reshape((1, 1, 6, 7))
    lr = 3e-2
    for i in range(10):
        Y_hat = conv2d(X)
        l = (Y_hat - Y) ** 2  # noqa: E741 (the book's name)
        conv2d.zero_grad()
        l.sum().backward()
        conv2d.weight.data[:] -= lr * conv2d.weight.grad
        if (i + 1) % 2 == 0:
            print(f"epoch {i + 1}, loss {l.sum():.3f}")
    losses = [float(x) for x in re.findall(r"^epoch \d+, loss (\d+\.\d{3})$",
                                           capsys.readouterr().out, re.M)]  # fmt: skip
    assert len(losses) == 5 and losses == sorted(losses, reverse=True)
    assert conv2d.weight.data.reshape((1, 2)).sub(K).abs().max() < 0.1  # learned: [1, -1]


# --- 7.3 Padding and Stride (the section does not import d2l) -------------------------------------


def comp_conv2d(conv2d, X):
    X = X.reshape((1, 1) + X.shape)
    Y = conv2d(X)
    return Y.reshape(Y.shape[2:])


def test_padding_and_strides():
    X = torch.rand(size=(8, 8))
    conv2d = nn.LazyConv2d(1, kernel_size=3, padding=1)
    assert comp_conv2d(conv2d, X).shape == (8, 8)
    conv2d = nn.LazyConv2d(1, kernel_size=(5, 3), padding=(2, 1))
    assert comp_conv2d(conv2d, X).shape == (8, 8)
    conv2d = nn.LazyConv2d(1, kernel_size=3, padding=1, stride=2)
    assert comp_conv2d(conv2d, X).shape == (4, 4)
    conv2d = nn.LazyConv2d(1, kernel_size=(3, 5), padding=(0, 1), stride=(3, 4))
    assert comp_conv2d(conv2d, X).shape == (2, 2)


# --- 7.4 Multiple Input and Multiple Output Channels ----------------------------------------------


def corr2d_multi_in(X, K):
    return sum(d2l.corr2d(x, k) for x, k in zip(X, K, strict=True))


def corr2d_multi_in_out(X, K):
    return torch.stack([corr2d_multi_in(X, k) for k in K], 0)


def corr2d_multi_in_out_1x1(X, K):
    c_i, h, w = X.shape
    c_o = K.shape[0]
    X = X.reshape((c_i, h * w))
    K = K.reshape((c_o, c_i))
    Y = torch.matmul(K, X)
    return Y.reshape((c_o, h, w))


def test_channels():
    X = torch.tensor([[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]],
                      [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]])  # fmt: skip
    K = torch.tensor([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]]])
    assert torch.equal(corr2d_multi_in(X, K), torch.tensor([[56.0, 72.0], [104.0, 120.0]]))
    K = torch.stack((K, K + 1, K + 2), 0)
    assert K.shape == (3, 2, 2, 2)
    expected = torch.tensor([[[56.0, 72.0], [104.0, 120.0]], [[76.0, 100.0], [148.0, 172.0]],
                             [[96.0, 128.0], [192.0, 224.0]]])  # fmt: skip
    assert torch.equal(corr2d_multi_in_out(X, K), expected)

    torch.manual_seed(0)
    X = torch.normal(0, 1, (3, 3, 3))
    K = torch.normal(0, 1, (2, 3, 1, 1))
    Y1 = corr2d_multi_in_out_1x1(X, K)
    Y2 = corr2d_multi_in_out(X, K)
    assert float(torch.abs(Y1 - Y2).sum()) < 1e-6


# --- 7.5 Pooling ----------------------------------------------------------------------------------


def pool2d(X, pool_size, mode="max"):
    p_h, p_w = pool_size
    Y = torch.zeros((X.shape[0] - p_h + 1, X.shape[1] - p_w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            if mode == "max":
                Y[i, j] = X[i : i + p_h, j : j + p_w].max()
            elif mode == "avg":
                Y[i, j] = X[i : i + p_h, j : j + p_w].mean()
    return Y


def test_pooling():
    X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
    assert torch.equal(pool2d(X, (2, 2)), torch.tensor([[4.0, 5.0], [7.0, 8.0]]))
    assert torch.equal(pool2d(X, (2, 2), "avg"), torch.tensor([[2.0, 3.0], [5.0, 6.0]]))
    assert torch.equal(d2l.pool2d(X, (2, 2), "avg"), pool2d(X, (2, 2), "avg"))

    X = torch.arange(16, dtype=torch.float32).reshape((1, 1, 4, 4))
    assert torch.equal(nn.MaxPool2d(3)(X), torch.tensor([[[[10.0]]]]))
    corners = torch.tensor([[[[5.0, 7.0], [13.0, 15.0]]]])
    assert torch.equal(nn.MaxPool2d(3, padding=1, stride=2)(X), corners)
    assert torch.equal(nn.MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1))(X), corners)
    X = torch.cat((X, X + 1), 1)
    assert X.shape == (1, 2, 4, 4)
    pool = nn.MaxPool2d(3, padding=1, stride=2)
    assert torch.equal(pool(X), torch.cat((corners, corners + 1), 1))  # channel by channel


# --- 7.6 Convolutional Neural Networks (LeNet) ----------------------------------------------------


def init_cnn(module):  # @save in the book: d2l.init_cnn
    """Initialize weights for CNNs."""
    if type(module) is nn.Linear or type(module) is nn.Conv2d:
        nn.init.xavier_uniform_(module.weight)


# The book's LeNet and AlexNet classes are written once, in benchmarks/vs_d2l.py, which binds them
# to d2l 1.0.3's Classifier or to d2lcnn's: the benchmark compares what this file checks.
_BOOK = book_classes(d2l)
LeNet = _BOOK["lenet"]


LENET_SHAPES = [
    ("Conv2d", (1, 6, 28, 28)), ("Sigmoid", (1, 6, 28, 28)), ("AvgPool2d", (1, 6, 14, 14)),
    ("Conv2d", (1, 16, 10, 10)), ("Sigmoid", (1, 16, 10, 10)), ("AvgPool2d", (1, 16, 5, 5)),
    ("Flatten", (1, 400)), ("Linear", (1, 120)), ("Sigmoid", (1, 120)), ("Linear", (1, 84)),
    ("Sigmoid", (1, 84)), ("Linear", (1, 10)),
]  # fmt: skip


def test_lenet(capsys, monkeypatch):
    # As the book, at 28x28; quick mode: 1,024 images, one epoch instead of 10.
    LeNet().layer_summary((1, 1, 28, 28))  # d2lcnn's Classifier.layer_summary
    assert printed_shapes(capsys) == LENET_SHAPES
    # The section then (re)defines layer_summary on d2l.Classifier; undone after the test.
    monkeypatch.setattr(d2l.Classifier, "layer_summary", d2l.Classifier.layer_summary)

    @d2l.add_to_class(d2l.Classifier)
    def layer_summary(self, X_shape):
        X = torch.randn(*X_shape)
        for layer in self.net:
            X = layer(X)
            print(layer.__class__.__name__, "output shape:\t", X.shape)

    model = LeNet()
    model.layer_summary((1, 1, 28, 28))
    assert printed_shapes(capsys) == LENET_SHAPES

    trainer = d2l.Trainer(max_epochs=10, num_gpus=1)
    data = d2l.FashionMNIST(batch_size=128)
    model = LeNet(lr=0.1)
    model.apply_init([next(iter(data.get_dataloader(True)))[0]], init_cnn)
    assert model.net[0].weight.shape == (6, 1, 5, 5) and model.net[-1].weight.shape == (10, 84)
    assert model.hparams == {"lr": 0.1, "num_classes": 10}
    # Xavier, not PyTorch's default (bound 1/sqrt(84) = 0.11): init_cnn reached self.net
    assert model.net[-1].weight.abs().max() > 84**-0.5
    capsys.readouterr()
    before = untrained(model, data)
    history = trainer.fit(model, data)
    check_fit(history, trainer, model, data, 28, before)
    assert "training 1 epoch(s) instead of 10" in capsys.readouterr().err  # quick mode says so


# --- 8.1 Deep Convolutional Neural Networks (AlexNet) ---------------------------------------------


AlexNet = _BOOK["alexnet"]  # as chapter_convolutional-modern/alexnet writes it


def test_alexnet(capsys):
    # The shapes at the book's 224x224. Training: 67x67 images instead of 224 (the smallest side
    # the three stride-2 poolings leave a 1x1 map for: 15, 7, 3, 1), quick mode.
    AlexNet().layer_summary((1, 1, 224, 224))
    assert printed_shapes(capsys) == [
        ("Conv2d", (1, 96, 54, 54)), ("ReLU", (1, 96, 54, 54)), ("MaxPool2d", (1, 96, 26, 26)),
        ("Conv2d", (1, 256, 26, 26)), ("ReLU", (1, 256, 26, 26)),
        ("MaxPool2d", (1, 256, 12, 12)),
        ("Conv2d", (1, 384, 12, 12)), ("ReLU", (1, 384, 12, 12)),
        ("Conv2d", (1, 384, 12, 12)), ("ReLU", (1, 384, 12, 12)),
        ("Conv2d", (1, 256, 12, 12)), ("ReLU", (1, 256, 12, 12)),
        ("MaxPool2d", (1, 256, 5, 5)), ("Flatten", (1, 6400)),
        ("Linear", (1, 4096)), ("ReLU", (1, 4096)), ("Dropout", (1, 4096)),
        ("Linear", (1, 4096)), ("ReLU", (1, 4096)), ("Dropout", (1, 4096)),
        ("Linear", (1, 10)),
    ]  # fmt: skip

    model = AlexNet(lr=0.01)
    data = d2l.FashionMNIST(batch_size=128, resize=(67, 67))
    trainer = d2l.Trainer(max_epochs=10, num_gpus=1)
    before = untrained(model, data)
    history = trainer.fit(model, data)
    check_fit(history, trainer, model, data, 67, before)
    assert model.net[14].weight.shape == (4096, 256)  # 256 x 1 x 1 features at 67 px


# --- 8.2 Networks Using Blocks (VGG) --------------------------------------------------------------


def vgg_block(num_convs, out_channels):
    layers = []
    for _ in range(num_convs):
        layers.append(nn.LazyConv2d(out_channels, kernel_size=3, padding=1))
        layers.append(nn.ReLU())
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


class VGG(d2l.Classifier):
    def __init__(self, arch, lr=0.1, num_classes=10):
        super().__init__()
        self.save_hyperparameters()
        conv_blks = []
        for num_convs, out_channels in arch:
            conv_blks.append(vgg_block(num_convs, out_channels))
        self.net = nn.Sequential(
            *conv_blks, nn.Flatten(),
            nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(0.5),
            nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(0.5),
            nn.LazyLinear(num_classes))  # fmt: skip
        self.net.apply(d2l.init_cnn)


def test_vgg(capsys):
    # The shapes of VGG-11 at the book's 224x224. Training: the book's narrow VGG on 32x32
    # instead of 224 (its five halvings leave 1x1), quick mode.
    VGG(arch=((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))).layer_summary((1, 1, 224, 224))
    assert printed_shapes(capsys) == [
        ("Sequential", (1, 64, 112, 112)), ("Sequential", (1, 128, 56, 56)),
        ("Sequential", (1, 256, 28, 28)), ("Sequential", (1, 512, 14, 14)),
        ("Sequential", (1, 512, 7, 7)), ("Flatten", (1, 25088)),
        ("Linear", (1, 4096)), ("ReLU", (1, 4096)), ("Dropout", (1, 4096)),
        ("Linear", (1, 4096)), ("ReLU", (1, 4096)), ("Dropout", (1, 4096)),
        ("Linear", (1, 10)),
    ]  # fmt: skip

    model = VGG(arch=((1, 16), (1, 32), (2, 64), (2, 128), (2, 128)), lr=0.01)
    trainer = d2l.Trainer(max_epochs=10, num_gpus=1)
    data = d2l.FashionMNIST(batch_size=128, resize=(32, 32))
    model.apply_init([next(iter(data.get_dataloader(True)))[0]], d2l.init_cnn)
    assert model.net[6].weight.shape == (4096, 128)  # 128 x 1 x 1 features at 32 px
    before = untrained(model, data)
    history = trainer.fit(model, data)
    check_fit(history, trainer, model, data, 32, before)


# --- 8.3 Network in Network (NiN) -----------------------------------------------------------------


def nin_block(out_channels, kernel_size, strides, padding):
    return nn.Sequential(
        nn.LazyConv2d(out_channels, kernel_size, strides, padding), nn.ReLU(),
        nn.LazyConv2d(out_channels, kernel_size=1), nn.ReLU(),
        nn.LazyConv2d(out_channels, kernel_size=1), nn.ReLU())  # fmt: skip


class NiN(d2l.Classifier):
    def __init__(self, lr=0.1, num_classes=10):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nin_block(96, kernel_size=11, strides=4, padding=0),
            nn.MaxPool2d(3, stride=2),
            nin_block(256, kernel_size=5, strides=1, padding=2),
            nn.MaxPool2d(3, stride=2),
            nin_block(384, kernel_size=3, strides=1, padding=1),
            nn.MaxPool2d(3, stride=2),
            nn.Dropout(0.5),
            nin_block(num_classes, kernel_size=3, strides=1, padding=1),
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Flatten())  # fmt: skip
        self.net.apply(d2l.init_cnn)


def test_nin(capsys):
    # The shapes at the book's 224x224. Training: 67x67 instead of 224 (the smallest side that
    # leaves the last pooling a 1x1 map: 15, 7, 3, 1), quick mode.
    NiN().layer_summary((1, 1, 224, 224))
    assert printed_shapes(capsys) == [
        ("Sequential", (1, 96, 54, 54)), ("MaxPool2d", (1, 96, 26, 26)),
        ("Sequential", (1, 256, 26, 26)), ("MaxPool2d", (1, 256, 12, 12)),
        ("Sequential", (1, 384, 12, 12)), ("MaxPool2d", (1, 384, 5, 5)),
        ("Dropout", (1, 384, 5, 5)), ("Sequential", (1, 10, 5, 5)),
        ("AdaptiveAvgPool2d", (1, 10, 1, 1)), ("Flatten", (1, 10)),
    ]  # fmt: skip

    model = NiN(lr=0.05)
    trainer = d2l.Trainer(max_epochs=10, num_gpus=1)
    data = d2l.FashionMNIST(batch_size=128, resize=(67, 67))
    model.apply_init([next(iter(data.get_dataloader(True)))[0]], d2l.init_cnn)
    before = untrained(model, data)
    history = trainer.fit(model, data)
    check_fit(history, trainer, model, data, 67, before)


# --- 8.4 Multi-Branch Networks (GoogLeNet) --------------------------------------------------------


class Inception(nn.Module):
    # c1--c4 are the number of output channels for each branch
    def __init__(self, c1, c2, c3, c4, **kwargs):
        super(Inception, self).__init__(**kwargs)  # noqa: UP008 (the book's call)
        self.b1_1 = nn.LazyConv2d(c1, kernel_size=1)
        self.b2_1 = nn.LazyConv2d(c2[0], kernel_size=1)
        self.b2_2 = nn.LazyConv2d(c2[1], kernel_size=3, padding=1)
        self.b3_1 = nn.LazyConv2d(c3[0], kernel_size=1)
        self.b3_2 = nn.LazyConv2d(c3[1], kernel_size=5, padding=2)
        self.b4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.b4_2 = nn.LazyConv2d(c4, kernel_size=1)

    def forward(self, x):
        b1 = F.relu(self.b1_1(x))
        b2 = F.relu(self.b2_2(F.relu(self.b2_1(x))))
        b3 = F.relu(self.b3_2(F.relu(self.b3_1(x))))
        b4 = F.relu(self.b4_2(self.b4_1(x)))
        return torch.cat((b1, b2, b3, b4), dim=1)


class GoogleNet(d2l.Classifier):
    def b1(self):
        return nn.Sequential(
            nn.LazyConv2d(64, kernel_size=7, stride=2, padding=3),
            nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2, padding=1))  # fmt: skip


@d2l.add_to_class(GoogleNet)
def b2(self):
    return nn.Sequential(
        nn.LazyConv2d(64, kernel_size=1), nn.ReLU(),
        nn.LazyConv2d(192, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1))  # fmt: skip


@d2l.add_to_class(GoogleNet)
def b3(self):
    return nn.Sequential(Inception(64, (96, 128), (16, 32), 32),
                         Inception(128, (128, 192), (32, 96), 64),
                         nn.MaxPool2d(kernel_size=3, stride=2, padding=1))  # fmt: skip


@d2l.add_to_class(GoogleNet)
def b4(self):
    return nn.Sequential(Inception(192, (96, 208), (16, 48), 64),
                         Inception(160, (112, 224), (24, 64), 64),
                         Inception(128, (128, 256), (24, 64), 64),
                         Inception(112, (144, 288), (32, 64), 64),
                         Inception(256, (160, 320), (32, 128), 128),
                         nn.MaxPool2d(kernel_size=3, stride=2, padding=1))  # fmt: skip


@d2l.add_to_class(GoogleNet)
def b5(self):
    return nn.Sequential(Inception(256, (160, 320), (32, 128), 128),
                         Inception(384, (192, 384), (48, 128), 128),
                         nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())  # fmt: skip


@d2l.add_to_class(GoogleNet)
def __init__(self, lr=0.1, num_classes=10):
    super(GoogleNet, self).__init__()
    self.save_hyperparameters()
    self.net = nn.Sequential(self.b1(), self.b2(), self.b3(), self.b4(),
                             self.b5(), nn.LazyLinear(num_classes))  # fmt: skip
    self.net.apply(d2l.init_cnn)


def test_googlenet(capsys):
    # The shapes at the book's 96x96. Training: 32x32 instead of 96 (its five halvings leave
    # 1x1 before b5), quick mode.
    model = GoogleNet().layer_summary((1, 1, 96, 96))
    assert model is None
    assert printed_shapes(capsys) == [
        ("Sequential", (1, 64, 24, 24)), ("Sequential", (1, 192, 12, 12)),
        ("Sequential", (1, 480, 6, 6)), ("Sequential", (1, 832, 3, 3)),
        ("Sequential", (1, 1024)), ("Linear", (1, 10)),
    ]  # fmt: skip

    model = GoogleNet(lr=0.01)
    trainer = d2l.Trainer(max_epochs=10, num_gpus=1)
    data = d2l.FashionMNIST(batch_size=128, resize=(32, 32))
    model.apply_init([next(iter(data.get_dataloader(True)))[0]], d2l.init_cnn)
    before = untrained(model, data)
    history = trainer.fit(model, data)
    check_fit(history, trainer, model, data, 32, before)


# --- 8.5 Batch Normalization ----------------------------------------------------------------------


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
        moving_mean = (1.0 - momentum) * moving_mean + momentum * mean
        moving_var = (1.0 - momentum) * moving_var + momentum * var
    Y = gamma * X_hat + beta
    return Y, moving_mean.data, moving_var.data


class BatchNorm(nn.Module):
    def __init__(self, num_features, num_dims):
        super().__init__()
        if num_dims == 2:
            shape = (1, num_features)
        else:
            shape = (1, num_features, 1, 1)
        self.gamma = nn.Parameter(torch.ones(shape))
        self.beta = nn.Parameter(torch.zeros(shape))
        self.moving_mean = torch.zeros(shape)
        self.moving_var = torch.ones(shape)

    def forward(self, X):
        if self.moving_mean.device != X.device:
            self.moving_mean = self.moving_mean.to(X.device)
            self.moving_var = self.moving_var.to(X.device)
        Y, self.moving_mean, self.moving_var = batch_norm(
            X, self.gamma, self.beta, self.moving_mean,
            self.moving_var, eps=1e-5, momentum=0.1)  # fmt: skip
        return Y


class BNLeNetScratch(d2l.Classifier):
    def __init__(self, lr=0.1, num_classes=10):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.LazyConv2d(6, kernel_size=5), BatchNorm(6, num_dims=4),
            nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.LazyConv2d(16, kernel_size=5), BatchNorm(16, num_dims=4),
            nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Flatten(), nn.LazyLinear(120),
            BatchNorm(120, num_dims=2), nn.Sigmoid(), nn.LazyLinear(84),
            BatchNorm(84, num_dims=2), nn.Sigmoid(),
            nn.LazyLinear(num_classes))  # fmt: skip


class BNLeNet(d2l.Classifier):
    def __init__(self, lr=0.1, num_classes=10):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.LazyConv2d(6, kernel_size=5), nn.LazyBatchNorm2d(),
            nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.LazyConv2d(16, kernel_size=5), nn.LazyBatchNorm2d(),
            nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Flatten(), nn.LazyLinear(120), nn.LazyBatchNorm1d(),
            nn.Sigmoid(), nn.LazyLinear(84), nn.LazyBatchNorm1d(),
            nn.Sigmoid(), nn.LazyLinear(num_classes))  # fmt: skip


def test_batch_norm():
    # As the book, at 28x28; quick mode: 1,024 images, one epoch instead of 10.
    trainer = d2l.Trainer(max_epochs=10, num_gpus=1)
    data = d2l.FashionMNIST(batch_size=128)
    model = BNLeNetScratch(lr=0.1)
    model.apply_init([next(iter(data.get_dataloader(True)))[0]], d2l.init_cnn)
    before = untrained(model, data)
    history = trainer.fit(model, data)
    check_fit(history, trainer, model, data, 28, before, learns=True)
    gamma, beta = model.net[1].gamma.reshape((-1,)), model.net[1].beta.reshape((-1,))
    assert gamma.shape == beta.shape == (6,)
    assert not torch.equal(gamma, torch.ones(6)) and not torch.equal(beta, torch.zeros(6))
    assert model.net[1].moving_mean.shape == (1, 6, 1, 1)
    assert not torch.equal(model.net[1].moving_var, torch.ones(1, 6, 1, 1))  # statistics kept
    # The book's batch_norm uses the moving statistics only when gradients are off, so the
    # reported validation accuracy must be that prediction's (with batch statistics, as a
    # validation pass with gradients on would compute it, it differs: 0.63 against 0.37 here).
    model.eval()
    with torch.no_grad():
        hits = [model.accuracy(model(X), y, averaged=False) for X, y in data.get_dataloader(False)]
    assert abs(float(torch.cat(hits).mean()) - history.final.test_acc) <= 2 / 512

    trainer = d2l.Trainer(max_epochs=10, num_gpus=1)
    data = d2l.FashionMNIST(batch_size=128)
    model = BNLeNet(lr=0.1)
    model.apply_init([next(iter(data.get_dataloader(True)))[0]], d2l.init_cnn)
    before = untrained(model, data)
    history = trainer.fit(model, data)
    check_fit(history, trainer, model, data, 28, before, learns=True)
    assert model.net[1].weight.shape == (6,) and model.net[10].running_mean.shape == (120,)
    assert int(model.net[1].num_batches_tracked) >= 8  # 8 batches of 128 were trained


# --- 8.6 Residual Networks (ResNet) and ResNeXt ---------------------------------------------------


class Residual(nn.Module):
    """The Residual block of ResNet models."""

    def __init__(self, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1)
        if use_1x1conv:
            self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1, stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.LazyBatchNorm2d()
        self.bn2 = nn.LazyBatchNorm2d()

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


class ResNet(d2l.Classifier):
    def b1(self):
        return nn.Sequential(
            nn.LazyConv2d(64, kernel_size=7, stride=2, padding=3),
            nn.LazyBatchNorm2d(), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1))  # fmt: skip


@d2l.add_to_class(ResNet)
def block(self, num_residuals, num_channels, first_block=False):
    blk = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blk.append(Residual(num_channels, use_1x1conv=True, strides=2))
        else:
            blk.append(Residual(num_channels))
    return nn.Sequential(*blk)


@d2l.add_to_class(ResNet)
def __init__(self, arch, lr=0.1, num_classes=10):  # noqa: F811 (the book's add_to_class)
    super(ResNet, self).__init__()
    self.save_hyperparameters()
    self.net = nn.Sequential(self.b1())
    for i, b in enumerate(arch):
        self.net.add_module(f"b{i + 2}", self.block(*b, first_block=(i == 0)))
    self.net.add_module("last", nn.Sequential(
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
        nn.LazyLinear(num_classes)))  # fmt: skip
    self.net.apply(d2l.init_cnn)


class ResNet18(ResNet):
    def __init__(self, lr=0.1, num_classes=10):
        super().__init__(((2, 64), (2, 128), (2, 256), (2, 512)), lr, num_classes)


class ResNeXtBlock(nn.Module):  # @save in the book: d2l.ResNeXtBlock
    """The ResNeXt block."""

    def __init__(self, num_channels, groups, bot_mul, use_1x1conv=False, strides=1):
        super().__init__()
        bot_channels = int(round(num_channels * bot_mul))
        self.conv1 = nn.LazyConv2d(bot_channels, kernel_size=1, stride=1)
        self.conv2 = nn.LazyConv2d(bot_channels, kernel_size=3, stride=strides, padding=1,
                                   groups=bot_channels // groups)  # fmt: skip
        self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1, stride=1)
        self.bn1 = nn.LazyBatchNorm2d()
        self.bn2 = nn.LazyBatchNorm2d()
        self.bn3 = nn.LazyBatchNorm2d()
        if use_1x1conv:
            self.conv4 = nn.LazyConv2d(num_channels, kernel_size=1, stride=strides)
            self.bn4 = nn.LazyBatchNorm2d()
        else:
            self.conv4 = None

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = F.relu(self.bn2(self.conv2(Y)))
        Y = self.bn3(self.conv3(Y))
        if self.conv4:
            X = self.bn4(self.conv4(X))
        return F.relu(Y + X)


def test_resnet(capsys):
    blk = Residual(3)
    X = torch.randn(4, 3, 6, 6)
    assert blk(X).shape == (4, 3, 6, 6)
    blk = Residual(6, use_1x1conv=True, strides=2)
    assert blk(X).shape == (4, 6, 3, 3)

    # The shapes at the book's 96x96. Training: ResNet-18 on 32x32 instead of 96 (its stride-2
    # stages leave 1x1), quick mode.
    ResNet18().layer_summary((1, 1, 96, 96))
    assert printed_shapes(capsys) == [
        ("Sequential", (1, 64, 24, 24)), ("Sequential", (1, 64, 24, 24)),
        ("Sequential", (1, 128, 12, 12)), ("Sequential", (1, 256, 6, 6)),
        ("Sequential", (1, 512, 3, 3)), ("Sequential", (1, 10)),
    ]  # fmt: skip

    model = ResNet18(lr=0.01)
    assert model.hparams == {"arch": ((2, 64), (2, 128), (2, 256), (2, 512)), "lr": 0.01,
                             "num_classes": 10}  # fmt: skip
    trainer = d2l.Trainer(max_epochs=10, num_gpus=1)
    data = d2l.FashionMNIST(batch_size=128, resize=(32, 32))
    model.apply_init([next(iter(data.get_dataloader(True)))[0]], d2l.init_cnn)
    before = untrained(model, data)
    history = trainer.fit(model, data)
    check_fit(history, trainer, model, data, 32, before, learns=True)

    blk = ResNeXtBlock(32, 16, 1)
    X = torch.randn(4, 32, 96, 96)
    assert blk(X).shape == (4, 32, 96, 96)
    # d2l.ResNeXtBlock is this @save class: same parameters, same function
    ours = d2l.ResNeXtBlock(32, 16, 1)
    ours(X[:1])
    ours.load_state_dict(blk.state_dict())
    blk.eval(), ours.eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(X), blk(X))
    blk, ours = ResNeXtBlock(64, 16, 0.5, True, 2), d2l.ResNeXtBlock(64, 16, 0.5, True, 2)
    assert blk(X).shape == ours(X).shape == (4, 64, 48, 48)
    assert blk.conv2.groups == ours.conv2.groups == 2
    assert {k: v.shape for k, v in blk.state_dict().items()} == {
        k: v.shape for k, v in ours.state_dict().items()
    }


# --- 8.7 Densely Connected Networks (DenseNet) ----------------------------------------------------


def conv_block(num_channels):
    return nn.Sequential(
        nn.LazyBatchNorm2d(), nn.ReLU(),
        nn.LazyConv2d(num_channels, kernel_size=3, padding=1))  # fmt: skip


class DenseBlock(nn.Module):
    def __init__(self, num_convs, num_channels):
        super(DenseBlock, self).__init__()  # noqa: UP008 (the book's call)
        layer = []
        for _ in range(num_convs):
            layer.append(conv_block(num_channels))
        self.net = nn.Sequential(*layer)

    def forward(self, X):
        for blk in self.net:
            Y = blk(X)
            X = torch.cat((X, Y), dim=1)
        return X


def transition_block(num_channels):
    return nn.Sequential(
        nn.LazyBatchNorm2d(), nn.ReLU(),
        nn.LazyConv2d(num_channels, kernel_size=1),
        nn.AvgPool2d(kernel_size=2, stride=2))  # fmt: skip


class DenseNet(d2l.Classifier):
    def b1(self):
        return nn.Sequential(
            nn.LazyConv2d(64, kernel_size=7, stride=2, padding=3),
            nn.LazyBatchNorm2d(), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1))  # fmt: skip


@d2l.add_to_class(DenseNet)
def __init__(self, num_channels=64, growth_rate=32, arch=(4, 4, 4, 4),  # noqa: F811
             lr=0.1, num_classes=10):  # fmt: skip
    super(DenseNet, self).__init__()
    self.save_hyperparameters()
    self.net = nn.Sequential(self.b1())
    for i, num_convs in enumerate(arch):
        self.net.add_module(f"dense_blk{i + 1}", DenseBlock(num_convs, growth_rate))
        num_channels += num_convs * growth_rate
        if i != len(arch) - 1:
            num_channels //= 2
            self.net.add_module(f"tran_blk{i + 1}", transition_block(num_channels))
    self.net.add_module("last", nn.Sequential(
        nn.LazyBatchNorm2d(), nn.ReLU(),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
        nn.LazyLinear(num_classes)))  # fmt: skip
    self.net.apply(d2l.init_cnn)


def test_densenet():
    blk = DenseBlock(2, 10)
    X = torch.randn(4, 3, 8, 8)
    Y = blk(X)
    assert Y.shape == (4, 23, 8, 8)
    blk = transition_block(10)
    assert blk(Y).shape == (4, 10, 4, 4)

    # Training: 32x32 instead of 96 (b1 and three transitions leave 1x1), quick mode. The book
    # calls neither apply_init nor layer_summary here: fit materialises the lazy layers.
    model = DenseNet(lr=0.01)
    trainer = d2l.Trainer(max_epochs=10, num_gpus=1)
    data = d2l.FashionMNIST(batch_size=128, resize=(32, 32))
    before = untrained(model, data)
    history = trainer.fit(model, data)
    check_fit(history, trainer, model, data, 32, before, learns=True)
    assert model.num_channels == 64  # saved before __init__ changes its local num_channels
    assert model.net.last[-1].weight.shape == (10, 248)  # 64 -> 192/2 -> 224/2 -> 240/2 -> 248


# --- 8.8 Designing Convolution Network Architectures (AnyNet, RegNetX) ----------------------------


class AnyNet(d2l.Classifier):
    def stem(self, num_channels):
        return nn.Sequential(
            nn.LazyConv2d(num_channels, kernel_size=3, stride=2, padding=1),
            nn.LazyBatchNorm2d(), nn.ReLU())  # fmt: skip


@d2l.add_to_class(AnyNet)
def stage(self, depth, num_channels, groups, bot_mul):
    blk = []
    for i in range(depth):
        if i == 0:
            blk.append(d2l.ResNeXtBlock(num_channels, groups, bot_mul,
                                        use_1x1conv=True, strides=2))  # fmt: skip
        else:
            blk.append(d2l.ResNeXtBlock(num_channels, groups, bot_mul))
    return nn.Sequential(*blk)


@d2l.add_to_class(AnyNet)
def __init__(self, arch, stem_channels, lr=0.1, num_classes=10):  # noqa: F811
    super(AnyNet, self).__init__()
    self.save_hyperparameters()
    self.net = nn.Sequential(self.stem(stem_channels))
    for i, s in enumerate(arch):
        self.net.add_module(f"stage{i + 1}", self.stage(*s))
    self.net.add_module("head", nn.Sequential(
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
        nn.LazyLinear(num_classes)))  # fmt: skip
    self.net.apply(d2l.init_cnn)


class RegNetX32(AnyNet):
    def __init__(self, lr=0.1, num_classes=10):
        stem_channels, groups, bot_mul = 32, 16, 1
        depths, channels = (4, 6), (32, 80)
        super().__init__(
            ((depths[0], channels[0], groups, bot_mul),
             (depths[1], channels[1], groups, bot_mul)),
            stem_channels, lr, num_classes)  # fmt: skip


def test_cnn_design(capsys):
    # The shapes at the book's 96x96. Training: 32x32 instead of 96 (three stride-2 steps leave
    # 4x4), quick mode. Like the book, no apply_init: fit materialises the lazy layers.
    RegNetX32().layer_summary((1, 1, 96, 96))
    assert printed_shapes(capsys) == [
        ("Sequential", (1, 32, 48, 48)), ("Sequential", (1, 32, 24, 24)),
        ("Sequential", (1, 80, 12, 12)), ("Sequential", (1, 10)),
    ]  # fmt: skip

    model = RegNetX32(lr=0.05)
    trainer = d2l.Trainer(max_epochs=10, num_gpus=1)
    data = d2l.FashionMNIST(batch_size=128, resize=(32, 32))
    before = untrained(model, data)
    history = trainer.fit(model, data)
    check_fit(history, trainer, model, data, 32, before)
    assert model.hparams["stem_channels"] == 32 and len(model.net.stage2) == 6


# --- quick mode and the book's classic training loop ----------------------------------------------


def test_quick_mode_gives_the_classic_loop_at_least_five_batches():
    # d2l's classic train_ch6 plots every len(train_iter) // 5 batches: (i + 1) % (n // 5).
    train_iter, test_iter = d2l.load_data_fashion_mnist(256)
    data = d2l.FashionMNIST(batch_size=256)
    for it in (train_iter, data.get_dataloader(True)):
        num_batches = len(it)
        assert num_batches >= 5 and num_batches // 5 >= 1
        assert sum(1 for i, _ in enumerate(it) if (i + 1) % (num_batches // 5) == 0) >= 5
    assert len(test_iter) >= 1 and len(data.get_dataloader(False)) >= 1
