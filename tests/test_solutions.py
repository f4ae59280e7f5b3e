"""The worked solutions: one notebook per chapter in notebooks/solutions/, linked from the chapter
(both editions) and the README, one section per exercise, real stored runs, checked answers.

nbval runs the notebooks themselves (``pytest tests notebooks`` collects notebooks/solutions)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CHAPTERS = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
IGNORE = re.compile(r"^\s*#\s*NBVAL_(IGNORE_OUTPUT|SKIP)", re.M)
sys.path.insert(0, str(ROOT / "scripts"))
import nbsync  # noqa: E402


def read(path: Path) -> nbformat.NotebookNode:
    if not path.is_file():
        pytest.fail(f"{path.relative_to(ROOT)} is missing: every chapter has worked solutions")
    return nbformat.read(path, as_version=4)


def exercises(chapter: nbformat.NotebookNode, heading: str = "## Exercises") -> str:
    """The Markdown cell holding a chapter's exercises."""
    cells = [c.source for c in chapter.cells
             if c.cell_type == "markdown" and re.search(rf"^{heading}\s*$", c.source, re.M)]  # fmt: skip
    assert len(cells) == 1, f"one '{heading}' section"
    return cells[0]


def number_of_exercises(chapter: nbformat.NotebookNode) -> int:
    after = exercises(chapter).split("## Exercises", 1)[1]
    return len(re.findall(r"^\d+\. ", after, re.M))


def test_every_chapter_has_solutions_and_nothing_else():
    have = sorted(p.name for p in nbsync.SOLUTIONS.glob("*.ipynb"))
    assert have == sorted(f"{name}_solutions.ipynb" for name in CHAPTERS)


@pytest.mark.parametrize("name", CHAPTERS)
def test_the_chapter_links_its_solutions_in_both_editions(name):
    link = f"solutions/{name}_solutions.ipynb"
    english = exercises(read(NOTEBOOKS / f"{name}.ipynb"))
    assert f"]({link})" in english, f"{name}: the Exercises section links {link}"
    chinese = exercises(read(NOTEBOOKS / "zh" / f"{name}.ipynb"), "## 练习")
    assert f"](../{link})" in chinese, f"zh/{name}: the 练习 section links ../{link}"
    readme = (ROOT / "README.md").read_text()
    assert f"](notebooks/{link})" in readme


@pytest.mark.parametrize("name", CHAPTERS)
def test_one_section_per_exercise_in_order_with_badge_setup_cell_and_checks(name):
    chapter = read(NOTEBOOKS / f"{name}.ipynb")
    nb = read(nbsync.SOLUTIONS / f"{name}_solutions.ipynb")
    title = nbsync.title(nb)
    assert title.startswith("Solutions to ") and nbsync.title(chapter).split(":")[0] in title
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert f"](../{name}.ipynb)" in markdown, "a link back to the chapter"
    numbers = [int(n) for n in re.findall(r"^## Exercise (\d+)\b", markdown, re.M)]
    assert numbers == list(range(1, number_of_exercises(chapter) + 1)), numbers
    assert nbsync.colab_badge(f"solutions/{name}_solutions.ipynb") in nb.cells[0].source
    first_code, imports = [c for c in nb.cells if c.cell_type == "code"][:2]
    assert first_code.source == nbsync.setup_cell_source()
    assert imports.source.startswith("%matplotlib inline\n")
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert re.search(r"^\s*assert ", code, re.M), "checkable answers are checked with assert"
    assert not re.search(r"(?<![\w.])/(tmp|root|work|home)/", code + markdown)


@pytest.mark.parametrize("name", CHAPTERS)
def test_stored_outputs_come_from_a_real_run_top_to_bottom(name):
    nb = read(nbsync.SOLUTIONS / f"{name}_solutions.ipynb")
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"execution counts {counts}: run the whole notebook top to bottom in a fresh kernel "
        f"(python scripts/run_notebook.py notebooks/solutions/{name}_solutions.ipynb)"
    )
    assert any(c.outputs and not IGNORE.search(c.source) for c in code), "compared outputs"
    for c in code:
        assert not any(o.output_type == "error" for o in c.outputs), "a stored error"
        for o in c.outputs:
            text = o.get("text", "") + o.get("data", {}).get("text/plain", "")
            assert "quick mode" not in text, "stored outputs from quick mode, not a real run"
