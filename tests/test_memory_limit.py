"""Binder's 2 GB, for real: the heaviest chapter runs top to bottom inside a 2 GB memory cgroup.

Chapter 6 (VGG at 224 x 224, Adam, batch 32) peaks highest of all notebooks
(``benchmarks/results/notebook-memory.md``). Here it runs in quick mode (the laptop setting's
model, batch and input size, so the same peak) in a fresh kernel inside a memory cgroup of 2 GB
(``scripts/memlimit.py``): past the limit the kernel's OOM killer ends it and the test fails.
Needs root and a cgroup file system (CI has both; ``D2LCNN_REQUIRE_CGROUP=1`` makes their absence
a failure there), otherwise it is skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import memlimit  # noqa: E402

if not memlimit.available():
    if os.environ.get("D2LCNN_REQUIRE_CGROUP") == "1":
        pytest.fail("a memory cgroup is required (D2LCNN_REQUIRE_CGROUP=1): run as root on Linux")
    pytest.skip("no memory cgroup can be created here (needs root)", allow_module_level=True)


def in_cgroup(code: str, limit: str = "2G") -> subprocess.CompletedProcess:
    env = dict(os.environ, D2LCNN_QUICK="1")
    return memlimit.run([sys.executable, "-c", code], memlimit.parse_size(limit),
                        capture_output=True, text=True, env=env, timeout=600)  # fmt: skip


def test_the_limit_is_seen_inside_the_cgroup():
    out = in_cgroup("import json, d2lcnn as d2l; d2l.pick_setting(); "
                    "print(json.dumps([d2l.memory.memory_limit(), d2l.memory.low_memory()]))",
                    limit="1536M")  # fmt: skip
    setting, numbers = out.stdout.strip().splitlines()[-2:]
    assert json.loads(numbers) == [1536 << 20, True]
    assert "1.5 GB of memory: training hands freed memory back" in setting


def test_the_heaviest_chapter_runs_inside_binders_2_gb():
    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); "
            "import json, notebook_memory as m; "
            f"print(json.dumps(m.run_one(m.ROOT / 'notebooks' / '06_vgg.ipynb')))")  # fmt: skip
    out = in_cgroup(code)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["error"] == "", result  # a kernel killed past the limit shows up here
    assert "2.0 GB of memory" in result["setting"]  # the kernel saw the limit and said so
