"""The trainer: real learning, d2l's printed lines, NaN stop, Ctrl-C, checkpoints, switches."""

from __future__ import annotations

import importlib
import json
import math
import platform
import re
import subprocess
import sys

import pytest
import torch
from helpers import CUDA, DEVICES, loss_and_accuracy, small_cnn, weights_at_first_step
from torch import nn

import d2lcnn as d2l


@pytest.fixture(autouse=True)
def full_mode(monkeypatch):
    monkeypatch.delenv("D2LCNN_QUICK", raising=False)


def test_training_learns_well_above_chance(small_iters):
    train_iter, test_iter = small_iters
    torch.manual_seed(0)
    net = small_cnn()
    with weights_at_first_step(net) as start:
        history = d2l.train(net, train_iter, test_iter, 3, 0.05, "cpu", momentum=0.9, plot=False)
    untrained = small_cnn()
    untrained.load_state_dict(start["state"])
    loss0, acc0 = loss_and_accuracy(untrained, train_iter)  # where training started from
    loss, acc = loss_and_accuracy(net, test_iter, history.precision)  # where it ended, counted here
    assert len(history) == 3
    # the History reports this model's test accuracy (within 2 of 1,000 images: kernels differ)
    assert history.final.test_acc == pytest.approx(acc, abs=0.002)
    # chance is 0.10; the untrained model (measured 0.10 here) and a trainer that does not step
    # stay there, one that learns reaches 0.75 in 3 epochs: 0.65 tells them apart
    assert acc0 < 0.3 and history.final.test_acc > 0.65
    # the training loss falls from where it started (2.30 here) to under half of it
    assert history.final.train_loss < 0.5 * loss0
    assert all(e.examples_per_sec == pytest.approx(3000 / e.seconds, rel=0.01) for e in history)


D2L_SNIPPET = """
import torch
from torch import nn
import d2lcnn as d2l

net = nn.Sequential(
    nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
    nn.AvgPool2d(kernel_size=2, stride=2),
    nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
    nn.AvgPool2d(kernel_size=2, stride=2),
    nn.Flatten(),
    nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
    nn.Linear(120, 84), nn.Sigmoid(),
    nn.Linear(84, 10))
X = torch.rand(size=(1, 1, 28, 28), dtype=torch.float32)
for layer in net:
    X = layer(X)
    print(layer.__class__.__name__, 'output shape: \\t', X.shape)
lr, num_epochs = 0.9, 1
d2l.train_ch6(net, train_iter, test_iter, num_epochs, lr, d2l.try_gpu())
"""


def test_book_code_runs_unchanged_with_fewer_than_five_batches(fashion_small, capsys):
    Xtr, ytr, Xte, yte = fashion_small
    # 3 batches: d2l's own train_ch6 divides by len(train_iter) // 5 and crashes here.
    scope = {
        "train_iter": d2l.ImageBatches(Xtr[:600], ytr[:600], 256, shuffle=True, seed=0),
        "test_iter": d2l.ImageBatches(Xte[:300], yte[:300], 256),
    }
    exec(D2L_SNIPPET, scope)
    out = capsys.readouterr().out
    assert "Linear output shape: \t torch.Size([1, 10])" in out
    assert re.search(r"^training on cpu", out, re.M)
    assert re.search(r"^loss \d+\.\d{3}, train acc \d\.\d{3}, test acc \d\.\d{3}$", out, re.M)
    assert re.search(r"^\d+\.\d examples/sec on cpu$", out, re.M)


def no_bf16(monkeypatch) -> None:
    """'auto' keeps fp32 on any CPU: train_ch6 has no precision argument, and where bf16 wins
    the timing race its steps learn slower (these runs: loss 2.28 instead of 1.85)."""
    from d2lcnn import precision as dev

    monkeypatch.setattr(dev, "cpu_has_bf16", lambda: False)


def test_train_ch6_accepts_a_torch_dataloader(fashion_small, monkeypatch):
    Xtr, ytr, Xte, yte = fashion_small
    no_bf16(monkeypatch)
    ds = torch.utils.data.TensorDataset(Xtr[:512].unsqueeze(1).float() / 255, ytr[:512])
    loader = torch.utils.data.DataLoader(ds, batch_size=128, shuffle=True)
    torch.manual_seed(0)
    net = small_cnn()
    with weights_at_first_step(net) as start:
        history = d2l.train_ch6(net, loader, loader, 4, 0.5, "cpu")
    untrained = small_cnn()
    untrained.load_state_dict(start["state"])
    loss0, _ = loss_and_accuracy(untrained, loader)
    loss, acc = loss_and_accuracy(net, loader, history.precision)
    assert len(history) == 4 and history.precision == "fp32"
    assert history.final.test_acc == pytest.approx(acc, abs=2 / 512)  # all 512, counted here
    assert history.final.test_loss == pytest.approx(loss, rel=0.01)
    # it trained on the loader's batches: measured loss 2.29 -> 1.85, accuracy 0.13 -> 0.48
    assert loss < 0.9 * loss0 and acc > 0.3


class BreakAt(nn.Module):
    """Identity until call number ``at``, then injects NaN or raises KeyboardInterrupt.

    Counts training-mode calls, so the tests fix the layout and the precision: ``'auto'`` would
    add the calls of its timing passes (on a CPU with bf16 instructions, ``precision='auto'`` too).
    """

    def __init__(self, at: int, what: str) -> None:
        super().__init__()
        self.calls, self.at, self.what = 0, at, what

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == self.at:
                if self.what == "nan":
                    return x * float("nan")
                raise KeyboardInterrupt
        return x


def test_nan_loss_stops_with_epoch_batch_and_advice(small_iters):
    train_iter, test_iter = small_iters  # 24 batches per epoch
    net = nn.Sequential(small_cnn(), BreakAt(24 + 3, "nan"))
    with pytest.raises(FloatingPointError, match=r"NaN in epoch 2, batch 3 of 24") as err:
        d2l.train(
            net,
            train_iter,
            test_iter,
            3,
            0.05,
            "cpu",
            plot=False,
            channels_last=False,
            precision="fp32",
        )
    assert "try lr=0.005" in str(err.value)
    assert len(err.value.history) == 1  # the finished epoch is kept


def test_ctrl_c_keeps_weights_history_and_checkpoint(small_iters, tmp_path):
    train_iter, test_iter = small_iters
    torch.manual_seed(0)
    net = nn.Sequential(small_cnn(), BreakAt(24 + 5, "interrupt"))
    ckpt = tmp_path / "run.pt"
    with weights_at_first_step(net) as start:
        history = d2l.train(net, train_iter, test_iter, 3, 0.05, "cpu", checkpoint=ckpt,
                            plot=False, channels_last=False, precision="fp32")  # fmt: skip
    assert history.interrupted and len(history) == 1
    # the weights are the trained ones, not reset: the model predicts well above where it started
    untrained = nn.Sequential(small_cnn(), BreakAt(0, "interrupt"))
    untrained.load_state_dict(start["state"])
    before = d2l.evaluate_accuracy_gpu(untrained, test_iter)
    assert d2l.evaluate_accuracy_gpu(net, test_iter) > before + 0.1
    state = torch.load(ckpt, weights_only=True)
    for k, v in state["model"].items():  # the checkpoint holds those trained weights
        assert torch.equal(v, net.state_dict()[k])
    assert state["epoch"] == 1 and len(state["history"]) == 1
    # Ctrl-C in the forward pass of epoch 2's 5th batch: 4 of its steps done, kept to resume at
    assert state["position"]["epoch"] == 1 and state["position"]["batches"] == 4


@pytest.mark.parametrize("device", DEVICES)
def test_checkpoint_round_trip_and_resume(small_iters, tmp_path, device):
    train_iter, test_iter = small_iters
    ckpt = tmp_path / "ck.pt"
    torch.manual_seed(0)
    net = small_cnn()
    first = d2l.train(net, train_iter, test_iter, 1, 0.05, device, checkpoint=ckpt, plot=False)
    fresh = small_cnn()
    state = d2l.load_checkpoint(ckpt, fresh)  # a CUDA run's checkpoint loads on the CPU too
    assert state["epoch"] == 1
    X, _ = next(iter(test_iter))
    net.cpu().eval(), fresh.eval()
    assert torch.allclose(net(X), fresh(X), atol=1e-5)  # layouts may differ (channels_last)
    resumed = d2l.train(fresh, train_iter, test_iter, 2, 0.05, device, checkpoint=ckpt,
                        resume=True, init=None, plot=False)  # fmt: skip
    assert len(resumed) == 2 and resumed[0] == first[0]
    assert next(fresh.parameters()).device.type == device
    assert torch.load(ckpt, weights_only=True, map_location="cpu")["epoch"] == 2


def test_interrupted_save_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "w.pt"
    d2l.save_checkpoint(target, small_cnn())
    before = target.read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        d2l.save_checkpoint(target, small_cnn())
    assert target.read_bytes() == before  # the old checkpoint survives intact
    assert [p.name for p in tmp_path.iterdir()] == ["w.pt"]


def test_quick_mode_caps_epochs(small_iters, monkeypatch, capsys):
    monkeypatch.setenv("D2LCNN_QUICK", "1")
    train_iter, test_iter = small_iters
    history = d2l.train(small_cnn(), train_iter, test_iter, 5, 0.05, "cpu", plot=False)
    assert len(history) == 1
    assert "training 1 epoch(s) instead of 5" in capsys.readouterr().err


def test_speed_switches_keep_accuracy(small_iters):
    """channels_last and bf16 autocast on vs off: same data, same init, similar accuracy."""
    train_iter, test_iter = small_iters
    accs = {}
    for name, opts in {"plain": dict(precision="fp32", channels_last=False),
                       "fast": dict(precision="bf16", channels_last=True)}.items():  # fmt: skip
        torch.manual_seed(0)
        train_iter.__init__(train_iter.images, train_iter.labels, 128, shuffle=True, seed=0)
        h = d2l.train(small_cnn(), train_iter, test_iter, 2, 0.05, "cpu", momentum=0.9,
                      plot=False, **opts)  # fmt: skip
        accs[name] = h.final.test_acc
    assert accs["plain"] > 0.6
    assert abs(accs["plain"] - accs["fast"]) < 0.05, accs


def test_evaluate_accuracy_matches_a_manual_count(small_iters):
    _, test_iter = small_iters
    net = small_cnn().eval()
    with torch.no_grad():
        correct = sum(d2l.accuracy(net(X), y) for X, y in test_iter)
    assert d2l.evaluate_accuracy_gpu(net, test_iter) == correct / 1000


def test_unknown_options_are_explained(small_iters):
    train_iter, test_iter = small_iters
    with pytest.raises(ValueError, match="optimizer must be"):
        d2l.train(small_cnn(), train_iter, test_iter, 1, 0.1, "cpu", optimizer="lbfgs")
    with pytest.raises(ValueError, match="cuda:3 was asked for, but this machine has 0 CUDA"):
        d2l.train(small_cnn(), train_iter, test_iter, 1, 0.1, "cuda:3")


class ViewFlatten(nn.Module):
    """Classic tutorial code: flatten with .view(), which needs a contiguous NCHW tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 5)
        self.fc = nn.Linear(4 * 24 * 24, 10)

    def forward(self, x):
        return self.fc(self.conv(x).view(x.shape[0], -1))


def test_view_after_conv_still_trains_with_the_default_layout(small_iters, capsys):
    train_iter, test_iter = small_iters
    history = d2l.train(ViewFlatten(), train_iter, test_iter, 1, 0.05, "cpu", plot=False)
    assert len(history) == 1
    assert "channels_last is off for this model" in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        d2l.train(
            ViewFlatten(), train_iter, test_iter, 1, 0.05, "cpu", plot=False, channels_last=True
        )


@pytest.mark.parametrize("name, momentum", [("sgd", 0.0), ("sgd", 0.9), ("adam", 0.0),
                                            ("adamw", 0.0)])  # fmt: skip
def test_trainer_optimizers_step_like_torchs_reference_implementation(name, momentum):
    """The fused steps train() picks for speed give the same parameters as the for-loop steps."""
    from d2lcnn.train import _optimizer

    torch.manual_seed(0)
    ours, ref = small_cnn(), small_cnn()
    ref.load_state_dict(ours.state_dict())
    before = [p.detach().clone() for p in ours.parameters()]
    opt = _optimizer(name, ours.parameters(), 0.01, momentum, 1e-4, torch.device("cpu"))
    kinds = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    extra = {"momentum": momentum} if name == "sgd" else {}
    ref_opt = kinds[name](ref.parameters(), lr=0.01, weight_decay=1e-4, foreach=False, **extra)
    X, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    for _ in range(3):
        for net, o in ((ours, opt), (ref, ref_opt)):
            o.zero_grad()
            nn.functional.cross_entropy(net(X), y).backward()
            o.step()
    for p, q in zip(ours.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert all(not torch.equal(p, b) for p, b in zip(ours.parameters(), before, strict=True))


def test_layout_timing_leaves_the_model_and_random_state_as_they_were(small_iters):
    """channels_last='auto' times training passes in both layouts before training starts."""
    from d2lcnn.autotune import fastest

    train_iter, _ = small_iters
    net = d2l.models.bn_lenet_scratch()  # the book's BatchNorm replaces its buffer tensors
    net(torch.rand(2, 1, 28, 28))  # one pass, so the statistics are not the initial ones
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    torch.manual_seed(1)
    nhwc, _ = fastest(net, train_iter, torch.device("cpu"), (True, False), (None,))
    after_draw = torch.rand(3)
    torch.manual_seed(1)
    assert torch.equal(after_draw, torch.rand(3))  # the random-number stream was not used up
    assert isinstance(nhwc, bool)
    assert not net.training  # the mode is restored
    assert all(p.grad is None for p in net.parameters())
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    fmt = torch.channels_last if nhwc else torch.contiguous_format
    assert net[0].weight.is_contiguous(memory_format=fmt)  # the model is left in the chosen layout


MALLOC_PROBE = """
import ctypes, json, torch
import d2lcnn as d2l

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2

def mmapped_blocks_for_a_64_mib_tensor():
    base = libc.mallinfo2().hblks
    x = torch.empty(16 * 2**20)
    n = libc.mallinfo2().hblks - base
    del x
    return n

before = mmapped_blocks_for_a_64_mib_tensor()
s = d2l.load_arrays()
it = d2l.ImageBatches(s.train_images[:256], s.train_labels[:256], 128)
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
d2l.train(net, it, it, 1, 0.1, "cpu", plot=False, verbose=False, keep_cpu_memory=KEEP)
print(json.dumps([before, mmapped_blocks_for_a_64_mib_tensor()]))
"""


@pytest.mark.skipif(
    not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"),
    reason="keep_freed_cpu_memory tunes glibc's malloc",
)
@pytest.mark.parametrize("keep", [True, False])
def test_training_on_the_cpu_keeps_freed_memory_in_the_process(keep):
    # A fresh process: the malloc setting is process-wide. 64 MiB is above glibc's largest mmap
    # threshold, so by default such a tensor gets its own mmap (returned to the kernel on free);
    # after train() on a CPU it comes from the heap, which keeps freed memory for the next step.
    code = MALLOC_PROBE.replace("KEEP", str(keep))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == 1
    assert after == (0 if keep else 1)


@pytest.mark.parametrize("device", DEVICES)
def test_fp16_with_loss_scaling_trains_and_skips_overflowing_steps(small_iters, monkeypatch,
                                                                   device):  # fmt: skip
    """precision='fp16' (what 'auto' picks on a T4) runs for real with GradScaler, on the CPU
    and on CUDA (forced on: an H100's 'auto' would pick bf16).

    A scale of 2**24 makes the first steps' float16 gradients overflow: the scaler skips those
    steps and lowers its scale, the loss stays finite, and the NaN/inf guard does not fire. With
    momentum: torch's fused SGD corrupts its momentum buffer on skipped steps (NaN weights).
    """
    train_mod = importlib.import_module("d2lcnn.train")  # the module, not d2l.train
    scalers = []

    def huge_scale(device, dtype):
        scaler = torch.amp.GradScaler(device.type, init_scale=2.0**24) if dtype else None
        scalers.append(scaler)
        return scaler

    monkeypatch.setattr(train_mod, "_grad_scaler", huge_scale)
    train_iter, test_iter = small_iters
    torch.manual_seed(0)
    history = d2l.train(small_cnn(), train_iter, test_iter, 2, 0.05, device, momentum=0.9,
                        precision="fp16", plot=False)  # fmt: skip
    (scaler,) = scalers
    assert scaler.get_scale() < 2.0**16  # overflowing steps were skipped and the scale lowered
    assert history.precision == "fp16 autocast" and len(history) == 2
    assert history.final.test_acc > 0.5  # the steps that were not skipped trained the model


@pytest.mark.parametrize("device", [CUDA])
def test_auto_precision_on_a_gpu_follows_its_compute_capability(small_iters, device):
    """'auto' on CUDA: bf16 autocast from capability 8.0 (A100, H100), fp16 with loss scaling
    below (T4, V100); the run learns either way."""
    major = torch.cuda.get_device_capability()[0]
    expected = "bf16 autocast" if major >= 8 else "fp16 autocast"
    train_iter, test_iter = small_iters
    torch.manual_seed(0)
    history = d2l.train(small_cnn(), train_iter, test_iter, 2, 0.05, device, momentum=0.9,
                        plot=False)  # fmt: skip
    assert history.precision == expected, (torch.cuda.get_device_name(), history.precision)
    assert history.device.startswith("cuda") and history.final.test_acc > 0.5


@pytest.mark.parametrize("device", [CUDA])
def test_data_lives_and_is_resized_on_the_gpu(fashion_small, device):
    """The images are copied to the GPU once and each batch is converted and resized there, to
    the same values as on the CPU."""
    Xtr, ytr, _, _ = fashion_small
    on_cpu = d2l.ImageBatches(Xtr[:512], ytr[:512], 128, resize=96)
    on_gpu = on_cpu.to(device)
    assert on_gpu.images.device.type == "cuda" and on_cpu.to(device) is on_gpu  # copied once
    (Xc, yc), (Xg, yg) = next(iter(on_cpu)), next(iter(on_gpu))
    assert Xg.device.type == yg.device.type == "cuda" and Xg.shape == (128, 1, 96, 96)
    assert torch.equal(yc, yg.cpu()) and torch.allclose(Xc, Xg.cpu(), atol=1e-5)


def lazy_lenet() -> nn.Module:
    """The book's LeNet (d2l 1.0) as a plain Sequential of lazy layers."""
    return nn.Sequential(
        nn.LazyConv2d(6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, stride=2),
        nn.LazyConv2d(16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(2, stride=2), nn.Flatten(),
        nn.LazyLinear(120), nn.Sigmoid(), nn.LazyLinear(84), nn.Sigmoid(), nn.LazyLinear(10),
    )  # fmt: skip


def test_lazy_layers_work_in_train_ch6_and_the_shape_printers(small_iters, capsys, monkeypatch):
    train_iter, test_iter = small_iters
    no_bf16(monkeypatch)
    net = lazy_lenet()
    d2l.print_shapes(net, (1, 1, 28, 28))
    assert "Linear output shape:\t torch.Size([1, 10])" in capsys.readouterr().out
    assert d2l.layer_summary(lazy_lenet(), (1, 1, 28, 28), show=False).total_params == 61706
    torch.manual_seed(0)
    net = lazy_lenet()
    with weights_at_first_step(net) as start:
        history = d2l.train_ch6(net, train_iter, test_iter, 1, 0.9, "cpu")
    untrained = lazy_lenet()
    untrained(torch.zeros(1, 1, 28, 28))  # materialise, then take the weights training started from
    untrained.load_state_dict(start["state"])
    loss0, _ = loss_and_accuracy(untrained, test_iter)
    loss, acc = loss_and_accuracy(net, test_iter, history.precision)
    assert len(history) == 1
    assert history.final.test_acc == pytest.approx(acc, abs=0.002)
    assert history.final.test_loss == pytest.approx(loss, rel=0.01) and loss < loss0


def test_lazy_layers_are_xavier_initialised_after_they_take_their_shapes(small_iters):
    train_iter, test_iter = small_iters
    net = lazy_lenet()
    d2l.train(net, train_iter, test_iter, 1, 0.9, "cpu", plot=False, verbose=False, seed=0)
    bound = math.sqrt(6 / (400 + 120))  # Xavier-uniform for Linear(400, 120)
    w = net[7].weight
    assert w.shape == (120, 400) and w.abs().max() <= bound + 0.05  # + one epoch of updates


def test_a_layer_that_does_not_fit_is_named_when_training(small_iters):
    train_iter, test_iter = small_iters  # batch size 128
    net = nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(100, 10),
    )  # fmt: skip
    with pytest.raises(d2l.LayerError) as err:
        d2l.train_ch6(net, train_iter, test_iter, 1, 0.1, "cpu")
    msg = str(err.value)
    assert msg.startswith("layer 4 (Linear(in_features=100")
    assert "input of shape (128, 864)" in msg  # the learner's batch, not a probe's
    assert "set in_features=864" in msg


def test_the_class_api_names_the_failing_layer_too(monkeypatch):
    monkeypatch.setenv("D2LCNN_QUICK", "1")

    class Broken(d2l.Classifier):
        def __init__(self, lr=0.1):
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Sequential(nn.Conv2d(1, 6, 5), nn.Flatten(), nn.Linear(100, 10))

    with pytest.raises(d2l.LayerError, match=r"layer 2 'net.2' .* set in_features=3456"):
        d2l.Trainer(max_epochs=1).fit(Broken(), d2l.FashionMNIST(batch_size=64))


@pytest.mark.parametrize(
    "content, what",
    [(b"hello, not a checkpoint", "is not a d2lcnn checkpoint: it is not a file written by"),
     ("state_dict", "holds a bare state dict"), ("list", "holds a list")],
)  # fmt: skip
def test_load_checkpoint_says_what_a_file_is_not(tmp_path, content, what):
    path = tmp_path / "file.pt"
    if content == "state_dict":
        torch.save(small_cnn().state_dict(), path)
    elif content == "list":
        torch.save([1, 2], path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(what)):
        d2l.load_checkpoint(path, small_cnn())
    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        d2l.load_checkpoint(tmp_path / "missing.pt", small_cnn())


def test_load_checkpoint_into_another_architecture_is_explained(tmp_path):
    path = d2l.save_checkpoint(tmp_path / "a.pt", small_cnn())
    with pytest.raises(ValueError, match="do not fit this network"):
        d2l.load_checkpoint(path, nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))


@pytest.mark.parametrize("kwargs, what", [({"num_epochs": 0}, "num_epochs must be a positive"),
                                          ({"num_epochs": 2.5}, "num_epochs must be a positive"),
                                          ({"lr": -1.0}, "lr must be a positive"),
                                          ({"curves": ["acc"]}, "curves must be chosen")])  # fmt: skip
def test_bad_training_arguments_are_explained(small_iters, kwargs, what):
    train_iter, test_iter = small_iters
    args = {"num_epochs": 1, "lr": 0.1, **kwargs}
    with pytest.raises(ValueError, match=what):
        d2l.train(small_cnn(), train_iter, test_iter, device="cpu", plot=False, **args)


@pytest.mark.parametrize(
    "bf16_seconds, expected",
    [(1.02, (True, None)),  # slower than fp32: fp32
     (0.97, (True, torch.bfloat16)),  # faster, if only by 3 % (LeNet's probe): bf16
     (0.5, (True, torch.bfloat16)),  # clearly faster: bf16
     (3.0, (True, None))],  # bf16 slower (BN-LeNet on a CPU: 15 %)
)  # fmt: skip
def test_auto_precision_on_a_bf16_cpu_keeps_the_faster(
    monkeypatch, small_iters, bf16_seconds, expected
):
    from d2lcnn import autotune as layout

    times = {(True, None): 1.0, (False, None): 1.2, (True, torch.bfloat16): bf16_seconds,
             (False, torch.bfloat16): 9.0}  # fmt: skip
    monkeypatch.setattr(layout, "_time", lambda net, it, device, candidates: times)
    train_iter, _ = small_iters
    net = small_cnn()
    choice = layout.fastest(net, train_iter, torch.device("cpu"), (True, False),
                            (None, torch.bfloat16))  # fmt: skip
    assert choice == expected
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("bf16_seconds, name, dtype", [(0.5, "bf16 autocast", torch.bfloat16),
                                                        (2.0, "fp32", torch.float32)])  # fmt: skip
def test_auto_precision_trains_on_a_cpu_with_bf16_instructions(
    monkeypatch, small_iters, bf16_seconds, name, dtype
):
    """'auto' on a CPU with bf16 instructions trains in what the timing chose, and says so."""
    from d2lcnn import autotune as layout
    from d2lcnn import precision as dev

    monkeypatch.setattr(dev, "cpu_has_bf16", lambda: True)  # as on AVX512-BF16 / AMX CPUs
    times = {(True, None): 1.0, (False, None): 1.2, (True, torch.bfloat16): bf16_seconds,
             (False, torch.bfloat16): 9.0}  # fmt: skip
    timed = []
    monkeypatch.setattr(layout, "_time", lambda net, it, device, candidates: timed.append(
        sorted(candidates, key=str)) or times)  # fmt: skip
    train_iter, test_iter = small_iters
    net = small_cnn()
    seen = set()  # the dtype of the first convolution's output in every training pass
    net[0].register_forward_hook(lambda m, i, out: seen.add(out.dtype) if m.training else None)
    h = d2l.train(net, train_iter, test_iter, 1, 0.05, "cpu", plot=False, seed=0)
    assert timed == [sorted(times, key=str)]  # both precisions were candidates, timed once
    assert h.precision == name and seen == {dtype}
    assert h.channels_last and h.final.test_acc > 0.3
