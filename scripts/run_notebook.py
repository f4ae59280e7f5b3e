"""Execute notebooks top to bottom in a fresh kernel and store their outputs.

    python scripts/run_notebook.py notebooks/03_lenet.ipynb [more.ipynb ...] [--quick]

Each notebook runs with a temporary working directory (so it cannot depend on, or write into,
the repository tree) and is saved in place with its new outputs. Prints the wall time of each.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def run(path: Path, quick: bool, timeout: int) -> float:
    nb = nbformat.read(path, as_version=4)
    env_before = os.environ.get("D2LCNN_QUICK")
    if quick:
        os.environ["D2LCNN_QUICK"] = "1"
    else:
        os.environ.pop("D2LCNN_QUICK", None)
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    tic = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="d2lcnn-nb-") as cwd:
            client = NotebookClient(
                nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": cwd}}
            )
            client.execute()
    finally:
        if env_before is None:
            os.environ.pop("D2LCNN_QUICK", None)
        else:
            os.environ["D2LCNN_QUICK"] = env_before
    seconds = time.perf_counter() - tic
    nbformat.write(nb, path)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--quick", action="store_true", help="run with D2LCNN_QUICK=1")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args()
    for path in args.notebooks:
        seconds = run(path, args.quick, args.timeout)
        print(f"{path}: {seconds:.1f} s{' (quick mode)' if args.quick else ''}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
