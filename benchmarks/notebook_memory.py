"""Peak memory of each notebook's kernel, and whether it runs inside a memory limit (Binder's 2 GB).

    python benchmarks/notebook_memory.py [notebooks/05_alexnet.ipynb ...] [--limit 2G] [--full]

Each notebook runs top to bottom in a fresh kernel (nbclient, a temporary working directory) while
a thread samples the resident memory (RSS) of the kernel process every 20 ms. By default in quick
mode: the same model, batch size and input size as the laptop setting, on 1,024+ images -- the
peak is set by one training step's activations, weights and optimizer state, not by how many
batches follow (``--full`` runs the laptop setting itself, minutes per chapter). ``--limit 2G``
runs each notebook inside a memory cgroup of that size (``scripts/memlimit.py``; root only), so a
notebook that needs more is killed and reported as failing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import memlimit  # noqa: E402


def run_one(path: Path) -> dict:
    """Execute one notebook here; return its kernel's peak RSS and the wall time."""
    import nbformat
    import psutil
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    peak, stop = [0], threading.Event()

    def sample() -> None:
        me = psutil.Process()
        while not stop.is_set():
            try:
                peak[0] = max([peak[0], *(c.memory_info().rss for c in me.children(True))])
            except psutil.Error:
                pass
            stop.wait(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    tic, error = time.perf_counter(), ""
    with tempfile.TemporaryDirectory(prefix="d2lcnn-mem-") as cwd:
        try:
            NotebookClient(nb, timeout=3600, kernel_name="python3",
                           resources={"metadata": {"path": cwd}}).execute()  # fmt: skip
        except Exception as err:  # a kernel killed by the limit, or a failing cell
            error = f"{type(err).__name__}: {str(err).strip().splitlines()[-1][:120]}"
    stop.set()
    thread.join()
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                      for o in c.get("outputs", []) if o.get("output_type") == "stream")  # fmt: skip
    setting = next((ln for ln in printed.splitlines() if ln.startswith("setting: ")), "")
    return {"peak_mb": peak[0] / 2**20, "seconds": time.perf_counter() - tic, "error": error,
            "setting": setting}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--limit", help="run inside a memory cgroup of this size, e.g. 2G")
    parser.add_argument("--full", action="store_true", help="the laptop setting, not quick mode")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one)))
        return 0
    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    env = dict(os.environ, MPLBACKEND="module://matplotlib_inline.backend_inline")
    env.pop("D2LCNN_QUICK", None) if args.full else env.update(D2LCNN_QUICK="1")
    mode = "laptop setting" if args.full else "quick mode (laptop setting's batch and input size)"
    limit = f", inside a {args.limit} memory cgroup" if args.limit else ""
    print(f"{mode}{limit}; kernel peak RSS sampled every 20 ms")
    from d2lcnn.device import describe_cpu  # here, not in the --one process inside the limit

    print(f"CPU: {describe_cpu()}")
    print("| notebook | kernel peak MB | wall s | result |\n|---|---|---|---|", flush=True)
    for path in notebooks:
        cmd = [sys.executable, __file__, "--one", str(path)]
        kw = dict(capture_output=True, text=True, env=env)
        if args.limit:
            proc = memlimit.run(cmd, memlimit.parse_size(args.limit), **kw)
        else:
            proc = subprocess.run(cmd, **kw)
        try:
            r = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            r = {"peak_mb": float("nan"), "seconds": float("nan"),
                 "error": f"driver exited {proc.returncode}: {proc.stderr.strip()[-120:]}"}  # fmt: skip
        result = r["error"] or "ran top to bottom"
        print(f"| {path.name} | {r['peak_mb']:,.0f} | {r['seconds']:.0f} | {result} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
