"""Same seed, same run: a rerun reproduces a run, a resumed run continues it (issue "same seed").

Each run is a fresh process (``tests/repro_run.py``), as a learner's rerun or a resumed run after a
restart would be; the speed decisions go to a temporary cache folder (``XDG_CACHE_HOME``)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from helpers import DEVICES

import d2lcnn as d2l
from d2lcnn import autotune

RUN = Path(__file__).with_name("repro_run.py")


def run(tmp_path: Path, name: str, *args: str, cache: Path | None = None,
        env: dict | None = None) -> tuple[dict, str]:  # fmt: skip
    """Train in a fresh process; (what it saved, its stdout + stderr)."""
    out = tmp_path / f"{name}.pt"
    environ = {k: v for k, v in os.environ.items() if k != "D2LCNN_QUICK"}
    environ["XDG_CACHE_HOME"] = str(cache or tmp_path / "cache")
    environ.pop("D2LCNN_REMEASURE", None)
    environ.update(env or {})
    done = subprocess.run([sys.executable, str(RUN), str(out), *args], capture_output=True,
                          text=True, env=environ, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return torch.load(out, weights_only=True), done.stdout + done.stderr


def same(a: dict, b: dict) -> None:
    """Bit-identical weights and losses."""
    for k, v in a["weights"].items():
        assert torch.equal(v, b["weights"][k]), f"{k} differs by {(v - b['weights'][k]).abs().max()}"
    assert a["train_loss"] == b["train_loss"] and a["test_loss"] == b["test_loss"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict:
    """Two epochs, never stopped (fp32, NCHW)."""
    return run(tmp_path_factory.mktemp("straight"), "straight")[0]


def test_resumed_in_a_new_process_after_an_epoch_is_the_run_never_stopped(tmp_path, straight):
    ckpt = str(tmp_path / "ckpt.pt")
    run(tmp_path, "first", "--epochs", "1", "--checkpoint", ckpt)
    resumed, _ = run(tmp_path, "resumed", "--epochs", "2", "--checkpoint", ckpt, "--resume")
    same(resumed, straight)


def test_ctrl_c_in_the_middle_of_an_epoch_resumes_at_the_next_step(tmp_path, straight):
    """Ctrl-C during batch 3 of epoch 2: that step finishes, the checkpoint keeps the position,
    and the resumed run trains batches 4..8 of epoch 2 in the same order, ending bit-identical."""
    ckpt = str(tmp_path / "ckpt.pt")
    stopped, log = run(tmp_path, "stopped", "--checkpoint", ckpt, "--interrupt-at", "2,3")
    assert stopped["interrupted"] and len(stopped["train_loss"]) == 1
    assert "Interrupted in epoch 2 after 3 of 8 batches" in log
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 1 and state["position"]["batches"] == 3
    resumed, _ = run(tmp_path, "resumed", "--checkpoint", ckpt, "--resume")
    same(resumed, straight)


def test_two_fresh_processes_with_auto_train_the_same_run(tmp_path):
    """'auto' is timed in the first process and remembered: the second trains in the same
    precision and layout without timing anything, and ends bit-identical."""
    first, log1 = run(tmp_path, "first", "--epochs", "1", "--auto")
    second, log2 = run(tmp_path, "second", "--epochs", "1", "--auto")
    assert "timed now, kept in" in log1 and "remembered from" in log2, log1 + log2
    same(first, second)
    kept = list((tmp_path / "cache" / "d2lcnn" / "autotune").glob("*.json"))
    assert len(kept) == 1
    again, log3 = run(tmp_path, "again", "--epochs", "1", "--auto",
                      env={"D2LCNN_REMEASURE": "1"})  # fmt: skip
    assert "timed now" in log3


def lenet_batches(batch_size: int = 64) -> d2l.ImageBatches:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (256, 1, 28, 28), dtype=torch.uint8, generator=g)
    return d2l.ImageBatches(images, torch.randint(0, 10, (256,), generator=g), batch_size)


def test_a_damaged_decision_is_ignored_with_a_warning_and_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("D2LCNN_REMEASURE", raising=False)
    net, data, cpu = d2l.MODELS["lenet"].build(), lenet_batches(), torch.device("cpu")
    first = autotune.choose(net, data, cpu, (True, False), (None,))
    assert first.how == "measured" and first.path.is_file()
    assert autotune.choose(net, data, cpu, (True, False), (None,)).how == "remembered"
    first.path.write_text('{"nhwc": tr')  # a write cut short by a full disk, say
    with pytest.warns(UserWarning, match="ignoring the damaged speed decision"):
        again = autotune.choose(net, data, cpu, (True, False), (None,))
    assert again.how == "measured" and again.path.read_text().startswith("{")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert autotune.choose(net, data, cpu, (True, False), (None,)).how == "remembered"


def test_the_decision_is_kept_per_architecture_and_batch_size(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cpu = torch.device("cpu")
    for net, data in [(d2l.MODELS["lenet"].build(), lenet_batches(64)),
                      (d2l.MODELS["lenet"].build(), lenet_batches(32)),
                      (d2l.MODELS["bn_lenet"].build(), lenet_batches(64))]:  # fmt: skip
        assert autotune.choose(net, data, cpu, (True, False), (None,)).how == "measured"
    assert len(list((tmp_path / "d2lcnn" / "autotune").glob("*.json"))) == 3
    # one candidate: nothing to decide, nothing kept
    fixed = autotune.choose(d2l.MODELS["lenet"].build(), lenet_batches(16), cpu, (False,), (None,))
    assert fixed.how == "fixed" and len(list((tmp_path / "d2lcnn" / "autotune").glob("*"))) == 3


def test_an_unwritable_cache_only_costs_a_warning(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # the cache folder cannot be made
    with pytest.warns(UserWarning, match="could not keep the speed decision"):
        d = autotune.choose(d2l.MODELS["lenet"].build(), lenet_batches(), torch.device("cpu"),
                            (True, False), (None,))  # fmt: skip
    assert d.how == "measured" and d.path is None


class RunsOutOfMemory(torch.nn.Module):
    """LeNet whose forward pass raises CUDA's out-of-memory error at call ``at``."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.net, self.at, self.calls = d2l.MODELS["lenet"].build(), at, 0

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.at:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.net(X)


@pytest.mark.parametrize("device", DEVICES)
def test_out_of_memory_in_training_is_a_lesson_and_keeps_the_run(tmp_path, monkeypatch, device):
    monkeypatch.delenv("D2LCNN_QUICK", raising=False)  # three epochs, not quick mode's one
    data = lenet_batches(64)
    net = RunsOutOfMemory(at=2 + 4 + 2)  # dry run (1), epoch 1 (4 batches), 2 into epoch 2 ...
    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(d2l.DeviceMemoryError) as info:
        d2l.train(net, data, None, 3, 0.1, device, precision="fp32", channels_last=False,
                  checkpoint=ckpt, plot=False, verbose=False)  # fmt: skip
    message = str(info.value)
    assert "ran out of memory during training (batch size 64, input 1x28x28" in message
    assert "try batch_size=32" in message and "CUDA out of memory" in message
    if device == "cuda":  # the memory the GPU has, as torch reports it
        total = torch.cuda.get_device_properties(0).total_memory / 2**30
        assert f"the device has {total:.1f} GiB" in message
    assert len(info.value.history) == 1 and info.value.history.interrupted
    state = torch.load(ckpt, weights_only=True, map_location="cpu")  # the steps taken, kept
    assert state["epoch"] == 1 and state["position"]["batches"] == 2
    for k, v in state["model"].items():
        assert torch.equal(v, net.state_dict()[k].cpu())


def test_out_of_memory_in_the_dry_run_says_so():
    with pytest.raises(d2l.DeviceMemoryError, match="during the dry run .* try batch_size=32"):
        d2l.train(RunsOutOfMemory(at=1), lenet_batches(64), None, 1, 0.1, "cpu", plot=False,
                  verbose=False)  # fmt: skip


def test_arguments_are_checked_before_anything_with_a_process_wide_effect(monkeypatch):
    import importlib

    train_module = importlib.import_module("d2lcnn.train")  # the module, not d2lcnn.train()

    touched = []
    monkeypatch.setattr(train_module.dist_, "init_distributed", lambda **k: touched.append(1))
    monkeypatch.setattr(train_module, "keep_freed_cpu_memory", lambda: touched.append(2))
    net, data = d2l.MODELS["lenet"].build(), lenet_batches()  # (building draws random numbers)
    state = torch.get_rng_state()
    for bad, match in [({"schedule": "cosin"}, "schedule must be"),
                       ({"optimizer": "adm"}, "optimizer must be"),
                       ({"precision": "fp8"}, "precision must be"),
                       ({"resume": True}, "resume=True needs the checkpoint"),
                       ({"channels_last": "yes"}, "channels_last must be"),
                       ({"seed": 1.5}, "seed must be an integer"),
                       ({"device": "cuda:7"}, "Device cuda:7 was asked for")]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            d2l.train(net, data, None, 1, 0.1, **{"seed": 3, **bad})
    assert touched == [] and torch.equal(torch.get_rng_state(), state)


def test_ctrl_c_waits_for_the_step_and_a_second_one_does_not():
    from d2lcnn.train import _Interrupts

    outside = _Interrupts()
    with pytest.raises(KeyboardInterrupt):  # between steps (loading data, evaluating): at once
        outside(2, None)
    assert not outside.torn
    held = _Interrupts()
    held.holding = True
    held(2, None)  # inside a step: only noted
    assert held.requested and not held.torn
    with pytest.raises(KeyboardInterrupt):  # impatient: stops the step half-way ...
        held(2, None)
    assert held.torn  # ... so its state is not written as a resumable position
    done = _Interrupts()
    done.holding, done.requested = True, True
    with pytest.raises(KeyboardInterrupt):
        done.check()  # the step finished: stop here
    assert not done.holding and not done.torn


def test_measuring_or_remembering_draws_the_same_random_numbers(tmp_path, monkeypatch):
    """A shuffled DataLoader draws from torch's generator for every new iterator: the measured
    and the remembered decision must use up the same draws, or the two runs shuffle differently."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("D2LCNN_REMEASURE", raising=False)
    data = lenet_batches()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(data.images.float() / 255, data.labels), 64, shuffle=True)
    after = []
    for how in ("measured", "remembered"):
        torch.manual_seed(0)
        decision = autotune.choose(d2l.MODELS["lenet"].build(), loader, torch.device("cpu"),
                                   (True, False), (None,))  # fmt: skip
        assert decision.how == how
        after.append(torch.get_rng_state())
    assert torch.equal(*after)
