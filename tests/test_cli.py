"""The command line: ``python -m d2lcnn train`` and the benchmark's d2lcnn side."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import loss_and_accuracy

import d2lcnn as d2l

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, quick: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND="Agg")
    if quick:
        env["D2LCNN_QUICK"] = "1"
    return subprocess.run([sys.executable, "-m", "d2lcnn", *args], capture_output=True, text=True,
                          env=env, check=False, timeout=600)  # fmt: skip


def test_train_command_trains_and_prints_metrics(tmp_path, monkeypatch):
    ckpt = tmp_path / "lenet.pt"
    result = run("train", "lenet", "--epochs", "3", "--lr", "0.9", "--device", "cpu",
                 "--precision", "fp32", "--checkpoint", str(ckpt))  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[d2lcnn quick mode]" in result.stderr  # quick mode caps it at 1 epoch, and says so
    assert re.search(r"^training on cpu \(\d+ threads?\), fp32, quick mode: ", result.stdout, re.M)
    # the printed figures are the History's that the checkpoint keeps ...
    net = d2l.MODELS["lenet"].build()
    state = d2l.load_checkpoint(ckpt, net)
    (epoch,) = state["history"]
    printed = re.search(r"^epoch 1: loss (\S+), train acc (\S+), test acc (\S+), ", result.stdout,
                        re.M)  # fmt: skip
    assert printed, result.stdout
    assert printed.groups() == tuple(f"{epoch[k]:.3f}" for k in ("train_loss", "train_acc",
                                                                   "test_acc"))  # fmt: skip
    # ... and the test accuracy is that of the saved weights on the quick test set, counted here
    monkeypatch.setenv("D2LCNN_QUICK", "1")
    _, test_iter = d2l.load_data_fashion_mnist(256)
    _, acc = loss_and_accuracy(net, test_iter)
    assert epoch["test_acc"] == pytest.approx(acc, abs=1e-9)


def test_train_command_rejects_unknown_models_and_devices():
    result = run("train", "lenet9")
    assert result.returncode == 2 and "invalid choice: 'lenet9'" in result.stderr
    result = run("train", "lenet", "--device", "cuda:7")
    assert result.returncode != 0 and "cuda:7 was asked for" in result.stderr


def test_no_command_prints_usage():
    result = run()
    assert result.returncode == 2 and "usage: python -m d2lcnn train MODEL" in result.stderr


def test_benchmark_worker_measures_d2lcnn():
    spec = dict(impl="d2lcnn", model="lenet", device="cpu", epochs=1, subset=512, test_subset=256,
                seed=0, batch_size=None)  # fmt: skip
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "vs_d2l.py"), "--worker", json.dumps(spec)],
                            capture_output=True, text=True, check=False, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["impl"] == "d2lcnn" and 0.0 <= out["test_acc"] <= 1.0
    assert out["wall_eps"] > 0 and out["peak_mb"] > 0


def test_benchmark_classes_worker_runs_the_book_cell_on_d2lcnn():
    # --api classes, d2lcnn's side: the d2l 1.0 book's LeNet cell (its class on d2l.Classifier,
    # d2l.FashionMNIST, apply_init, Trainer.fit) on class-balanced subsets of both splits.
    spec = dict(impl="d2lcnn", model="lenet", device="cpu", epochs=1, subset=512, test_subset=200,
                seed=0, batch_size=None, api="classes")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "D2LCNN_QUICK"}  # as the driver runs it
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "vs_d2l.py"), "--worker", json.dumps(spec)],
                            capture_output=True, text=True, env=dict(env, MPLBACKEND="Agg"),
                            check=False, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["impl"] == "d2lcnn" and (out["train_images"], out["test_images"]) == (512, 200)
    assert 0.0 <= out["test_acc"] <= 1.0 and out["wall_eps"] > 0 and out["peak_mb"] > 0
