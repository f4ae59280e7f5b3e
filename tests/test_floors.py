"""Honest floors: the code runs on the Python it declares, every import is a declared dependency,
and the torch floor is the one `make floor` proved (benchmarks/results/floor.md)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE = ["d2lcnn", "scripts", "tests", "benchmarks", "book", "conftest.py"]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def declared_python() -> str:
    """'3.11' from requires-python = '>=3.11'."""
    match = re.fullmatch(r">=\s*(3\.\d+)", PYPROJECT["project"]["requires-python"])
    assert match, "requires-python must read '>=3.N'"
    return match.group(1)


def test_the_code_needs_no_newer_python_than_declared():
    """vermin reads every file against the declared minimum (it found tomllib, 3.11, when 3.10
    was declared)."""
    vermin = shutil.which("vermin", path=str(Path(sys.executable).parent)) or shutil.which("vermin")
    if vermin is None:
        pytest.fail("vermin is missing: pip install -r requirements.txt")
    done = subprocess.run([vermin, "-q", "--no-tips", "--eval-annotations", "--violations",
                           f"--target={declared_python()}-", *CODE], cwd=ROOT,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, f"needs a newer Python than declared:\n{done.stdout}"


def test_every_place_names_the_same_python():
    v = declared_python()
    assert f"Python {v}+" in (ROOT / "README.md").read_text()
    assert f"Python {v} 以上" in (ROOT / "README.zh.md").read_text()
    assert re.search(rf"^\s*-\s*python={re.escape(v)}\s*$",
                     (ROOT / "environment.yml").read_text(), re.M)  # fmt: skip
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py" + v.replace(".", "")
    assert not re.search(r"Python 3\.(\d+)\+", re.sub(rf"Python {v}\+", "", (ROOT / "README.md").read_text()))


def requirement_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        line = line.split("#")[0].strip().lstrip("- ").strip()
        if line and not line.startswith(("-", "--")) and line != ".":
            names.add(re.split(r"[<>=!~\[ ]", line)[0].lower().replace("_", "-"))
    return names


# import name -> distribution, for the site's packages when the site is not installed here
ALIASES = {"mathjax": "django-static-mathjax", "yaml": "pyyaml", "IPython": "ipython"}


def test_every_imported_package_is_declared():
    """Each third-party module imported by the package, tests, scripts, benchmarks or the site
    build belongs to a distribution that requirements.txt or requirements-site.txt names (d2l, the
    benchmark's reference, is installed by `make bench-env`)."""
    declared = requirement_names((ROOT / "requirements.txt").read_text())
    declared |= requirement_names((ROOT / "requirements-site.txt").read_text())
    dists = packages_distributions()
    local = {p.stem for p in ROOT.glob("*/*.py")} | {"d2lcnn", "d2l"}
    missing = {}
    files = [p for c in CODE for p in ((ROOT / c).rglob("*.py") if (ROOT / c).is_dir() else [ROOT / c])]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            for mod in mods:
                top = mod.split(".")[0]
                if top in sys.stdlib_module_names or top in local:
                    continue
                owners = {d.lower().replace("_", "-") for d in dists.get(top, [ALIASES.get(top, top)])}
                if not owners & declared and not (owners & {"fonttools"} and "matplotlib" in declared):
                    missing.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    assert not missing, f"imported but not declared in requirements: {missing}"


def test_the_torch_floor_is_the_one_make_floor_proved():
    floor = (ROOT / "benchmarks" / "results" / "floor.md").read_text()
    proved = re.search(r"torch (\d+\.\d+)\.\d+, torchvision (\d+\.\d+)\.\d+", floor)
    assert proved and re.search(r"\b(\d+) passed\b", floor) and not re.search(r"\b\d+ failed", floor)
    torch_floor, vision_floor = proved.groups()
    deps = " ".join(PYPROJECT["project"]["dependencies"])
    for text in (deps, (ROOT / "requirements.txt").read_text(), (ROOT / "environment.yml").read_text()):
        assert f"torch>={torch_floor}" in text and f"torchvision>={vision_floor}" in text
