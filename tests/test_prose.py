"""Prose that stays true to the stored runs it quotes, and checks in the solutions that can fail.

- A chapter that quotes another chapter's main run (its test accuracy, its minutes of training)
  quotes the figure that chapter's stored run holds now, in the same edition: the registry of
  ``scripts/results_table.py`` (``python scripts/results_table.py --registry``). A sentence that
  names chapter N and gives a test accuracy (three decimals) or minutes must give chapter N's, or
  a figure of the notebook's own outputs, or one of ``benchmarks/results/*.md`` (the measured
  tables the chapters cite). Re-run a chapter and every chapter quoting it must follow.
- A Chinese notebook's prose quotes its own run: a figure that its English twin's outputs hold
  but its own outputs (and the Chinese registry, the benchmark tables, its code) do not is a
  figure borrowed from the English run.
- Every ``assert`` of a worked solution compares two different things: not an expression with
  itself, nor a name with the expression it was just assigned from (a check that cannot fail).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
sys.path.insert(0, str(ROOT / "scripts"))
import results_table  # noqa: E402

# where a sentence ends: . ! ? before a space, the Chinese full stops, a blank line, a list item
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|[。！？]|\n\s*\n|\n\s*(?:[-*]|\d+\.)\s")
CHAPTER_REF = re.compile(r"(?:\b[Cc]hapter\s*|第\s*)(\d{1,2})(?!\d)")
OWN_CHAPTER_REF = re.compile(r"\b[Tt]he chapter(?:'s)?\b|本章")  # in a solutions notebook
ACCURACY = re.compile(r"(?<![\d.])(0\.[1-9]\d\d)(?![\d])")  # the course's accuracies
MINUTES = re.compile(r"(?<![\d.])(\d+\.\d)\s*(?:min\b|minutes|分钟)")
# figures worth comparing between the editions: 2+ decimals, thousands separators, or one
# decimal with a unit
FIGURE = re.compile(
    r"(?<![\d.,])(\d+\.\d{2,}|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d(?=\s*(?:分钟|秒|ms|倍|%|min)))"
    r"(?![\d])"
)


def notebooks(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.ipynb"))


def chapter_number(path: Path) -> int | None:
    found = re.match(r"(\d\d)_", path.name)
    return int(found.group(1)) if found else None


def outputs_text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            elif "data" in out:
                parts.append(out.data.get("text/plain", ""))
    return "\n".join(parts)


def contains(text: str, figure: str) -> bool:
    """``figure`` occurs in ``text`` as a number of its own (0.81 is not in 0.817 or 10.81)."""
    return re.search(rf"(?<![\d.,]){re.escape(figure)}(?![\d]|[.,]\d)", text) is not None


BENCHMARKS = "\n".join(p.read_text() for p in sorted((ROOT / "benchmarks" / "results").glob("*.md")))
# Figures the d2l book reports, which a chapter quotes as the book's in both editions: a run of
# the English edition may print the same number, and the Chinese prose has not borrowed it then.
BOOK_FIGURES = {"03_lenet.ipynb": "the book reports loss 0.461, train acc 0.827, test acc 0.818"}


def stale_quotes(path: Path, registry: dict[str, dict], sources: str = BENCHMARKS) -> list[str]:
    """Sentences of ``path`` that quote a figure of a chapter they name which that chapter does
    not hold: neither its main run (``registry``) nor any other of its stored outputs."""
    nb = nbformat.read(path, as_version=4)
    folder = path.parents[1] if path.parent.name == "solutions" else path.parent
    chapter_outputs = {chapter_number(p): outputs_text(nbformat.read(p, as_version=4))
                       for p in notebooks(folder) if chapter_number(p) is not None}
    own_outputs = outputs_text(nb)
    by_number = {chapter_number(Path(name + ".ipynb")): run for name, run in registry.items()}
    this = chapter_number(Path(path.name.replace("_solutions", "")))
    solutions = path.name.endswith("_solutions.ipynb")
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        for sentence in SENTENCE_END.split(cell.source):
            quoted = {int(n) for n in CHAPTER_REF.findall(sentence)}
            if solutions and OWN_CHAPTER_REF.search(sentence):
                quoted.add(this)
            if not solutions:
                quoted.discard(this)
            runs = [by_number[n] for n in quoted if n in by_number]
            if not runs:
                continue
            figures = [(f, "test_acc") for f in ACCURACY.findall(sentence)]
            figures += [(f, "minutes") for f in MINUTES.findall(sentence)]
            for figure, key in figures:
                if any(run[key] == figure for run in runs):
                    continue  # the named chapter's main run, as stored now
                if any(contains(chapter_outputs.get(n, ""), figure) for n in quoted):
                    continue  # another of its stored outputs
                if contains(own_outputs, figure) or contains(sources, figure):
                    continue
                chapters = ", ".join(f"{run['notebook']}: {run[key]}" for run in runs)
                problems.append(
                    f"{path.relative_to(path.parents[1])} cell {index}: {figure} ({key}) is not "
                    f"the stored figure of the chapter it names ({chapters}), nor in this "
                    f"notebook's outputs or benchmarks/results: {sentence.strip()[:160]!r}"
                )
    return problems


@pytest.mark.parametrize(
    "path, lang",
    [(p, "en") for p in notebooks(NOTEBOOKS)]
    + [(p, "zh") for p in notebooks(NOTEBOOKS / "zh")]
    + [(p, "en") for p in notebooks(NOTEBOOKS / "solutions")],
    ids=lambda v: v.relative_to(NOTEBOOKS).as_posix() if isinstance(v, Path) else v,
)
def test_quotes_of_other_chapters_main_runs_are_current(path, lang):
    problems = stale_quotes(path, results_table.registry(lang))
    assert not problems, "\n".join(problems)


def borrowed_figures(zh_path: Path, en_path: Path, zh_registry: dict[str, dict]) -> list[str]:
    """Figures of a Chinese notebook's prose that only the English twin's outputs hold."""
    zh, en = nbformat.read(zh_path, as_version=4), nbformat.read(en_path, as_version=4)
    own, english = outputs_text(zh), outputs_text(en)
    code = "\n".join(c.source for c in zh.cells if c.cell_type == "code")
    runs = " ".join(f"{r['test_acc']} {r['minutes']} {r['speed']}" for r in zh_registry.values())
    problems = []
    for index, cell in enumerate(zh.cells):
        if cell.cell_type != "markdown":
            continue
        for figure in sorted(set(FIGURE.findall(cell.source))):
            if not contains(english, figure):
                continue
            book = BOOK_FIGURES.get(zh_path.name, "")
            if any(contains(text, figure) for text in (own, runs, BENCHMARKS, code, book)):
                continue
            at = cell.source.find(figure)
            problems.append(
                f"zh/{zh_path.name} cell {index}: {figure} is in the English run's outputs, not "
                f"in this notebook's: {cell.source[max(0, at - 60):at + 20]!r}"
            )
    return problems


@pytest.mark.parametrize("name", [p.name for p in notebooks(NOTEBOOKS / "zh")])
def test_chinese_prose_quotes_its_own_run(name):
    problems = borrowed_figures(NOTEBOOKS / "zh" / name, NOTEBOOKS / name,
                                results_table.registry("zh"))
    assert not problems, "\n".join(problems)


def code_of(cell_source: str) -> str:
    # IPython lines (%magic, !shell) are not Python
    lines = cell_source.splitlines()
    return "\n".join(line[: len(line) - len(line.lstrip())] + "pass"
                     if line.lstrip().startswith(("%", "!")) else line for line in lines)


COMPARISONS = {"allclose", "equal", "isclose", "array_equal", "assert_close", "assert_allclose"}


def restated(source: str) -> list[str]:
    """Asserts in ``source`` whose two sides are the same expression, directly or through a name
    assigned from the other side before the assert (its last assignment above it)."""
    tree = ast.parse(source)
    assignments: list[tuple[int, str, str]] = []  # (line, name, the expression assigned)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    assignments.append((node.lineno, target.id, ast.dump(node.value)))
                elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    for t, v in zip(target.elts, node.value.elts, strict=False):
                        if isinstance(t, ast.Name):
                            assignments.append((node.lineno, t.id, ast.dump(v)))
    assignments.sort()
    problems = []

    def value_of(name: ast.AST, line: int) -> str | None:
        if not isinstance(name, ast.Name):
            return None
        values = [v for at, n, v in assignments if n == name.id and at < line]
        return values[-1] if values else None

    def same(a: ast.AST, b: ast.AST, line: int) -> bool:
        da, db = ast.dump(a), ast.dump(b)
        return da == db or value_of(a, line) == db or value_of(b, line) == da

    for node in ast.walk(tree):
        if not isinstance(node, ast.Assert):
            continue
        if isinstance(node.test, ast.Constant):
            problems.append(f"line {node.lineno}: assert of a constant")
        for sub in ast.walk(node.test):
            pairs = []
            if isinstance(sub, ast.Compare):
                pairs = list(zip([sub.left, *sub.comparators], sub.comparators, strict=False))
            elif isinstance(sub, ast.Call) and len(sub.args) >= 2:
                func = sub.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in COMPARISONS:
                    pairs = [(sub.args[0], sub.args[1])]
            for a, b in pairs:
                if same(a, b, node.lineno):
                    problems.append(f"line {node.lineno}: {ast.unparse(a)} against itself: "
                                    f"{ast.unparse(node.test)[:100]}")
    return problems


@pytest.mark.parametrize("name", [p.name for p in notebooks(NOTEBOOKS / "solutions")])
def test_solution_asserts_compare_two_different_things(name):
    nb = nbformat.read(NOTEBOOKS / "solutions" / name, as_version=4)
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            problems += [f"cell {index}, {p}" for p in restated(code_of(cell.source))]
    assert not problems, f"{name}: checks that cannot fail:\n" + "\n".join(problems)


# The checks themselves must be able to fail: each is shown a case it has to catch.


def _notebook(tmp_path: Path, name: str, markdown: str, output: str = "") -> Path:
    cell = nbformat.v4.new_code_cell("print()")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(markdown), cell])
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def test_a_stale_quote_of_another_chapter_is_caught(tmp_path):
    registry = {"10_resnet": {"notebook": "10_resnet.ipynb", "test_acc": "0.890",
                              "minutes": "2.0"}}
    stale = _notebook(tmp_path, "13_x.ipynb", "Chapter 10 reached 0.895 in 5.6 minutes.")
    assert len(stale_quotes(stale, registry, sources="")) == 2
    current = _notebook(tmp_path, "13_y.ipynb", "Chapter 10 reached 0.890 in 2.0 minutes.")
    assert stale_quotes(current, registry, sources="") == []
    # the solutions of chapter 10 quoting "the chapter's" run
    solution = _notebook(tmp_path, "10_x_solutions.ipynb", "The chapter's run reached 0.895.")
    assert len(stale_quotes(solution, registry, sources="")) == 1


def test_a_figure_borrowed_from_the_english_run_is_caught(tmp_path):
    (tmp_path / "zh").mkdir()
    en = _notebook(tmp_path, "07_x.ipynb", "It reached 0.842.", "test acc 0.842\n")
    zh = _notebook(tmp_path / "zh", "07_x.ipynb", "一次这样的运行达到了 0.842。", "test acc 0.814\n")
    assert len(borrowed_figures(zh, en, {})) == 1
    own = _notebook(tmp_path / "zh", "07_y.ipynb", "达到了 0.814。", "test acc 0.814\n")
    assert borrowed_figures(own, en, {}) == []


def test_a_restated_check_is_caught():
    assert restated("assert torch.allclose(a + b, a + b)")
    assert restated("xL = x0 + total\nassert torch.allclose(xL, x0 + total)")
    assert restated("x_L, t = h, s\nassert x_L == h")
    assert restated("assert True")
    assert not restated("y = net(x)\nassert torch.allclose(y, reference(x), atol=1e-5)")
    assert not restated("out = f(h)\nassert torch.equal(out, h)\nh = out")  # h: the one before
