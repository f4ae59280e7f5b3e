"""Launch configuration, checked statically: Binder files, Colab badges and install cells.

repo2docker cannot run here, so these tests read its input files: they parse, every package the
notebooks import is provided, d2lcnn gets installed, and every launch link points at a notebook
that exists.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import nbsync  # noqa: E402

# import name -> distribution name, where they differ or come in through another package
PROVIDED_BY = {"PIL": "torchvision", "IPython": "ipykernel", "matplotlib_inline": "ipykernel"}


def pip_names(lines: list[str]) -> set[str]:
    names = set()
    for line in lines:
        line = line.strip()
        if line and not line.startswith(("-", "#")):
            names.add(re.split(r"[<>=!~\[ ;]", line, maxsplit=1)[0].lower())
    return names


def env_packages() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return pip_names(pip)


def notebook_imports() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            source = "\n".join(  # magics become `pass`, keeping their indentation
                line[: len(line) - len(line.lstrip())] + "pass"
                if line.lstrip().startswith(("%", "!"))
                else line
                for line in cell.source.splitlines()
            )
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    mods = [node.module]
                else:
                    continue
                for mod in mods:
                    found.setdefault(mod.split(".")[0], set()).add(path.name)
    return found


def test_binder_files_parse_and_match_requirements():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert any(str(d).startswith("python") for d in env["dependencies"])
    requirements = pip_names((ROOT / "requirements.txt").read_text().splitlines())
    assert env_packages() == requirements  # one package list, two formats
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert any("download.pytorch.org/whl/cpu" in line for line in pip)  # CPU build on Binder
    assert (ROOT / "apt.txt").read_text().split() == ["dataset-fashion-mnist"]


def test_d2lcnn_gets_installed_on_binder():
    post = (ROOT / "postBuild").read_text()
    assert (ROOT / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"
    assert re.search(r"pip install .*-e \.", post)
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"] == "d2lcnn"


def test_every_notebook_import_is_provided():
    provided = env_packages() | {"d2lcnn"}
    for module, notebooks in notebook_imports().items():
        if module in sys.stdlib_module_names:
            continue
        dist = PROVIDED_BY.get(module, module).lower()
        assert dist in provided, (
            f"{module} (imported by {sorted(notebooks)}) is not in environment.yml"
        )


def test_badges_point_to_existing_notebooks():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"/blob/main/(notebooks/[\w.-]+\.ipynb)", readme)
    targets += re.findall(r"urlpath=lab/tree/(notebooks/[\w.-]+\.ipynb)", readme)
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert targets and all((ROOT / t).is_file() for t in targets)
    for path in notebooks:  # one Colab badge per chapter in the README
        assert f"blob/main/notebooks/{path.name})" in readme, path.name
    assert nbsync.github_path() in readme


def test_launch_links_and_setup_cells_are_generated_from_one_setting():
    """Badges and install cells are generated from pyproject's URL: nothing edited by hand."""
    import subprocess

    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "nbsync.py"), "--check"],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout
    cells = set()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        first = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        cells.add(first.source)
    assert cells == {nbsync.setup_cell_source()}


def test_nbsync_puts_matplotlib_inline_first_in_the_import_cell():
    """A new notebook cannot forget it: nbsync adds it, and --check fails until it is there."""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Chapter 99: New\n\n**Objectives**"),
        nbformat.v4.new_code_cell("import torch\n%matplotlib notebook\n\nimport d2lcnn as d2l"),
        nbformat.v4.new_code_cell("x = 1"),
    ])  # fmt: skip
    before = nbformat.writes(nb)
    synced = nbsync.sync(nb, "99_new.ipynb")
    assert nbformat.writes(synced) != before  # what --check reports as out of date
    code = [c.source for c in synced.cells if c.cell_type == "code"]
    assert code == [nbsync.setup_cell_source(),
                    "%matplotlib inline\nimport torch\n\nimport d2lcnn as d2l", "x = 1"]  # fmt: skip
    assert nbformat.writes(nbsync.sync(synced, "99_new.ipynb")) == nbformat.writes(synced)


def test_setup_cell_installs_only_on_colab():
    source = nbsync.setup_cell_source()
    assert 'if "google.colab" in sys.modules:' in source
    install = [line for line in source.splitlines() if "pip install" in line]
    assert len(install) == 1 and install[0].startswith("    ")  # inside the Colab branch only
    assert "torch" not in install[0].split("@")[0]  # Colab's own torch is kept
    assert nbsync.repo_url() in install[0]
