"""The Chinese edition's infrastructure: the check that both editions share one code
(``scripts/nbsync.py --check``), the zh badge and setup cell, README.zh.md, and the bundled CJK
font (coverage, registration with matplotlib, no tofu boxes, English figures unchanged)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import nbformat
import numpy as np
import pytest

from d2lcnn import plot

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import cjk_font  # noqa: E402
import nbsync  # noqa: E402

TRAINING = """\
# NBVAL_IGNORE_OUTPUT
net = make_net(num_classes=10, dropout=0.5)  # the model of this chapter
history = d2l.train_ch6(net, train_iter, test_iter, num_epochs, lr=0.9)
print(f"best test acc {max(history.test_acc):.3f} after {len(history.test_acc)} epochs")
ax.set_title("Training loss", fontsize=9)
"""


def english() -> nbformat.NotebookNode:
    """A small chapter notebook, as nbsync leaves it: 0 title, 1 setup cell, 2 imports,
    3 heading, 4 training (tag main-run), 5 a print."""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Chapter 3: LeNet\n\n**Objectives**\n\n- train it"),
        nbformat.v4.new_code_cell("%matplotlib inline\nimport d2lcnn as d2l"),
        nbformat.v4.new_markdown_cell("## Training"),
        nbformat.v4.new_code_cell(TRAINING, metadata={"tags": ["main-run"]}),
        nbformat.v4.new_code_cell('print("setting:", setting)  # printed for the reader'),
    ])  # fmt: skip
    return nbsync.sync(nb, "03_lenet.ipynb")


def chinese(replace: dict[int, tuple[str, str]] | None = None) -> nbformat.NotebookNode:
    """The Chinese twin of :func:`english`, translated; ``replace``: cell -> (old, new) edits."""
    nb = nbsync.sync(copy.deepcopy(english()), "03_lenet.ipynb", "zh")
    nb.cells[0].source = nb.cells[0].source.replace("# Chapter 3: LeNet", "# 第3章：LeNet")
    nb.cells[3].source = "## 训练"
    nb.cells[5].source = nb.cells[5].source.replace('"setting:"', '"设置："')
    for number, (old, new) in (replace or {}).items():
        assert old in nb.cells[number].source, old
        nb.cells[number].source = nb.cells[number].source.replace(old, new)
    return nb


def compare(zh: nbformat.NotebookNode) -> str | None:
    return nbsync.compare_editions(english(), zh, "03_lenet.ipynb")


# ---- one code, two editions ----


def test_the_translated_twin_passes():
    assert compare(chinese()) is None


@pytest.mark.parametrize(
    "old, new",
    [
        ('"Training loss"', '"训练损失"'),  # a figure title
        ('f"best test acc {', 'f"最佳测试精度 {'),  # the text of an f-string
        ('after {len(history.test_acc)} epochs"', '（共 {len(history.test_acc)} 轮）"'),
        ('"Training loss"', '"训练"\n             "损失"'),  # split into two literals
    ],
)
def test_a_translated_string_passes(old, new):
    assert compare(chinese({4: (old, new)})) is None


@pytest.mark.parametrize(
    "old, new",
    [
        ("# the model of this chapter", "# 本章的模型"),
        ("# the model of this chapter", ""),  # a comment dropped
        ("history = d2l", "# 训练，并记录每轮的精度\nhistory = d2l"),  # a comment line added
    ],
)
def test_a_translated_comment_passes(old, new):
    assert compare(chinese({4: (old, new)})) is None


@pytest.mark.parametrize(
    "old, new",
    [
        ("net = make_net", "model = make_net"),  # a name
        ("dropout=0.5", "dropout=0.3"),  # a number
        ("lr=0.9", "lr=-0.9"),  # an operator
        ("num_classes=10, dropout=0.5", "dropout=0.5, num_classes=10"),  # the order
        ("{max(history.test_acc):.3f}", "{max(history.test_acc):.2f}"),  # a format spec
        ("{len(history.test_acc)}", "{len(history.train_acc)}"),  # an f-string field
        ("# NBVAL_IGNORE_OUTPUT\n", ""),  # the nbval marker dropped
        ("# NBVAL_IGNORE_OUTPUT", "# NBVAL_IGNORE_OUTPUT 忽略输出"),  # or changed
        ("%matplotlib inline", "%matplotlib widget"),  # an IPython line
        ("print(", "print(b"),  # a text string made bytes
    ],
)
def test_a_code_change_fails_naming_notebook_cell_and_lines(old, new):
    cell = 2 if "matplotlib" in old else 5 if old.startswith("print(") else 4
    problem = compare(chinese({cell: (old, new)}))
    assert problem is not None
    assert f"notebooks/zh/03_lenet.ipynb, cell {cell + 1} " in problem
    assert "English line" in problem and "Chinese line" in problem and "Fix:" in problem


def test_the_message_shows_the_first_differing_line_of_each_edition():
    problem = compare(chinese({4: ("dropout=0.5)  # the model", "dropout=0.3)  # 模型")}))
    lines = problem.splitlines()
    assert lines[1] == (
        "  English line 2: net = make_net(num_classes=10, dropout=0.5)  # the model of this chapter"
    )
    assert (
        lines[2]
        == "  Chinese line 2: net = make_net(num_classes=10, dropout=0.3)  # 模型 of this chapter"
    )


def test_a_changed_nbval_marker_fails():
    problem = compare(chinese({4: ("# NBVAL_IGNORE_OUTPUT", "# NBVAL_SKIP")}))
    assert "English line 1: # NBVAL_IGNORE_OUTPUT" in problem
    assert "Chinese line 1: # NBVAL_SKIP" in problem


def test_a_different_cell_count_or_type_or_tag_fails():
    zh = chinese()
    zh.cells.append(nbformat.v4.new_markdown_cell("## 练习"))
    assert "7 cells, its English twin notebooks/03_lenet.ipynb has 6" in compare(zh)
    zh = chinese()
    zh.cells[3] = nbformat.v4.new_raw_cell("## 训练")
    assert "cell 4 (counting every cell from 1) is a raw cell" in compare(zh)
    zh = chinese()
    zh.cells[4].metadata["tags"] = []
    assert "tags []" in compare(zh) and "['main-run']" in compare(zh)


def test_code_python_cannot_tokenize_is_compared_line_by_line():
    en = "%%bash\necho 'it's here'\n"
    assert nbsync.code_difference(en, en) is None
    assert nbsync.code_difference(en, "%%bash\necho 'it's not'\n") == (2, 2)


def test_a_missing_or_extra_twin_fails(tmp_path):
    en_dir, zh_dir = tmp_path, tmp_path / "zh"
    zh_dir.mkdir()
    nbformat.write(english(), en_dir / "03_lenet.ipynb")
    nbformat.write(english(), en_dir / "04_workflow.ipynb")
    nbformat.write(chinese(), zh_dir / "03_lenet.ipynb")
    nbformat.write(chinese(), zh_dir / "99_extra.ipynb")
    problems = nbsync.check_editions(en_dir, zh_dir)
    assert len(problems) == 2
    assert "lacks the Chinese twin of 1 English notebook(s): 04_workflow.ipynb" in problems[0]
    assert "notebooks/zh/99_extra.ipynb has no English twin" in problems[1]
    nbformat.write(chinese(), zh_dir / "04_workflow.ipynb")
    (zh_dir / "99_extra.ipynb").unlink()
    assert nbsync.check_editions(en_dir, zh_dir) == []


def test_zh_sync_writes_the_zh_badge_and_setup_cell_and_inline_figures():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 第3章：LeNet"),
        nbformat.v4.new_code_cell(nbsync.setup_cell_source()),  # copied from the English twin
        nbformat.v4.new_code_cell("import d2lcnn as d2l"),
    ])  # fmt: skip
    synced = nbsync.sync(nb, "03_lenet.ipynb", "zh")
    assert nbsync.colab_badge("zh/03_lenet.ipynb") in synced.cells[0].source
    assert "/blob/main/notebooks/zh/03_lenet.ipynb)" in synced.cells[0].source
    assert synced.cells[1].source == nbsync.setup_cell_source("zh")
    assert synced.cells[2].source == "%matplotlib inline\nimport d2lcnn as d2l"
    again = nbsync.sync(copy.deepcopy(synced), "03_lenet.ipynb", "zh")
    assert nbformat.writes(again) == nbformat.writes(synced)
    # the zh setup cell runs the same code as the English one (only its comments differ)
    assert (
        nbsync.code_difference(nbsync.setup_cell_source(), nbsync.setup_cell_source("zh")) is None
    )


def test_readme_zh_lists_every_chinese_notebook_with_its_badge():
    chinese_notebooks = sorted(nbsync.ZH.glob("*.ipynb"))
    table = nbsync.readme_zh_sections(chinese_notebooks)["chapters"]
    readme = (ROOT / "README.zh.md").read_text()
    assert table in readme, "README.zh.md is out of date: run python scripts/nbsync.py"
    for path in chinese_notebooks:
        assert f"](notebooks/zh/{path.name})" in table
        assert nbsync.colab_badge(f"zh/{path.name}") in table
    assert "中文版：[README.zh.md](README.zh.md)" in (ROOT / "README.md").read_text()


# ---- the bundled CJK font ----


def test_the_bundled_font_is_a_small_licensed_subset_covering_the_chinese_notebooks():
    assert plot.CJK_FONT.is_file() and plot.CJK_FONT == cjk_font.FONT
    assert plot.CJK_FONT.stat().st_size < 1_000_000
    assert "SIL OPEN FONT LICENSE Version 1.1" in (plot.CJK_FONT.parent / "OFL.txt").read_text()
    assert cjk_font.check() == [], "run python scripts/cjk_font.py"
    have = cjk_font.font_characters()
    assert set(cjk_font.common_characters()) <= have and len(cjk_font.common_characters()) == 3755
    assert set("，。：；（）、“”《》") <= have
    # installed with the package (a wheel, as Colab's pip install builds one), licence included
    import tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = patterns["package-data"]["d2lcnn"]
    for path in (plot.CJK_FONT, plot.CJK_FONT.parent / "OFL.txt"):
        assert any(path.relative_to(ROOT / "d2lcnn").match(p) for p in patterns), path.name


def test_the_coverage_check_names_a_missing_character(tmp_path):
    nb = english()
    nb.cells[4].source = TRAINING.replace("Training loss", "训练损失 龘")  # 龘: not a common one
    nbformat.write(nb, tmp_path / "03_lenet.ipynb")
    problems = cjk_font.check(cjk_font.FONT, tmp_path, root=None)
    assert problems == [f"'龘' (U+9F98, used in 03_lenet.ipynb) is not in {cjk_font.FONT.name}"]


def render(text: str, rc: dict | None = None) -> tuple[np.ndarray, list[str]]:
    """``text`` drawn as a title on the Agg backend: the pixels and matplotlib's warnings."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context(rc or {}), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = Figure(figsize=(4, 1), dpi=72)
        FigureCanvasAgg(fig)
        fig.suptitle(text)
        fig.canvas.draw()
        pixels = np.asarray(fig.canvas.buffer_rgba()).copy()
    return pixels, [str(w.message) for w in caught]


def test_chinese_title_renders_without_missing_glyphs():
    plot.register_cjk_font()
    _, caught = render("训练损失与测试精度（第3章）：LeNet，10 个迭代周期")
    assert not [m for m in caught if "missing from font" in m], caught


def test_the_subset_alone_draws_every_string_of_the_chinese_notebooks():
    """No system CJK font needed: only DejaVu Sans and the bundled subset."""
    plot.register_cjk_font()
    text = "".join(cjk_font.notebook_characters()) + "，。：；（）、“”"
    for line in textwrap.wrap(text, 40):
        _, caught = render(line, {"font.family": ["sans-serif", plot.CJK_FAMILY]})
        assert not [m for m in caught if "missing from font" in m], caught


def test_without_the_font_matplotlib_would_warn():
    """The test above can fail: DejaVu Sans alone has no Chinese glyph."""
    _, caught = render("训练损失", {"font.family": ["DejaVu Sans"]})
    assert [m for m in caught if "missing from font" in m]


@pytest.mark.parametrize("path", sorted(nbsync.ZH.glob("*.ipynb")), ids=lambda p: p.stem)
def test_stored_chinese_figures_have_no_missing_glyphs(path):
    """matplotlib's warning for a tofu box would be in the stored stderr of the figure's cell."""
    nb = nbformat.read(path, as_version=4)
    for number, cell in enumerate(nb.cells, 1):
        for out in cell.get("outputs", []):
            text = out.get("text", "") if out.output_type == "stream" else ""
            assert "missing from font" not in text, (
                f"{path.name}, cell {number}: a figure was drawn without the CJK font; re-run the "
                "notebook (python scripts/cjk_font.py --check first)"
            )


def test_english_figures_still_use_dejavu_sans_unchanged():
    import matplotlib
    from matplotlib import font_manager

    plot.register_cjk_font()
    assert matplotlib.rcParams["font.family"][0] == "sans-serif"
    assert matplotlib.rcParams["font.sans-serif"][:2] == ["DejaVu Sans", plot.CJK_FAMILY]
    prop = font_manager.FontProperties(family=matplotlib.rcParams["font.family"])
    first = font_manager.fontManager._find_fonts_by_props(prop)[0]
    assert Path(str(first)).name == "DejaVuSans.ttf"
    english_text = "Training loss, test acc 0.891 (epoch 10/10)"
    with_cjk, _ = render(english_text)
    without, _ = render(english_text, {"font.family": ["sans-serif"],
                                       "font.sans-serif": ["DejaVu Sans"]})  # fmt: skip
    assert np.array_equal(with_cjk, without)


AGG = "import matplotlib\nmatplotlib.use('Agg')\n"
IMPORTS = {
    # as in a notebook: %matplotlib inline imports pyplot before d2lcnn
    "pyplot first": AGG + "import matplotlib.pyplot as plt\nimport d2lcnn as d2l\n",
    # a script: d2lcnn first (it neither imports matplotlib nor hooks the import system), then
    # pyplot as d2l.plt, the way the book's code draws
    "d2l.plt": (
        "import d2lcnn as d2l\nassert 'matplotlib' not in sys.modules\n"
        "assert not any('d2lcnn' in type(f).__module__ for f in sys.meta_path)\n"
        + AGG
        + "plt = d2l.plt\n"
    ),
}
DRAW = """
warnings.simplefilter("error")  # a missing glyph fails the run
fig, ax = plt.subplots()
ax.set_title("测试精度"), ax.set_xlabel("迭代周期"), ax.legend(["训练损失"])
fig.savefig(sys.argv[1])
print(matplotlib.rcParams["font.family"])
"""


@pytest.mark.parametrize("order", sorted(IMPORTS))
def test_the_font_is_registered_on_every_path_to_pyplot(order, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "import sys, warnings\n" + IMPORTS[order] + DRAW,
         str(tmp_path / "figure.png")],
        capture_output=True, text=True, cwd=ROOT, check=False,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert plot.CJK_FAMILY in result.stdout
    assert (tmp_path / "figure.png").stat().st_size > 0
