"""d2l 1.0's class API (d2lcnn/classes.py): each name with tiny models and quick data."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import d2lcnn as d2l


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setenv("D2LCNN_QUICK", "1")


class TinyNet(d2l.Classifier):
    def __init__(self, lr=0.1, num_classes=10):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.LazyConv2d(4, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.LazyLinear(num_classes),
        )  # fmt: skip


def test_save_hyperparameters_keeps_the_arguments_of_the_caller():
    class Thing(d2l.HyperParameters):
        def __init__(self, a, b=2, _private=3, c=4):
            self.save_hyperparameters(ignore=["c"])

    t = Thing(1)
    assert (t.a, t.b) == (1, 2)
    assert t.hparams == {"a": 1, "b": 2}
    assert not hasattr(t, "c") and not hasattr(t, "_private")


def test_add_to_class_adds_a_method():
    class A:
        def __init__(self):
            self.x = 5

    @d2l.add_to_class(A)
    def double(self):
        return 2 * self.x

    assert A().double() == 10


def test_progress_board_averages_every_n_points():
    board = d2l.ProgressBoard(display=False)
    for x in range(6):
        board.draw(x, float(x), "loss", every_n=3)
    assert board.data["loss"] == [(1.0, 1.0), (4.0, 4.0)]
    board = d2l.ProgressBoard(xlabel="epoch")
    board.draw(0, torch.tensor(2.0), "val_acc")  # draws a figure (tensors become floats)
    assert board.fig is not None and board.data["val_acc"] == [(0.0, 2.0)]


def test_module_forward_needs_a_net():
    class NoNet(d2l.Module):
        pass

    with pytest.raises(AttributeError, match="assign the layers to self.net"):
        NoNet()(torch.zeros(1, 1, 28, 28))


def test_classifier_loss_and_accuracy_follow_d2l():
    model = d2l.Classifier()
    Y_hat = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 0.0]])
    Y = torch.tensor([0, 0, 0])
    assert model.accuracy(Y_hat, Y).item() == pytest.approx(2 / 3)
    assert model.accuracy(Y_hat, Y, averaged=False).tolist() == [1.0, 0.0, 1.0]
    ref = nn.functional.cross_entropy(Y_hat, Y)
    assert torch.allclose(model.loss(Y_hat, Y), ref)
    assert model.loss(Y_hat, Y, averaged=False).shape == (3,)


def test_apply_init_materialises_lazy_layers_then_initialises():
    torch.manual_seed(0)
    model = TinyNet()
    assert isinstance(model.net[0].weight, nn.parameter.UninitializedParameter)
    calls = []
    model.apply_init([torch.rand(2, 1, 28, 28)], lambda m: calls.append(type(m).__name__))
    assert model.net[0].weight.shape == (4, 1, 3, 3)
    assert model.net[4].weight.shape == (10, 4 * 14 * 14)
    assert "Conv2d" in calls and "Linear" in calls


def test_layer_summary_prints_the_books_lines(capsys):
    TinyNet().layer_summary((1, 1, 28, 28))
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Conv2d output shape:\t torch.Size([1, 4, 28, 28])"
    assert out[-1] == "Linear output shape:\t torch.Size([1, 10])"


def test_fashion_mnist_data_module():
    data = d2l.FashionMNIST(batch_size=128, resize=(32, 32))
    X, y = next(iter(data.train_dataloader()))
    assert X.shape == (128, 1, 32, 32) and X.dtype == torch.float32 and y.dtype == torch.int64
    assert 0.0 <= X.min() and X.max() <= 1.0
    assert len(data.train) == len(data.get_dataloader(True).dataset) >= 1024
    assert len(data.val) == 512  # quick mode
    img, label = data.train[0]
    assert img.shape == (1, 32, 32) and isinstance(label, int)
    assert data.text_labels([0, 9]) == ["t-shirt", "ankle boot"]
    assert data.val_dataloader() is data.get_dataloader(False)
    data.visualize((X[:8], y[:8]))  # d2l's figure of a batch
    assert len(d2l.plt.gcf().axes) == 8
    d2l.plt.close("all")


def test_fashion_mnist_serves_what_is_assigned_to_train_and_val():
    data = d2l.FashionMNIST(batch_size=64)
    data.train = torch.utils.data.Subset(data.train, range(0, 200, 2))  # d2l's habit
    train = data.get_dataloader(True)
    assert isinstance(train, d2l.ImageBatches) and train.num_examples == 100
    assert data.get_dataloader(True) is train  # the same subset is served, not rebuilt
    X, y = next(iter(data.get_dataloader(False)))
    assert X.shape == (64, 1, 28, 28)
    data.val = torch.utils.data.TensorDataset(torch.zeros(10, 1, 28, 28), torch.zeros(10).long())
    assert [len(b[0]) for b in data.val_dataloader()] == [10]


def test_a_new_subset_is_served_even_where_it_reuses_a_freed_subsets_id():
    """CPython gives a freed object's id() to the next object of its size: a cache keyed by id()
    served the freed Subset's batches for the new one. Make that reuse happen, then check."""
    data = d2l.FashionMNIST(batch_size=64)
    full = data.train
    for attempt in range(50):
        first = torch.utils.data.Subset(full, range(0, 100))
        data.train, old_id = first, id(first)
        data.get_dataloader(True)  # cached for ``first``
        del first
        data.train = None  # ``first`` is freed (unless the cache holds it, as it must)
        second = torch.utils.data.Subset(full, range(100 + attempt, 164 + attempt))
        data.train = second
        assert id(second) != old_id  # the cache keeps ``first``: its id cannot be reused
        served = data.get_dataloader(True)
        expected = torch.stack([full[i][0] for i in second.indices])
        assert served.num_examples == 64 and torch.equal(served.images.float() / 255, expected)
        data.train = full


def test_fashion_mnist_rejects_a_bad_resize():
    with pytest.raises(ValueError, match="resize must be"):
        d2l.FashionMNIST(batch_size=64, resize=(0, 28))


def test_get_tensorloader_batches_tensors():
    class Synthetic(d2l.DataModule):
        def __init__(self, batch_size=4):
            super().__init__()
            self.save_hyperparameters()
            self.X, self.y = torch.arange(10.0).reshape(10, 1), torch.arange(10)

        def get_dataloader(self, train):
            i = slice(0, 8) if train else slice(8, None)
            return self.get_tensorloader((self.X, self.y), train, i)

    data = Synthetic()
    assert [len(b[0]) for b in data.train_dataloader()] == [4, 4]
    assert [len(b[0]) for b in data.val_dataloader()] == [2]


@pytest.mark.cuda  # num_gpus=1: on a GPU machine this trains on the GPU
def test_trainer_fit_trains_through_the_course_loop(capsys):
    torch.manual_seed(0)
    data = d2l.FashionMNIST(batch_size=64)
    model = TinyNet(lr=0.3)
    model.apply_init([next(iter(data.get_dataloader(True)))[0]], d2l.init_cnn)
    trainer = d2l.Trainer(max_epochs=3, num_gpus=1)
    history = trainer.fit(model, data)
    assert trainer.history is history and len(history) == 1  # quick mode: one epoch
    assert history.final.test_acc > 0.3  # chance is 0.1
    assert math.isfinite(history.final.test_loss)
    assert trainer.device == d2l.try_gpu() and model.trainer is trainer
    assert next(model.parameters()).device.type == trainer.device.type
    assert trainer.epoch == 1 and trainer.train_batch_idx == trainer.num_train_batches
    out = capsys.readouterr().out
    assert "training on" in out and "test acc" in out
    before = [p.detach().clone() for p in model.parameters()]
    trainer.fit_epoch()  # one more epoch, same optimizer
    assert trainer.epoch == 2
    assert any(not torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))


def test_trainer_fit_materialises_a_model_that_was_never_run():
    data = d2l.FashionMNIST(batch_size=256)
    model = TinyNet()  # cnn-design's RegNetX goes to fit without apply_init
    history = d2l.Trainer(max_epochs=1).fit(model, data)
    assert len(history) == 1 and model.net[0].weight.shape == (4, 1, 3, 3)


def test_gradient_clip_val_bounds_the_gradient_norm(monkeypatch):
    norms = []
    real = nn.utils.clip_grad_norm_

    def spy(params, max_norm, *args, **kwargs):
        norms.append(max_norm)
        return real(params, max_norm, *args, **kwargs)

    monkeypatch.setattr(nn.utils, "clip_grad_norm_", spy)
    data = d2l.FashionMNIST(batch_size=256)
    d2l.Trainer(max_epochs=1, gradient_clip_val=0.5).fit(TinyNet(), data)
    assert norms and set(norms) == {0.5}
    norms.clear()
    d2l.Trainer(max_epochs=1).fit(TinyNet(), data)
    assert norms == []


def test_a_model_with_its_own_training_step_is_warned():
    class Custom(TinyNet):
        def training_step(self, batch):
            return super().training_step(batch)

    with pytest.warns(UserWarning, match="overrides training_step"):
        d2l.Trainer(max_epochs=1).fit(Custom(), d2l.FashionMNIST(batch_size=256))


def test_init_cnn_is_xavier_on_conv_and_linear_only():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)
    w = conv.weight.detach().clone()
    d2l.init_cnn(conv), d2l.init_cnn(bn)
    assert not torch.equal(conv.weight, w)
    assert torch.equal(bn.weight, torch.ones(2))


def test_resnext_block_shapes():
    blk = d2l.ResNeXtBlock(32, 16, 1)
    assert blk(torch.randn(4, 32, 12, 12)).shape == (4, 32, 12, 12)
    blk = d2l.ResNeXtBlock(32, 16, 1, use_1x1conv=True, strides=2)
    assert blk(torch.randn(4, 16, 12, 12)).shape == (4, 32, 6, 6)
