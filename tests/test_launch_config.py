"""Launch configuration: Binder files, launch badges (Colab, Kaggle, SageMaker Studio Lab) and the
setup cells, run under each host faked (nothing is installed).

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
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import nbsync  # noqa: E402

# import name -> distribution name, where they differ or come in through another package
PROVIDED_BY = {
    "PIL": "torchvision",
    "IPython": "ipykernel",
    "matplotlib_inline": "ipykernel",
    "sklearn": "scikit-learn",
}


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


def all_notebooks() -> list[Path]:
    """Every notebook a learner can open: chapters, solutions, the Chinese edition."""
    return sorted((ROOT / "notebooks").rglob("*.ipynb"))


def setup_cell(path: Path) -> str:
    return next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code").source


HOSTS = {  # how each host shows itself to the setup cell, faked here
    "Colab": lambda mp: mp.setitem(sys.modules, "google.colab", type(sys)("google.colab")),
    "Kaggle": lambda mp: mp.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive"),
    "Studio Lab": lambda mp: mp.setattr(Path, "home", classmethod(
        lambda cls: Path("/home/studio-lab-user"))),
    None: lambda mp: None,  # a laptop, Binder, CI
}  # fmt: skip


def run_setup_cell(source: str, host: str | None, monkeypatch, returncode: int = 0) -> list:
    """Execute a setup cell as the host would, with subprocess.run faked: the commands it would
    run (nothing is installed)."""
    import subprocess

    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    HOSTS[host](monkeypatch)
    commands = []

    def fake_run(cmd, *args, **kwargs):
        commands.append(cmd)
        return subprocess.CompletedProcess(cmd, returncode)

    monkeypatch.setattr(subprocess, "run", fake_run)
    exec(compile(source, "<setup cell>", "exec"), {"__name__": "__main__"})
    return commands


@pytest.mark.parametrize("host", list(HOSTS))
def test_every_setup_cell_installs_the_release_on_hosted_notebooks_only(host, monkeypatch, capsys):
    """On Colab, Kaggle and Studio Lab each notebook's setup cell runs one command: pip installs
    the release of d2lcnn (the tag of d2lcnn.__version__) from the repository, torch untouched,
    and says so in one line; anywhere else it runs nothing and prints nothing."""
    import d2lcnn

    expected = [sys.executable, "-m", "pip", "install", "-q",
                f"d2lcnn @ git+{nbsync.repo_url()}@v{d2lcnn.__version__}"]  # fmt: skip
    for path in all_notebooks():
        commands = run_setup_cell(setup_cell(path), host, monkeypatch)
        printed = capsys.readouterr().out
        if host is None:
            assert commands == [] and printed == "", path
        else:
            assert commands == [expected], path
            assert printed.count("\n") == 1 and host in printed and d2lcnn.__version__ in printed


def test_kaggle_without_internet_says_what_to_switch_on(monkeypatch, capsys):
    for path in (
        ROOT / "notebooks" / "03_lenet.ipynb",
        ROOT / "notebooks" / "zh" / "03_lenet.ipynb",
    ):
        run_setup_cell(setup_cell(path), "Kaggle", monkeypatch, returncode=1)
        printed = capsys.readouterr().out
        assert printed.count("\n") == 1 and "Internet" in printed and "Settings" in printed
    run_setup_cell(setup_cell(path), "Colab", monkeypatch, returncode=1)
    assert "pip" in capsys.readouterr().out


def test_every_launcher_uses_the_one_repository_url():
    """Badges, install cells, README tables and the site's launch menu all name the repository of
    pyproject.toml ([project.urls] Repository): whoever owns that name ships code into every
    learner's notebook, so there must be exactly one."""
    launcher = re.compile(
        r"(?:colab\.research\.google\.com/github/|mybinder\.org/v2/gh/|"
        r"studiolab\.sagemaker\.aws/import/github/|kaggle\.com/kernels/welcome\?src=https://github\.com/|"
        r"git\+https://github\.com/)([\w.-]+/[\w.-]+?)(?:/|@|\.git|\"|$)"
    )  # fmt: skip
    texts = {p.name: p.read_text() for p in (ROOT / "README.md", ROOT / "README.zh.md")}
    texts |= {str(p.relative_to(ROOT)): p.read_text() for p in all_notebooks()}
    texts["book/course_site.py (landing)"] = (ROOT / "book" / "course_site.py").read_text()
    found: dict[str, set[str]] = {}
    for name, text in texts.items():
        for repo in launcher.findall(text):
            found.setdefault(repo, set()).add(name)
    assert set(found) == {nbsync.github_path()}, found
    for path in all_notebooks():  # each notebook opens itself on every host
        badges = nbformat.read(path, as_version=4).cells[0].source.split("\n")[0]
        rel = path.relative_to(ROOT / "notebooks").as_posix()
        assert badges == nbsync.launch_badges(rel), path
        assert [text for text, _, _ in nbsync.LAUNCHERS] == re.findall(
            r"\[!\[(Open In [^\]]+)\]", badges
        )
    assert nbsync.repo_url() in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("lang", ["", "zh/"])
@pytest.mark.parametrize("gpus", [0, 1, 2])
def test_chapter_12_launches_one_process_per_gpu(lang, gpus, monkeypatch):
    """On Kaggle's two T4s (the one free machine with two GPUs) chapter 12's torchrun launch uses
    both: in the full setting (a GPU machine) one process per GPU; on a CPU two processes."""
    import torch

    import d2lcnn

    nb = nbformat.read(ROOT / "notebooks" / f"{lang}12_distributed.ipynb", as_version=4)
    (cell,) = [c.source for c in nb.cells
               if c.cell_type == "code" and "pick_setting(" in c.source and "nproc" in c.source]  # fmt: skip
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(d2lcnn, "pick_setting", lambda *a, **k: "full" if gpus else "laptop")
    scope = {"d2l": d2lcnn, "torch": torch}
    exec(compile(cell, "<chapter 12 launch cell>", "exec"), scope)
    assert scope["nproc"] == (gpus if gpus else 2)
