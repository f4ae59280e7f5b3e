"""The d2l drop-in API: names, signatures, devices, metrics, figures."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import matplotlib
import pytest
import torch

import d2lcnn as d2l

matplotlib.use("Agg")

# The d2l book's (PyTorch edition) signatures of the helpers the CNN chapters use.
BOOK_SIGNATURES = {
    "load_data_fashion_mnist": ["batch_size", "resize=None"],
    "get_fashion_mnist_labels": ["labels"],
    "show_images": ["imgs", "num_rows", "num_cols", "titles=None", "scale=1.5"],
    "try_gpu": ["i=0"],
    "try_all_gpus": [],
    "num_gpus": [],
    "cpu": [],
    "corr2d": ["X", "K"],
    "accuracy": ["y_hat", "y"],
    "evaluate_accuracy_gpu": ["net", "data_iter", "device=None"],
    "train_ch6": ["net", "train_iter", "test_iter", "num_epochs", "lr", "device"],
}


@pytest.mark.parametrize("name", sorted(BOOK_SIGNATURES))
def test_book_signatures(name):
    params = list(inspect.signature(getattr(d2l, name)).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    got = [p.name if p.default is p.empty else f"{p.name}={p.default!r}" for p in positional]
    want = BOOK_SIGNATURES[name]
    if name == "train_ch6":  # d2l's default is d2l.try_gpu(); ours is None, meaning the same
        got = [g.split("=")[0] for g in got]
    assert got == want


def test_public_api_is_listed_and_importable():
    for name in d2l.__all__:
        assert hasattr(d2l, name), name
    for name in ("Accumulator", "Timer", "Animator"):
        assert name in d2l.__all__


def fresh_process(probe: str) -> list[str]:
    """The lines ``probe`` prints in a fresh Python process started in the repository root."""
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=root, env={**os.environ, "MPLBACKEND": "Agg"}, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.splitlines()


def test_import_leaves_torchvision_and_pyplot_for_later():
    """``import d2lcnn`` loads neither torchvision nor pyplot; ``d2l.plt`` still is pyplot."""
    probe = (
        "import sys\n"
        "import d2lcnn as d2l\n"
        "print(sorted(m for m in ('torchvision', 'matplotlib.pyplot') if m in sys.modules))\n"
        "fig, ax = d2l.plt.subplots()\n"
        "print(d2l.plt.__name__, type(fig).__name__, 'matplotlib.pyplot' in sys.modules)\n"
        "from d2lcnn import plt\n"
        "print(plt is d2l.plt is d2l.plot.plt, 'plt' in dir(d2l))\n"
    )
    assert fresh_process(probe) == ["[]", "matplotlib.pyplot Figure True", "True True"]


def test_a_script_trains_without_importing_ipython():
    """Outside Jupyter, plot='auto' needs no IPython (importing it to ask cost every script 0.2 s);
    in a kernel IPython is already imported, and a fake kernel shell is recognised."""
    probe = (
        "import sys, types\n"
        "import torch\n"
        "import d2lcnn as d2l\n"
        "X, y = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))\n"
        "data = d2l.ImageBatches((X * 255).to(torch.uint8), y, 32)\n"
        "d2l.train(d2l.MODELS['lenet'].build(), data, None, 1, 0.1, 'cpu', verbose=False)\n"
        "print(d2l.plot.in_notebook(), 'IPython' in sys.modules)\n"
        "fake = types.ModuleType('IPython')\n"
        "fake.get_ipython = lambda: types.SimpleNamespace(config={'IPKernelApp': {}})\n"
        "sys.modules['IPython'] = fake\n"
        "print(d2l.plot.in_notebook())\n"
    )
    assert fresh_process(probe) == ["False False", "True"]


def test_import_hides_torch_from_the_garbage_collector_and_nothing_later():
    """``import d2lcnn`` freezes what the imports made (torch's objects: skipped by every later
    collection), a reference cycle made after the import is still collected, and at exit what was
    made since is frozen too (the interpreter then does not free it object by object)."""
    probe = (
        "import atexit, gc, weakref\n"
        "def frozen(x): return gc.is_tracked(x) and all(o is not x for o in gc.get_objects())\n"
        "atexit.register(lambda: print(frozen(later)))  # runs after d2lcnn's (last in, first out)\n"
        "import torch\n"
        "import d2lcnn\n"
        "class Node: pass\n"
        "later = Node()\n"
        "print(frozen(torch.nn.Conv2d), frozen(later))\n"
        "a = Node(); a.me = a; alive = weakref.ref(a); del a\n"
        "gc.collect()\n"
        "print(alive() is None)\n"
    )
    assert fresh_process(probe) == ["True False", "True", "True"]


def test_a_network_built_before_any_seed_is_the_same_in_every_fresh_process():
    """Chapter 3 builds LeNet in its first cells and seeds only before training, as the book
    does: its biases (which Xavier init does not re-draw) must not depend on the process."""
    probe = (
        "import torch\n"
        "import d2lcnn\n"
        "net = torch.nn.Linear(4, 3)\n"
        "print(torch.initial_seed(), net.bias.tolist())\n"
    )
    first, second = fresh_process(probe), fresh_process(probe)
    assert first == second and first[0].startswith("0 "), (first, second)


def test_devices_here():
    assert d2l.cpu() == torch.device("cpu")
    assert d2l.num_gpus() == torch.cuda.device_count()
    if d2l.num_gpus() == 0:
        assert d2l.try_gpu() in (torch.device("cpu"), torch.device("mps"))
        assert d2l.try_gpu(5) == torch.device("cpu")  # d2l's behaviour: fall back, never fail
        assert d2l.try_all_gpus() == [torch.device("cpu")]


def test_asking_for_a_missing_device_is_a_clear_error():
    n = d2l.num_gpus()
    with pytest.raises(ValueError, match=rf"cuda:{n + 1} was asked for, but this machine has {n}"):
        d2l.resolve_device(f"cuda:{n + 1}")
    with pytest.raises(ValueError, match="is not a device name"):
        d2l.resolve_device("gpu-please")
    assert d2l.resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize(
    "device, capability, cpu_bf16, expected",
    [("cuda", (9, 0), False, torch.bfloat16),  # H100
     ("cuda", (8, 0), False, torch.bfloat16),  # A100
     ("cuda", (8, 9), False, torch.bfloat16),  # L4, RTX 40xx
     ("cuda", (7, 5), False, torch.float16),  # T4: bf16 only emulated
     ("cuda", (7, 0), False, torch.float16),  # V100
     ("cuda", (6, 1), False, None),  # P100/GTX 10xx
     ("mps", None, False, None),
     ("cpu", None, False, None),
     ("cpu", None, True, None)],  # timed against bf16 by the trainer: test_train.py
)  # fmt: skip
def test_auto_precision_by_capability(monkeypatch, device, capability, cpu_bf16, expected):
    from d2lcnn import precision as dev

    monkeypatch.setattr(dev, "cuda_capability", lambda d: capability)
    monkeypatch.setattr(dev, "cpu_has_bf16", lambda: cpu_bf16)
    # the emulation answer must not matter (a T4 says True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert dev.autocast_dtype(torch.device(device), "auto") is expected
    both = device == "cpu" and cpu_bf16  # the only case where the trainer times two precisions
    expected_candidates = (None, torch.bfloat16) if both else (expected,)
    assert dev.autocast_candidates(torch.device(device), "auto") == expected_candidates
    assert dev.autocast_candidates(torch.device(device), "fp32") == (None,)


def test_forced_precisions_and_bad_names():
    from d2lcnn.precision import autocast_dtype

    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, "fp32") is None
    assert autocast_dtype(cpu, "bf16") is torch.bfloat16
    assert autocast_dtype(cpu, "FP16") is torch.float16
    with pytest.raises(ValueError, match="precision must be 'auto', 'bf16', 'fp16' or 'fp32'"):
        autocast_dtype(cpu, "fp8")


def test_accuracy_accumulator_timer():
    y_hat = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert d2l.accuracy(y_hat, torch.tensor([1, 0, 0])) == 2.0
    acc = d2l.Accumulator(2)
    acc.add(1, 2.5)
    acc.add(2, 0.5)
    assert (acc[0], acc[1]) == (3.0, 3.0)
    t = d2l.Timer()
    time.sleep(0.01)
    t.stop()
    assert t.sum() >= 0.01 and t.avg() == t.sum() and len(t.cumsum()) == 1


def test_show_images_and_animator():
    imgs = [torch.rand(1, 28, 28), torch.rand(28, 28), torch.rand(3, 8, 8)]
    axes = d2l.show_images(imgs, 1, 3, titles=["a", "b", "c"])
    assert len(axes) == 3 and axes[0].get_title() == "a"
    anim = d2l.Animator(xlabel="epoch", legend=["loss", "acc"])
    anim.add(1, (0.5, 0.8))
    anim.add(2, (0.4, None))
    assert anim.X == [[1, 2], [1]] and anim.Y == [[0.5, 0.4], [0.8]]
    fig = anim.show()
    assert fig.axes[0].get_xlabel() == "epoch"


def test_pick_setting(monkeypatch, capsys):
    monkeypatch.delenv("D2LCNN_SETTING", raising=False)
    expected = "laptop" if d2l.try_gpu().type == "cpu" else "full"
    assert d2l.pick_setting() == expected
    assert capsys.readouterr().out.startswith(f"setting: {expected} (")
    assert d2l.pick_setting("full") == "full"
    monkeypatch.setenv("D2LCNN_SETTING", "laptop")
    assert d2l.pick_setting() == "laptop"
    with pytest.raises(ValueError, match="setting must be"):
        d2l.pick_setting("huge")


def test_the_readme_module_map_names_every_module_of_the_package():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    table = readme[readme.index("| module | what it does |"):]
    listed = set(re.findall(r"^\| `d2lcnn/(\w+\.py)` \|", table, re.M))
    present = {p.name for p in (root / "d2lcnn").glob("*.py")}
    assert listed == present, f"README lists {sorted(listed - present)} that do not exist and " \
                              f"misses {sorted(present - listed)}"
