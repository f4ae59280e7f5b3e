"""How long ``import d2lcnn`` takes: ``import torch`` alone, then d2lcnn on top of it.

    python benchmarks/startup.py [--repeats 7]

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
    args = parser.parse_args()
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
