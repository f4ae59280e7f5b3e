"""Training on several processes: torchrun + DistributedDataParallel on gloo (CPU).

The torchrun runs launch ``tests/ddp_run.py`` in 2 processes and compare with the same script in
one process on the same global batches.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ddp_run import lenet
from helpers import NEEDS_CUDA

import d2lcnn as d2l
from d2lcnn.distributed import ShardedImageBatches

SCRIPT = Path(__file__).with_name("ddp_run.py")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("D2LCNN_QUICK", None)  # these runs choose their own sizes
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    env["OMP_NUM_THREADS"] = "1"  # as torchrun sets it: both runs on one thread per process
    return env


def _torchrun(*args: str, nproc: int = 2, timeout: int = 300, env: dict | None = None
              ) -> subprocess.CompletedProcess:  # fmt: skip
    # --standalone: torchrun's own rendezvous on a port the system picks and torchrun keeps
    # bound (no port chosen here, released, then bound again by another process)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", *args]  # fmt: skip
    return subprocess.run(cmd, env=env or _env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two processes (everything in ddp_run.py), one process at batch 256, one at batch 128."""
    out = {k: tmp_path_factory.mktemp(k) for k in ("two", "one", "half")}
    two = _torchrun(str(SCRIPT), str(out["two"]), "--all")
    assert two.returncode == 0, two.stdout + two.stderr
    out["two_stdout"] = two.stdout  # type: ignore[assignment]
    for key, batch in (("one", "256"), ("half", "128")):
        one = subprocess.run([sys.executable, str(SCRIPT), str(out[key]), "--batch-size", batch],
                             env=_env(), capture_output=True, text=True, timeout=300)  # fmt: skip
        assert one.returncode == 0, one.stdout + one.stderr
    return out


def _max_diff(a: dict, b: dict) -> float:
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def test_two_processes_train_the_same_weights_as_one_on_the_global_batch(runs):
    two = torch.load(runs["two"] / "lenet.pt", weights_only=True)
    one = torch.load(runs["one"] / "lenet.pt", weights_only=True)
    half = torch.load(runs["half"] / "lenet.pt", weights_only=True)
    # 16 SGD steps at lr 0.9: the only difference is float32 summation order (two half-batch
    # gradients averaged vs one whole-batch gradient), ~1e-7 per weight, measured 1.2e-7 here.
    # 1e-5 leaves a 100x margin and still tells a wrong split apart: training on half the batch
    # (what forgetting to average, or each rank stepping alone, amounts to) moves the weights by
    # more than 1e-3 (the control below).
    assert _max_diff(two, one) < 1e-5
    assert _max_diff(half, one) > 1e-3
    h2 = json.loads((runs["two"] / "lenet.json").read_text())
    h1 = json.loads((runs["one"] / "lenet.json").read_text())
    for e2, e1 in zip(h2, h1, strict=True):  # all-reduced metrics: the whole batch's, not a rank's
        assert e2["train_loss"] == pytest.approx(e1["train_loss"], abs=1e-5)
        assert e2["train_acc"] == pytest.approx(e1["train_acc"], abs=1e-6)
        assert e2["test_acc"] == pytest.approx(e1["test_acc"], abs=1e-6)


def test_rank_zero_alone_prints_and_writes_a_checkpoint_that_reloads(runs):
    assert runs["two_stdout"].count("training on cpu") == 4  # 4 trainings, printed once each
    assert "2 epochs, 2 processes (batch 256 = 2 x 128)" in runs["two_stdout"]
    net = lenet()
    state = d2l.load_checkpoint(runs["two"] / "ckpt.pt", net)
    assert state["epoch"] == 2 and len(state["history"]) == 2
    final = torch.load(runs["two"] / "lenet.pt", weights_only=True)
    assert _max_diff(net.state_dict(), final) == 0
    assert sorted(p.name for p in runs["two"].iterdir() if p.name.startswith(".")) == []


def test_a_dataloader_is_split_by_a_distributed_sampler_reshuffled_each_epoch(runs):
    # before training, train() reads a first batch of the whole loader (lazy layers; rank 0
    # also times a pass): the last 2 epochs x 500 reads of each rank are its training
    r0 = json.loads((runs["two"] / "indices_rank0.json").read_text())[-1000:]
    r1 = json.loads((runs["two"] / "indices_rank1.json").read_text())[-1000:]
    for epoch in (0, 1):
        a, b = r0[epoch * 500 : (epoch + 1) * 500], r1[epoch * 500 : (epoch + 1) * 500]
        assert not set(a) & set(b) and set(a) | set(b) == set(range(1000))
    assert r0[:500] != r0[500:]  # set_epoch: a new order in epoch 2


def test_ranks_stay_identical_under_train_ch6_and_trainer_fit(runs):
    for name in ("ch6", "fit"):
        a = torch.load(runs["two"] / f"{name}_rank0.pt", weights_only=True)
        b = torch.load(runs["two"] / f"{name}_rank1.pt", weights_only=True)
        assert _max_diff(a, b) == 0, name


def test_the_command_line_trains_under_torchrun_and_refuses_a_batch_that_does_not_split(tmp_path):
    ckpt = tmp_path / "lenet.pt"
    ok = _torchrun("-m", "d2lcnn", "train", "lenet", "--epochs", "1", "--train-size", "1024",
                   "--device", "cpu", "--precision", "fp32", "--checkpoint", str(ckpt))  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count("training on cpu") == 1
    d2l.load_checkpoint(ckpt, d2l.MODELS["lenet"].build())
    bad = _torchrun("-m", "d2lcnn", "train", "lenet", "--epochs", "1", "--train-size", "1024",
                    "--device", "cpu", "--batch-size", "255")  # fmt: skip
    assert bad.returncode != 0
    assert "The batch size 255 does not divide among 2 processes" in bad.stderr


@pytest.mark.cuda
@NEEDS_CUDA
def test_one_process_under_torchrun_trains_on_a_gpu_with_nccl(tmp_path):
    ckpt = tmp_path / "lenet.pt"
    run = _torchrun("-m", "d2lcnn", "train", "lenet", "--epochs", "1", "--train-size", "1024",
                    "--device", "cuda", "--backend", "nccl", "--checkpoint", str(ckpt), nproc=1)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("training on cuda") == 1
    d2l.load_checkpoint(ckpt, d2l.MODELS["lenet"].build())


def test_a_rendezvous_that_times_out_names_the_address_and_port():
    # a port this test holds bound and not listening: nobody else can take it, nothing answers
    hold = socket.socket()
    hold.bind(("127.0.0.1", 0))
    port = hold.getsockname()[1]
    env = _env() | {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1",
                    "MASTER_PORT": str(port), "D2LCNN_DIST_TIMEOUT": "3"}  # fmt: skip
    code = "import d2lcnn as d2l; d2l.init_distributed('gloo')"
    with hold:
        run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    assert run.returncode != 0
    assert f"could not join the process group at 127.0.0.1:{port} within 3 s" in run.stderr


def test_nccl_on_a_rank_without_a_gpu_is_refused_before_any_network(monkeypatch):
    if torch.cuda.device_count() >= 8:
        pytest.skip("this machine has a GPU for every local rank asked below")
    monkeypatch.setenv("RANK", "7")
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_RANK", "7")
    with pytest.raises(d2l.DistributedError, match="NCCL was asked for, but rank 7 .* has no GPU"):
        d2l.init_distributed("nccl")


def test_one_process_is_a_world_of_one(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert d2l.init_distributed() == d2l.World() and not d2l.world().active and d2l.is_main()


def test_image_batches_split_each_global_batch_evenly_without_copying():
    images = torch.arange(11 * 4, dtype=torch.uint8).reshape(11, 1, 2, 2)
    labels = torch.arange(11)
    def batches() -> d2l.ImageBatches:  # each rank's own loader, seeded alike (same_order)
        return d2l.ImageBatches(images, labels, batch_size=4, shuffle=True, seed=3)

    shards = [ShardedImageBatches(batches(), r, 2) for r in range(2)]
    whole = [y for _, y in batches()]
    got = [[y for _, y in s] for s in shards]
    # global batches of 4, 4, 3: each rank takes 2, 2, 1; the 11th example sits out this epoch
    assert [len(s) for s in shards] == [3, 3] and shards[0].num_examples == 5
    for step, batch in enumerate(whole):
        joined = torch.cat([got[0][step], got[1][step]])
        assert joined.tolist() == batch[: len(joined)].tolist()
    assert shards[0].images.data_ptr() == images.data_ptr()


#: chapter 12's training script (quick mode, as nbval runs it)
STRESS_SCRIPT = """
import torch
import d2lcnn as d2l

torch.manual_seed(0)
net = d2l.MODELS["lenet"].build()
train_iter, test_iter = d2l.load_data_fashion_mnist(256, seed=0)
d2l.train_ch6(net, train_iter, test_iter, 10, 0.9, d2l.try_gpu())
"""
STRESS_RUNS = int(os.environ.get("D2LCNN_STRESS_RUNS", "12"))


@pytest.mark.stress
def test_two_processes_end_cleanly_every_time_on_a_busy_cpu(tmp_path):
    """Chapter 12's torchrun run, many times over with both cores kept busy: every run exits 0.

    Before the fix, a rank exiting right after its last all-reduce aborted now and then
    ("terminate called without an active exception", SIGABRT): see ``distributed._hold``.
    """
    script = tmp_path / "train.py"
    script.write_text(STRESS_SCRIPT)
    env = _env() | {"MPLBACKEND": "Agg", "D2LCNN_QUICK": "1"}
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    failures = []
    try:
        for i in range(STRESS_RUNS):
            run = _torchrun(str(script), env=env)
            if run.returncode != 0:
                failures.append(f"run {i + 1}: exit {run.returncode}\n{run.stderr[-1500:]}")
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert not failures, f"{len(failures)} of {STRESS_RUNS} runs failed:\n" + "\n".join(failures)
