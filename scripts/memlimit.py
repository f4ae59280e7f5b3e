"""Run a command under a real memory limit, the way Binder's containers limit a session.

    python scripts/memlimit.py 2G -- python -m pytest --nbval notebooks/05_alexnet.ipynb

Creates a memory cgroup (v2 ``memory.max``, or v1 ``memory.limit_in_bytes`` with swap limited
too), moves the command into it before it starts, and removes the cgroup afterwards. Every
process the command starts (a Jupyter kernel, say) inherits the limit; past it the kernel's OOM
killer ends the biggest one. Needs root and a cgroup file system (as in CI); ``available()`` says
whether this machine has them. Exit status: the command's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def _controller_dir() -> tuple[Path, str, list[str]] | None:
    """(parent folder for a new cgroup, limit file name, other files to write the limit to)."""
    v2 = ROOT / "cgroup.controllers"
    if v2.exists() and "memory" in v2.read_text().split():
        return ROOT, "memory.max", ["memory.swap.max"]
    v1 = ROOT / "memory"
    if (v1 / "memory.limit_in_bytes").exists():
        return v1, "memory.limit_in_bytes", ["memory.memsw.limit_in_bytes"]
    return None


def available() -> bool:
    """Whether this process can create a memory cgroup here."""
    found = _controller_dir()
    return found is not None and os.access(found[0], os.W_OK)


def parse_size(text: str) -> int:
    """'2G', '1536M', '2147483648' -> bytes."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG]?)", text.strip().upper())
    if not match:
        raise ValueError(f"size must look like 2G, 1536M or a byte count, not {text!r}")
    return int(float(match[1]) * 1024 ** " KMG".index(match[2] or " "))


def run(cmd: list[str], limit: int, **kwargs) -> subprocess.CompletedProcess:
    """Run ``cmd`` (``subprocess.run`` keyword arguments allowed) with at most ``limit`` bytes."""
    found = _controller_dir()
    if found is None:
        raise RuntimeError("no memory cgroup controller on this machine")
    parent, limit_file, swap_files = found
    group = parent / f"d2lcnn-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        (group / limit_file).write_text(str(limit))
        for name in swap_files:  # no swapping past the limit (v2: swap 0; v1: memory + swap)
            if (group / name).exists():
                (group / name).write_text("0" if name == "memory.swap.max" else str(limit))
        procs = group / "cgroup.procs"

        def enter() -> None:
            procs.write_text(str(os.getpid()))

        return subprocess.run(cmd, preexec_fn=enter, **kwargs)
    finally:
        for _ in range(50):  # the cgroup can be removed once its last process has exited
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def main() -> int:
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    return run(sys.argv[3:], parse_size(sys.argv[1])).returncode


if __name__ == "__main__":
    sys.exit(main())
