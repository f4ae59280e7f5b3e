"""Checks of the notebooks as files: every chapter is there, collected by nbval, has compared
cells, stored outputs from a clean run, the shared setup cell, and the reference shape tables.

The per-notebook checks run on both editions: the English notebooks (``en``) and their Chinese
twins in notebooks/zh (``zh``), whose main runs must be their own (not copied from English)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import d2lcnn as d2l
from d2lcnn import models

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ZH = NOTEBOOKS / "zh"
EDITIONS = ("en", "zh")
CHAPTERS = [
    "00_start_here", "01_convolutions", "02_pooling", "03_lenet", "04_training_workflow",
    "05_alexnet", "06_vgg", "07_nin", "08_googlenet", "09_batch_norm", "10_resnet", "11_densenet",
    "12_distributed", "13_modern_recipe", "14_what_a_cnn_learns",
    "appendix_a_d2l_ai",
]  # fmt: skip
TRAINING = CHAPTERS[3:]  # the appendix trains too (the book's LeNet, through d2l.Trainer)
# chapter -> (reference model, input size) whose depth-1 table the chapter must show
REFERENCE_TABLES = {
    "03_lenet": (models.lenet, 28),
    "05_alexnet": (models.alexnet, 224),
    "06_vgg": (models.vgg11, 224),
    "07_nin": (models.nin, 224),
    "08_googlenet": (models.googlenet, 96),
    "09_batch_norm": (models.bn_lenet, 28),
    "10_resnet": (models.resnet18, 224),
    "11_densenet": (models.densenet, 96),
    "appendix_a_d2l_ai": (models.lenet, 28),  # its lazy LeNet, after training
}
# The trainer's first line: "training on cpu (2 threads), fp32: 60,000 train / 10,000 test images
# of 1x28x28, 10 epochs" (", quick mode" before the colon in quick mode; ", full mode" in runs
# stored before the trainer stopped naming the mode outside quick mode)
TRAINING_LINE = (
    r"^training on \S+.*?, (?:fp32|\w+ autocast)(?:, (quick|full) mode)?: "
    r"([\d,]+) train / [\d,]+ test images of 1x(\d+)x\d+, (\d+) epochs"
)
IGNORE = re.compile(r"^\s*#\s*NBVAL_(IGNORE_OUTPUT|SKIP)", re.M)
sys.path.insert(0, str(ROOT / "scripts"))
import nbsync  # noqa: E402


def load(name: str, lang: str = "en") -> nbformat.NotebookNode:
    """Chapter ``name`` of the English (``en``) or the Chinese (``zh``) edition."""
    path = (ZH if lang == "zh" else NOTEBOOKS) / f"{name}.ipynb"
    if not path.is_file():
        pytest.fail(f"{path.relative_to(ROOT)} is missing: every chapter has a Chinese twin")
    return nbformat.read(path, as_version=4)


def editions(names: list[str]) -> list:
    """Test parameters (lang, name) for ``names`` in both editions."""
    return [pytest.param(lang, name, id=f"{lang}-{name}") for lang in EDITIONS for name in names]


def stored_text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            elif "data" in out:
                parts.append(out.data.get("text/plain", ""))
    return "\n".join(parts)


def test_every_chapter_exists_and_nothing_else():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == CHAPTERS
    assert sorted(p.stem for p in ZH.glob("*.ipynb")) == CHAPTERS, "notebooks/zh: the twins"


def test_nbval_collects_every_code_cell_of_every_notebook():
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "--nbval", "--nbval-current-env",
         "-p", "no:cacheprovider", str(NOTEBOOKS)],
        capture_output=True, text=True, cwd=ROOT, check=False,
    ).stdout  # fmt: skip
    for lang in EDITIONS:  # notebooks/zh too: nbval collects the folder recursively
        folder = "notebooks/zh" if lang == "zh" else "notebooks"
        for name in CHAPTERS:
            nb = load(name, lang)
            code_cells = sum(c.cell_type == "code" for c in nb.cells)
            collected = len(re.findall(rf"^{folder}/{name}\.ipynb::Cell \d+", out, re.M))
            assert collected == code_cells > 0, f"{folder}/{name}: {collected} of {code_cells}"


@pytest.mark.parametrize("lang, name", editions(CHAPTERS))
def test_stored_outputs_are_from_a_clean_run_and_compared(lang, name):
    nb = load(name, lang)
    code = [c for c in nb.cells if c.cell_type == "code"]
    compared = [c for c in code if c.outputs and not IGNORE.search(c.source)]
    assert compared, f"{name} has no cell whose output nbval compares"
    for c in code:
        assert not any(o.output_type == "error" for o in c.outputs), f"{name} stores an error"
        if c.outputs:
            assert c.execution_count is not None
    counts = [c.execution_count for c in code if c.execution_count is not None]
    assert counts == sorted(counts), f"{name} was not run top to bottom"
    assert counts, f"{name} has never been run"


# A path into the machine that stored the run: its Python installation (a library's warning on
# stderr names its own file) or a home or checkout folder. A learner's temporary folder, which a
# chapter prints on purpose, is not one.
MACHINE_PATH = re.compile(r"site-packages|dist-packages|/home/|/root/|/Users/|/work/|[A-Z]:\\")


@pytest.mark.parametrize(
    "path", sorted(NOTEBOOKS.glob("**/*.ipynb")), ids=lambda p: str(p.relative_to(NOTEBOOKS))
)
def test_stored_outputs_name_no_path_of_the_machine_that_ran_them(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            text = out.get("text", "") or out.get("data", {}).get("text/plain", "")
            found = MACHINE_PATH.search(text)
            assert not found, (
                f"{path.relative_to(ROOT)}, cell {i}, stores a path of the machine that ran it: "
                f"...{text[max(0, found.start() - 80) : found.end() + 80]}... Fix: silence or "
                "avoid what printed it (a library's warning names its file), then store a new run."
            )


@pytest.mark.parametrize("lang, name", editions(CHAPTERS))
def test_structure_objectives_exercises_setup_cell(lang, name):
    nb = load(name, lang)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    objectives, exercises = ("objectives|you will", "exercises")
    if lang == "zh":
        objectives, exercises = ("学习目标", "练习")
    assert re.search(objectives, text, re.I), f"{lang}/{name}: no objectives"
    assert re.search(rf"^#+ .*({exercises})", text, re.I | re.M), f"{lang}/{name}: no exercises"
    first_code, imports = [c for c in nb.cells if c.cell_type == "code"][:2]
    assert first_code.source == nbsync.setup_cell_source(lang)
    assert imports.source.startswith("%matplotlib inline\n"), f"{name}: figures not shown inline"
    badge = f"zh/{name}.ipynb" if lang == "zh" else f"{name}.ipynb"
    assert nb.cells[0].source.startswith(nbsync.launch_badges(badge) + "\n")
    assert not re.search(r"(?<![\w.])/(tmp|root|work|home)/", "".join(c.source for c in nb.cells))


@pytest.mark.parametrize("lang, name", editions(TRAINING))
def test_training_chapters_store_a_main_run_naming_device_and_precision(lang, name):
    nb = load(name, lang)
    main = [c for c in nb.cells if "main-run" in c.metadata.get("tags", [])]
    assert len(main) == 1, f"{name}: exactly one cell tagged main-run"
    text = stored_text(nbformat.v4.new_notebook(cells=main))
    assert re.search(TRAINING_LINE, text, re.M), text[:300]
    assert re.search(r"test acc \d\.\d{3}", text)


@pytest.mark.parametrize("lang, name", editions(sorted(REFERENCE_TABLES)))
def test_chapter_model_matches_the_reference_model(lang, name):
    build, size = REFERENCE_TABLES[name]
    table = d2l.layer_summary(build(), (1, 1, size, size), show=False).table()
    assert table in stored_text(load(name, lang)), f"{lang}/{name}: not the reference shape table"


@pytest.mark.parametrize("name", TRAINING)
def test_the_chinese_main_run_is_its_own_run(name):
    """The zh notebook stores outputs of a run of itself, not the English notebook's outputs."""
    runs = []
    for lang in EDITIONS:  # the trainer's speed and time lines (English in both editions)
        main = [c for c in load(name, lang).cells if "main-run" in c.metadata.get("tags", [])]
        text = stored_text(nbformat.v4.new_notebook(cells=main))
        runs.append(re.findall(r"^.*(?:examples/sec|min of training).*$", text, re.M))
    assert runs[1], f"notebooks/zh/{name}.ipynb: no stored main run"
    assert runs[0] != runs[1], (
        f"notebooks/zh/{name}.ipynb stores the English main run: run the Chinese notebook itself "
        f"(scripts/run_notebook.py notebooks/zh/{name}.ipynb)"
    )


def test_readme_tables_are_generated_from_the_stored_runs():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "results_table.py"), "--check"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("mode", ["", ", full mode", ", quick mode"])
def test_trainer_lines_are_read_with_or_without_a_mode(tmp_path, mode):
    """The trainer's first line as stored before (", full mode") and after it named only quick mode."""
    import results_table

    out = (
        "setting: laptop (no GPU found; d2l.pick_setting('full') switches)\n"
        f"training on cpu (2 threads), fp32{mode}: 60,000 train / 10,000 test images of 1x28x28, "
        "10 epochs\nloss 0.470, train acc 0.823, test acc 0.817\n"
        "14480.2 examples/sec on cpu\n10 epochs in 0.7 min of training\n"
    )  # fmt: skip
    cell = nbformat.v4.new_code_cell("d2l.train_ch6(...)", metadata={"tags": ["main-run"]})
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=out)]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Chapter 3: LeNet"), cell])
    nbformat.write(nb, tmp_path / "03_lenet.ipynb")
    run = results_table.main_run(tmp_path / "03_lenet.ipynb")
    assert (run["device"], run["precision"], run["images"], run["input"], run["epochs"]) == (
        "cpu (2 threads)", "fp32", "60,000", "28x28", "10")  # fmt: skip
    assert run["quick"] == (mode == ", quick mode") and run["test_acc"] == "0.817"
    found = re.search(TRAINING_LINE, out, re.M)
    assert found and found.group(2, 3, 4) == ("60,000", "28", "10")


class _EarlierCells(dict):
    """Names a setting cell takes from earlier cells (a model architecture, say) read as None."""

    def __missing__(self, key: str) -> None:
        return None


def _setting_values(source: str, setting: str) -> dict:
    """num_epochs, resize and train_size that a setting cell picks for ``setting``.

    Runs only the cell's ``if setting == ...`` block (not its training) and reads the ``resize``
    and ``train_size`` arguments of its data-loading call, if any.
    """
    tree = ast.parse(IGNORE.sub("", source))
    scope = _EarlierCells(setting=setting)
    for stmt in tree.body:
        if isinstance(stmt, ast.If):
            exec(compile(ast.Module(body=[stmt], type_ignores=[]), "<setting>", "exec"), {}, scope)
    values = {"num_epochs": scope["num_epochs"], "resize": None, "train_size": None}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and "load_data" in ast.unparse(node.func):
            for kw in node.keywords:
                if kw.arg in ("resize", "train_size"):
                    values[kw.arg] = eval(ast.unparse(kw.value), {}, scope)
    return values


@pytest.mark.parametrize("lang, name", editions(TRAINING))
def test_stored_main_run_matches_the_settings_in_the_code(lang, name):
    """The stored training output must come from the code as it stands (no stale runs)."""
    nb = load(name, lang)
    setting_cells = [c for c in nb.cells if c.cell_type == "code" and "pick_setting(" in c.source]
    main = next(c for c in nb.cells if "main-run" in c.metadata.get("tags", []))
    text = stored_text(nbformat.v4.new_notebook(cells=[main]))
    run = re.search(TRAINING_LINE, text, re.M)
    assert run, text[:300]
    if run.group(1) == "quick" or not setting_cells:
        return
    cell = setting_cells[0]
    picked = re.search(
        r"^setting: (\w+)", stored_text(nbformat.v4.new_notebook(cells=[cell])), re.M
    )
    assert picked, f"{name}: the setting cell has no stored 'setting:' line"
    values = _setting_values(cell.source, picked.group(1))
    assert int(run.group(2).replace(",", "")) == (values["train_size"] or 60_000), name
    assert int(run.group(3)) == (values["resize"] or 28), name
    assert int(run.group(4)) == values["num_epochs"], name
