"""How long ``import d2lcnn`` takes: ``import torch`` alone, then d2lcnn on top of it; and with
``--phases``, where the time of a whole run of the book's LeNet recipe goes.

    python benchmarks/startup.py [--repeats 7]
    python benchmarks/startup.py --phases [--repeats 5]

``--phases``: fresh processes alternate between a *first run* (an empty cache folder: the
layout/precision decision is timed), a *remembered run* (the decision read from the cache) and a
remembered run that undoes d2lcnn's ``gc.freeze()`` (see ``d2lcnn/__init__.py``), each running
the book's LeNet recipe as chapter 3 does (``load_data_fashion_mnist(256)``, all 60,000 training
images, one epoch of ``train_ch6`` at lr 0.9, then the 10,000 test images), and tabulate the
phases: ``import torch``, ``import d2lcnn``, data, the trainer's set-up (dry run, decision, the
optimizer: a process's first ``torch.optim`` optimizer imports ``torch._dynamo``), its first step,
the rest of the epoch, the test pass, the interpreter's start and exit (the whole process less
what was timed inside it), and the whole process.

A learner pays this at the top of every notebook and every ``python -m d2lcnn`` command. Each
measurement is a fresh Python process started in the repository root (so it imports this
checkout's d2lcnn) that times ``import torch`` and then ``import d2lcnn`` with
``time.perf_counter``; the whole process (``python -c "import d2lcnn"``, interpreter start-up and
exit included) is timed from outside. One unmeasured process runs first to warm the file cache.
The last line says which heavy modules ``import d2lcnn`` loaded (it should load neither:
torchvision is imported only to download a data set, matplotlib.pyplot on first use of
``d2l.plt`` or a figure).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torchvision", "matplotlib.pyplot")
CHILD = f"""
import json, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import d2lcnn
t2 = time.perf_counter()
print(json.dumps({{"torch": t1 - t0, "d2lcnn": t2 - t1, "file": d2lcnn.__file__,
                  "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


PHASES_CHILD = """
import atexit, gc, json, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import d2lcnn as d2l
if sys.argv[1:] == ["--no-freeze"]:  # undo what d2lcnn/__init__.py tells the garbage collector
    gc.unfreeze()
    atexit.unregister(gc.freeze)
t2 = time.perf_counter()
train_iter, test_iter = d2l.load_data_fashion_mnist(256)
t3 = time.perf_counter()
torch.manual_seed(0)
h = d2l.train(d2l.MODELS["lenet"].build(), train_iter, test_iter, 1, 0.9, seed=0, plot=False,
              verbose=False)
t4 = time.perf_counter()
p = h.phases
print(json.dumps({"import torch": t1 - t0, "import d2lcnn": t2 - t1, "data": t3 - t2,
                  "dry run": p["dry run"], "decision": p["decision"],
                  "optimizer": p["optimizer"],
                  "other set-up": p["set-up"] - p["dry run"] - p["decision"] - p["optimizer"],
                  "first step": p["first step"], "epoch after it": p["training"] - p["first step"],
                  "test": p["evaluation"], "train() in all": t4 - t3, "precision": h.precision,
                  "nhwc": h.channels_last, "test acc": h[-1].test_acc}))
"""
PHASE_ROWS = ("import torch", "import d2lcnn", "data", "dry run", "decision", "optimizer",
              "other set-up", "first step", "epoch after it", "test", "train() in all",
              "interpreter start and exit", "whole process")  # fmt: skip


def phases_run(cache: Path, freeze: bool = True) -> dict:
    """One fresh process of the LeNet recipe with ``cache`` as its cache folder; with ``freeze``
    False, the process undoes d2lcnn's ``gc.freeze()`` (at import and at exit) after importing it."""
    env = {k: v for k, v in os.environ.items() if k not in ("D2LCNN_QUICK", "D2LCNN_REMEASURE")}
    env["XDG_CACHE_HOME"] = str(cache)
    tic = time.perf_counter()
    args = [sys.executable, "-c", PHASES_CHILD, *([] if freeze else ["--no-freeze"])]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, check=True, env=env)
    whole = time.perf_counter() - tic
    inside = json.loads(proc.stdout.strip().splitlines()[-1])
    timed = sum(inside[k] for k in ("import torch", "import d2lcnn", "data", "train() in all"))
    return {**inside, "interpreter start and exit": whole - timed, "whole process": whole}


def phases(repeats: int) -> None:
    import tempfile

    from d2lcnn.device import describe_cpu

    remembered = Path(tempfile.mkdtemp(prefix="startup-remembered-"))
    phases_run(remembered)  # warms the file cache and keeps the decision for the remembered runs
    first, again, unfrozen = [], [], []
    for _ in range(repeats):  # alternating, so a busy moment hits all alike
        first.append(phases_run(Path(tempfile.mkdtemp(prefix="startup-first-"))))
        again.append(phases_run(remembered))
        unfrozen.append(phases_run(remembered, freeze=False))
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("torch", "torchvision"))
    print(f"device: CPU: {describe_cpu()}; Python {platform.python_version()}, {versions}; "
          f"{repeats} fresh processes of each kind, alternating; trained in "
          f"{first[0]['precision']}{', NHWC' if first[0]['nhwc'] else ''}; test acc "
          f"{first[0]['test acc']:.3f}")  # fmt: skip
    print()
    print("| phase | first run: median s (min-max) | remembered run: median s (min-max) "
          "| remembered, without `gc.freeze()`: median s (min-max) |")
    print("|---|---|---|---|")
    for row in PHASE_ROWS:
        cells = []
        for runs in (first, again, unfrozen):
            v = [r[row] for r in runs]
            cells.append(f"{statistics.median(v):.3f} ({min(v):.3f}-{max(v):.3f})")
        print(f"| {row} | {' | '.join(cells)} |")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure() -> dict:
    """One fresh process: the two imports timed inside, the whole process timed from outside."""
    tic = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          cwd=ROOT, check=True)  # fmt: skip
    whole = time.perf_counter() - tic
    run = json.loads(proc.stdout.strip().splitlines()[-1])
    if Path(run.pop("file")).parent != ROOT / "d2lcnn":
        raise SystemExit("the measured process imported another d2lcnn than this checkout's")
    return {**run, "whole": whole}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--phases", action="store_true", help="a whole LeNet run, by phase")
    args = parser.parse_args()
    if args.phases:
        phases(args.repeats)
        return 0
    measure()  # warm the file cache
    runs = [measure() for _ in range(args.repeats)]
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("torch", "torchvision"))
    print(f"device: CPU: {cpu_name()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
          f"{versions}; {args.repeats} fresh processes")  # fmt: skip
    print("| what | min s | median s | max s |")
    print("|---|---|---|---|")
    rows = {
        "torch": "`import torch`",
        "d2lcnn": "`import d2lcnn`, beyond torch",
        "whole": '`python -c "import d2lcnn"`, the whole process',
    }
    for key, label in rows.items():
        times = [r[key] for r in runs]
        print(f"| {label} | {min(times):.3f} | {statistics.median(times):.3f} | {max(times):.3f} |")
    loaded = sorted({m for r in runs for m in r["loaded"]})
    print()
    print("loaded by `import d2lcnn`: " + (", ".join(loaded) if loaded else "neither "
          + " nor ".join(HEAVY)))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
