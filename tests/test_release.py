"""The package is releasable the usual way: ``python -m build`` makes a wheel and an sdist that
``twine check`` accepts, with the version written in one place (``d2lcnn.__version__``) and the
files the package needs at run time (the CJK font and its licence). CONTRIBUTING.md, "Making a
release", says how a release is made."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import d2lcnn

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: the build backend (setuptools) of this environment, nothing downloaded
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True, text=True)  # fmt: skip
    return out


def test_wheel_and_sdist_pass_twine_check(dist):
    files = sorted(p.name for p in dist.iterdir())
    version = d2lcnn.__version__
    assert files == [f"d2lcnn-{version}-py3-none-any.whl", f"d2lcnn-{version}.tar.gz"]
    check = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("PASSED") == 2


def test_the_wheel_holds_the_package_and_its_data(dist):
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        metadata = z.read(f"d2lcnn-{d2lcnn.__version__}.dist-info/METADATA").decode()
    package = {p.relative_to(ROOT).as_posix() for p in (ROOT / "d2lcnn").glob("*.py")}
    assert package <= names
    assert {"d2lcnn/fonts/NotoSansCJKsc-d2lcnn-subset.otf", "d2lcnn/fonts/OFL.txt"} <= names
    assert f"Version: {d2lcnn.__version__}" in metadata
    assert "Requires-Dist: torch>=2.5" in metadata and "Requires-Python: >=3.11" in metadata
    assert not [n for n in names if n.startswith(("tests/", "notebooks/", "benchmarks/"))]
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as t:
        members = {m.split("/", 1)[1] for m in t.getnames() if "/" in m}
    assert {"pyproject.toml", "README.md", "d2lcnn/__init__.py"} <= members
