"""Chapter 13's options of ``train()``: ``augment``, ``ema`` (weight average), ``tta`` (mirror)."""

from __future__ import annotations

import pytest
import torch
from helpers import small_cnn

import d2lcnn as d2l

FIXED = {"precision": "fp32", "channels_last": False, "plot": False, "verbose": False}


@pytest.fixture(autouse=True)
def full_mode(monkeypatch):
    monkeypatch.delenv("D2LCNN_QUICK", raising=False)


def iters(fashion_small, n_train=3000, batch_size=128):
    Xtr, ytr, Xte, yte = fashion_small
    return (d2l.ImageBatches(Xtr[:n_train], ytr[:n_train], batch_size, shuffle=True, seed=0),
            d2l.ImageBatches(Xte, yte, 256))  # fmt: skip


def fresh():
    """small_cnn with the same initial weights every time."""
    torch.manual_seed(0)
    return small_cnn()


def trained(net, train_iter, test_iter, num_epochs=1, lr=0.05, **kwargs):
    torch.manual_seed(0)
    return d2l.train(net, train_iter, test_iter, num_epochs, lr, "cpu", **{**FIXED, **kwargs})


def test_augment_sees_every_training_batch_and_no_test_batch(fashion_small):
    train_iter, test_iter = iters(fashion_small)
    seen = []

    def identity(X):
        seen.append((tuple(X.shape), X.device.type, X.dtype))
        return X

    plain_net, net = fresh(), fresh()
    plain = trained(plain_net, *iters(fashion_small), 2)
    with_identity = trained(net, train_iter, test_iter, 2, augment=identity)
    assert len(seen) == 2 * len(train_iter)
    assert seen[0] == ((128, 1, 28, 28), "cpu", torch.float32)
    # an identity augmentation changes nothing: the same losses and test accuracies
    assert [e.train_loss for e in with_identity] == [e.train_loss for e in plain]
    assert [e.test_acc for e in with_identity] == [e.test_acc for e in plain]


def test_the_network_learns_from_the_augmented_batches(fashion_small):
    blank = trained(fresh(), *iters(fashion_small), 2, momentum=0.9, augment=torch.zeros_like)
    plain = trained(fresh(), *iters(fashion_small), 2, momentum=0.9)
    # trained on blank images, the network can only learn the class frequencies: chance
    assert blank.final.test_acc < 0.2 < 0.6 < plain.final.test_acc


def test_an_augmentation_that_changes_the_shape_is_explained(fashion_small):
    with pytest.raises(ValueError, match=r"augment must return a batch like its input "
                       r"\(\(128, 1, 28, 28\).*shape \(128, 1, 24, 24\).*pad, then crop"):  # fmt: skip
        trained(fresh(), *iters(fashion_small), augment=lambda X: X[..., 2:-2, 2:-2])


@pytest.mark.filterwarnings("ignore:ema=0.6 averages")  # 4 steps: a test of the arithmetic
def test_ema_is_the_exponential_average_of_the_weights_after_every_step(fashion_small):
    train_iter, test_iter = iters(fashion_small, n_train=512)  # 4 steps
    net, decay = fresh(), 0.6
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    after_step = []
    opt.register_step_post_hook(
        lambda *_: after_step.append([p.detach().clone() for p in net.parameters()])
    )
    history = trained(net, train_iter, test_iter, optimizer=opt, ema=decay)
    assert len(after_step) == 4
    expected = after_step[0]  # the average starts at the weights after the first step
    for weights in after_step[1:]:
        expected = [decay * e + (1 - decay) * w for e, w in zip(expected, weights, strict=True)]
    for p, e, last in zip(net.parameters(), expected, after_step[-1], strict=True):
        torch.testing.assert_close(p.detach(), e)  # net ends with the averaged weights
        assert not torch.allclose(e, last)
    # the test accuracy reported is the averaged network's
    assert history.final.test_acc == d2l.evaluate_accuracy_gpu(net, test_iter)


@pytest.mark.filterwarnings("ignore:ema=0.9 averages")  # 8 to 16 steps
def test_ema_is_saved_and_resumed_with_the_checkpoint(fashion_small, tmp_path):
    ckpt = tmp_path / "run.pt"
    one_go = fresh()
    trained(one_go, *iters(fashion_small, n_train=1024), 2, ema=0.9)
    train_iter, test_iter = iters(fashion_small, n_train=1024)
    split = fresh()
    trained(split, train_iter, test_iter, 1, ema=0.9, checkpoint=ckpt)
    state = torch.load(ckpt, weights_only=True)
    assert state["ema_updates"] == len(train_iter)
    assert any(not torch.equal(state["model"][k], state["ema"][k]) for k in state["model"])
    resumed = fresh()
    history = trained(resumed, train_iter, test_iter, 2, ema=0.9, checkpoint=ckpt, resume=True,
                      init=None)  # fmt: skip
    assert len(history) == 2
    for p, q in zip(resumed.parameters(), one_go.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_tta_scores_each_image_by_the_mean_prediction_for_it_and_its_mirror(fashion_small):
    train_iter, test_iter = iters(fashion_small)
    net = fresh()
    history = trained(net, train_iter, test_iter, tta=True)
    net.eval()
    correct = n = 0
    with torch.no_grad():
        for X, y in test_iter:
            probs = net(X).softmax(-1) + net(X.flip(-1)).softmax(-1)
            correct += int((probs.argmax(-1) == y).sum())
            n += len(y)
    assert (
        history.final.test_acc == correct / n == d2l.evaluate_accuracy_gpu(net, test_iter, tta=True)
    )
    assert history.final.test_acc != d2l.evaluate_accuracy_gpu(net, test_iter)  # not the plain one


def test_an_average_reaching_back_over_much_of_the_run_is_warned_about(fashion_small):
    train_iter, test_iter = iters(fashion_small, n_train=1280, batch_size=64)  # 20 steps an epoch
    with pytest.warns(UserWarning, match=r"ema=0.9 averages over about 10 steps, more than a "
                      r"tenth of this run's 20: .*too short to gain from an average: ema=None"):  # fmt: skip
        trained(fresh(), train_iter, None, 1, ema=0.9, max_steps=1)
    # the warning is about the run as planned (10 epochs, 200 steps), raised at set-up: one step
    # of it is enough to see it (max_steps=1)
    with pytest.warns(UserWarning, match=r"ema=0.99 averages over about 100 steps, more than a "
                      r"tenth of this run's 200: .*1 / \(1 - decay\) <= 20, e\.g\. ema=0\.9\."):  # fmt: skip
        trained(fresh(), train_iter, None, 10, ema=0.99, max_steps=1)


def test_an_average_over_the_last_tenth_of_the_run_or_less_is_not_warned_about(fashion_small):
    import warnings

    train_iter, test_iter = iters(fashion_small, n_train=1280, batch_size=64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        trained(fresh(), train_iter, test_iter, 5, ema=0.9, max_steps=1)  # reach 10 of 100 steps


@pytest.mark.parametrize("kwargs, what", [
    ({"augment": 3}, "augment must be a function"),
    ({"ema": 1.0}, "ema must be a decay between 0 and 1"),
    ({"ema": 1}, "ema must be a decay between 0 and 1"),
    ({"tta": "yes"}, "tta must be True or False"),
])  # fmt: skip
def test_bad_recipe_arguments_are_explained(fashion_small, kwargs, what):
    with pytest.raises(ValueError, match=what):
        trained(fresh(), *iters(fashion_small, n_train=256), **kwargs)
