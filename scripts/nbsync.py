"""One source of truth for the launch links: every notebook's launch badges (Colab, Kaggle,
SageMaker Studio Lab) and setup cell, and the README's badges and chapter table; and the line
that shows figures in every notebook.

    python scripts/nbsync.py          # rewrite them
    python scripts/nbsync.py --check  # exit 1 if anything differs (used by the tests)

The repository URL is read from pyproject.toml ([project.urls] Repository): moving the
repository means changing that one line and running this script. The setup cell installs the
release of d2lcnn that the notebooks were checked with (``d2lcnn.__version__``, tag ``vX.Y.Z``:
CONTRIBUTING.md, "Making a release") on Colab, Kaggle and SageMaker Studio Lab.

The import cell (the first code cell after the setup cell) starts with ``%matplotlib inline``:
without it a kernel started with ``MPLBACKEND`` set (``Agg`` in a terminal or CI, say) never
displays a figure, and nbval then misses the figures' stored outputs.

The worked solutions (``notebooks/solutions/NN_name_solutions.ipynb``) get badges and setup cells
too, and the README's chapter tables link them. The Chinese edition (``notebooks/zh/``,
README.zh.md) gets the same treatment, its setup cell with
Chinese comments, and ``--check`` also checks that it shares one code with the English edition:
every English chapter has a Chinese twin of the same file name and vice versa, with the same cells
(types and tags) in the same order, and every code cell has the same Python tokens. Only the
text of string literals and comments may differ; ``# NBVAL...`` comment lines, names, numbers,
operators, f-string fields (their expressions and format specs) and IPython ``%``/``!`` lines
must be identical.
"""

from __future__ import annotations

import argparse
import ast
import io
import re
import sys
import tokenize
import tomllib
import warnings
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ZH = NOTEBOOKS / "zh"
SOLUTIONS = NOTEBOOKS / "solutions"  #: solutions/NN_name_solutions.ipynb, one per chapter
# the launch badges at the top of a notebook: one or more [![Open In ...](image)](link) in a row
BADGE_RE = re.compile(r"^(?:\[!\[Open In [^\]]*\]\([^)]*\)\]\([^)]*\) ?)+\n*", re.M)
SETUP_MARK = "# Setup (the same in every notebook)"
ZH_SETUP_MARK = "# 环境设置（每个笔记本都相同）"
INLINE = "%matplotlib inline"


def repo_url() -> str:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return meta["project"]["urls"]["Repository"].rstrip("/")


def github_path() -> str:
    """``owner/name`` of the repository."""
    return repo_url().split("github.com/", 1)[1]


def package_version() -> str:
    """d2lcnn's version, read from ``d2lcnn/__init__.py`` (the one place it is written)."""
    text = (ROOT / "d2lcnn" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    if match is None:
        raise SystemExit('d2lcnn/__init__.py lacks a line __version__ = "X.Y.Z"')
    return match.group(1)


def notebook_path(notebook: str) -> str:
    """``owner/name/blob/main/notebooks/<notebook>``: the notebook on the main branch, as the
    repository host and every launcher name it (``notebook`` may be ``zh/NAME.ipynb``)."""
    return f"{github_path()}/blob/main/notebooks/{notebook}"


def notebook_url(notebook: str) -> str:
    """``notebooks/<notebook>`` on the repository host's main branch."""
    return f"https://github.com/{notebook_path(notebook)}"


def colab_url(notebook: str) -> str:
    """Colab's address of ``notebooks/<notebook>``."""
    return f"https://colab.research.google.com/github/{notebook_path(notebook)}"


def kaggle_url(notebook: str) -> str:
    """Kaggle's address that opens ``notebooks/<notebook>`` as a new Kaggle notebook."""
    return f"https://kaggle.com/kernels/welcome?src={notebook_url(notebook)}"


def studiolab_url(notebook: str) -> str:
    """SageMaker Studio Lab's address that opens ``notebooks/<notebook>`` (and offers to clone
    the repository and build its ``environment.yml``)."""
    return f"https://studiolab.sagemaker.aws/import/github/{notebook_path(notebook)}"


#: (badge text, badge image, address of a notebook) per launcher, in the order they are shown
LAUNCHERS = [
    ("Open In Colab", "https://colab.research.google.com/assets/colab-badge.svg", colab_url),
    ("Open In Kaggle", "https://kaggle.com/static/images/open-in-kaggle.svg", kaggle_url),
    ("Open In SageMaker Studio Lab", "https://studiolab.sagemaker.aws/studiolab.svg",
     studiolab_url),
]  # fmt: skip


def launch_badges(notebook: str, launchers: list | None = None) -> str:
    """The launch badges of ``notebooks/<notebook>``, in one line."""
    return " ".join(
        f"[![{text}]({image})]({url(notebook)})" for text, image, url in launchers or LAUNCHERS
    )


def colab_badge(notebook: str) -> str:
    return launch_badges(notebook, LAUNCHERS[:1])


def install_target() -> str:
    """What the setup cell gives pip: d2lcnn from the repository, at the release's tag."""
    return f"d2lcnn @ git+{repo_url()}@v{package_version()}"


SETUP_TEXT = {
    "en": {
        "comments": (
            SETUP_MARK + ": on Colab, Kaggle or SageMaker Studio Lab, install\n"
            "# d2lcnn {version} (the release these notebooks were checked with) from the course\n"
            "# repository, keeping the host's own torch. On your machine or Binder d2lcnn is\n"
            "# already installed and this cell does nothing.\n"
        ),
        "done": "{{HOST}}: installed d2lcnn {version}",
        "kaggle": "Kaggle could not download d2lcnn: switch on Internet (Settings, on the right) "
        "and run this cell again",
        "failed": "{{HOST}}: pip could not install d2lcnn (its message is above)",
    },
    "zh": {
        "comments": (
            ZH_SETUP_MARK + "：在 Colab、Kaggle 或 SageMaker Studio Lab 上，从课程仓库安装\n"
            "# d2lcnn {version}（检查这些笔记本时所用的版本），保留平台自带的 torch。\n"
            "# 在你自己的电脑或 Binder 上已经装好 d2lcnn，这个单元格什么也不做。\n"
        ),
        "done": "{{HOST}}：已安装 d2lcnn {version}",
        "kaggle": "Kaggle 无法下载 d2lcnn：请在右侧的 Settings 中打开 Internet，然后重新运行这个单元格",
        "failed": "{{HOST}}：pip 未能安装 d2lcnn（原因见上方 pip 的输出）",
    },
}


def setup_cell_source(lang: str = "en") -> str:
    """The first code cell of every notebook: on a hosted notebook service (Colab, Kaggle,
    SageMaker Studio Lab) it installs the release of d2lcnn; elsewhere it does nothing.
    ``lang="zh"``: the same code, Chinese comments and messages."""
    text = {k: v.format(version=package_version()) for k, v in SETUP_TEXT[lang].items()}
    return (
        text["comments"] + "import os\n"
        "import subprocess\n"
        "import sys\n"
        "from pathlib import Path\n"
        "\n"
        'HOST = ("Colab" if "google.colab" in sys.modules\n'
        '        else "Kaggle" if "KAGGLE_KERNEL_RUN_TYPE" in os.environ\n'
        '        else "Studio Lab" if Path.home().name == "studio-lab-user"\n'
        "        else None)\n"
        "if HOST:\n"
        f'    package = "{install_target()}"\n'
        '    if subprocess.run([sys.executable, "-m", "pip", "install", "-q", package]).returncode == 0:\n'
        f'        print(f"{text["done"]}")\n'
        '    elif HOST == "Kaggle":\n'
        f'        print("{text["kaggle"]}")\n'
        "    else:\n"
        f'        print(f"{text["failed"]}")'
    )


def binder_url(notebook: str = "00_start_here.ipynb") -> str:
    """Binder's address opening ``notebooks/<notebook>`` in JupyterLab."""
    return f"https://mybinder.org/v2/gh/{github_path()}/main?urlpath=lab/tree/notebooks/{notebook}"


def title(nb: nbformat.NotebookNode) -> str:
    """The notebook's first ``# `` heading."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^# (.+)$", cell.source, re.M)
            if match:
                return match.group(1).strip()
    return "(untitled)"


def _chapter_table(notebooks: list[Path], folder: str, header: str) -> str:
    """The chapter table of a README: notebook, title, launch badges and solutions link per row."""
    rows = [header, "|---|---|---|---|"]
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        rows.append(
            f"| [`{path.name}`](notebooks/{folder}{path.name}) | {title(nb)} | "
            f"{launch_badges(folder + path.name)} | {_solutions_link(NOTEBOOKS / path.name)} |"
        )
    return "\n".join(rows)


def _badges(start: str) -> str:
    return f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder_url(start)}) {launch_badges(start)}"


def readme_sections(notebooks: list[Path]) -> dict[str, str]:
    """The generated parts of README.md, by marker name."""
    header = "| Notebook | Chapter | Open | Solutions |"
    return {"badges": _badges("00_start_here.ipynb"),
            "chapters": _chapter_table(notebooks, "", header)}  # fmt: skip


def readme_zh_sections(notebooks: list[Path]) -> dict[str, str]:
    """The generated parts of README.zh.md: launch badges and the table of the Chinese chapters."""
    header = "| 笔记本 | 章节 | 打开 | 练习答案（英文） |"
    return {"badges": _badges("zh/00_start_here.ipynb"),
            "chapters": _chapter_table(notebooks, "zh/", header)}  # fmt: skip


def _solutions_link(chapter: Path) -> str:
    """A README link to the chapter's solutions, or "-" while it has none."""
    path = solutions_of(chapter)
    return f"[solutions](notebooks/solutions/{path.name})" if path.is_file() else "-"


def replace_section(text: str, name: str, body: str, file: str = "README.md") -> str:
    """``text`` with the part between ``<!-- name:start -->`` and ``<!-- name:end -->`` replaced."""
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{file} lacks the markers <!-- {name}:start --> / <!-- {name}:end -->")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def inline_figures(source: str) -> str:
    """``source`` with ``%matplotlib inline`` as its first line (and no other ``%matplotlib``)."""
    lines = [line for line in source.splitlines() if not line.startswith("%matplotlib")]
    return "\n".join([INLINE, *lines])


def solutions_of(chapter: Path) -> Path:
    """The worked solutions of ``notebooks/NN_name.ipynb``: ``notebooks/solutions/NN_name_solutions.ipynb``."""
    return SOLUTIONS / f"{chapter.stem}_solutions.ipynb"


def sync(nb: nbformat.NotebookNode, name: str, lang: str = "en",
         folder: str | None = None) -> nbformat.NotebookNode:  # fmt: skip
    """Put the badge at the top of the first Markdown cell, the setup cell first among code cells
    and ``%matplotlib inline`` first in the import cell (the code cell after the setup cell).

    ``lang="zh"``: a notebook of notebooks/zh/ (its badge opens notebooks/zh/<name>, its setup
    cell has Chinese comments; an English setup cell copied from the twin is replaced).
    ``folder``: the notebook's folder under notebooks/ (``"solutions/"``; default: ``"zh/"`` for
    ``lang="zh"``, none for English)."""
    if folder is None:
        folder = "zh/" if lang == "zh" else ""
    first_md = next(c for c in nb.cells if c.cell_type == "markdown")
    body = BADGE_RE.sub("", first_md.source)
    first_md.source = launch_badges(f"{folder}{name}") + "\n\n"
    first_md.source += body.lstrip("\n")
    code = [c for c in nb.cells if c.cell_type == "code"]
    if code and code[0].source.startswith((SETUP_MARK, ZH_SETUP_MARK)):
        code[0].source = setup_cell_source(lang)
    else:
        cell = nbformat.v4.new_code_cell(setup_cell_source(lang))
        cell.execution_count = None
        nb.cells.insert(nb.cells.index(first_md) + 1, cell)
        code.insert(0, cell)
    if len(code) > 1 and not code[1].source.startswith(INLINE + "\n"):
        code[1].source = inline_figures(code[1].source)
    return nb


# ---- one code, two editions: the Chinese notebook's code must be its English twin's ----

MAGIC = "_d2lcnn_ipython_line_"  # stands for an IPython %/! line while Python tokenizes the cell
NBVAL_COMMENT = re.compile(r"#\s*NBVAL")
FIX = (
    "Fix: make the code the same in both editions (a change to the code goes into the English "
    "notebook and its Chinese twin alike); only the text of strings a learner reads and comments "
    "may differ, and '# NBVAL...' lines, names, numbers, operators, the expressions and format "
    "specs of f-string fields {x:.3f}, and %/! lines stay exactly as in English."
)
_SKIP = {tokenize.NL, tokenize.ENDMARKER, tokenize.ENCODING}
# Python 3.12 tokenizes an f-string into pieces; they are put back together into one string
_FSTRING_START = getattr(tokenize, "FSTRING_START", None)
_FSTRING_END = getattr(tokenize, "FSTRING_END", None)


class _BlankStrings(ast.NodeTransformer):
    """Empties the string literals of an expression (they may be translated, as everywhere)."""

    def visit_Constant(self, node: ast.Constant) -> ast.Constant:
        return ast.Constant("") if isinstance(node.value, str) else node

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.FormattedValue:
        node.value = self.visit(node.value)  # a nested f-string's format spec stays as it is
        return node


def _string_fields(text: str) -> tuple[str, ...]:
    """What must stay the same in the string literal ``text``: its kind (bytes or text), and for
    an f-string each replacement field: its expression (string literals in it excepted), its
    conversion and format spec. The literal text around the fields may be translated."""
    with warnings.catch_warnings():  # "invalid escape sequence": the notebook's business
        warnings.simplefilter("ignore")
        node = ast.parse(text.strip(), mode="eval").body
    kind = "bytes" if isinstance(node, ast.Constant) and isinstance(node.value, bytes) else "str"
    fields = []
    for value in getattr(node, "values", []):
        if isinstance(value, ast.FormattedValue):
            expression = ast.dump(_BlankStrings().visit(value.value))
            spec = ast.dump(value.format_spec) if value.format_spec else ""
            fields.append(f"{{{expression}!{value.conversion}:{spec}}}")
    return (kind, *fields)


def code_tokens(source: str) -> list[tuple[tuple, int]]:
    """The tokens of a code cell that must match the twin's, each with its line number (from 1).

    Comments and the text of strings drop out (they may be translated); ``# NBVAL...`` comments
    stay, and so do IPython lines starting with ``%`` or ``!`` (compared as written). Adjacent
    string literals count as one string, so a translation may join or split them. Raises
    ``SyntaxError`` or ``tokenize.TokenError`` on code Python cannot tokenize.
    """
    lines = source.splitlines()
    magic = {}
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("%", "!")):
            magic[i + 1] = line.strip()
            lines[i] = line[: len(line) - len(line.lstrip())] + MAGIC
    text = "\n".join(lines) + "\n"
    raw = list(tokenize.generate_tokens(io.StringIO(text).readline))
    physical = text.splitlines(keepends=True)
    offsets = [0]
    for line in physical:
        offsets.append(offsets[-1] + len(line))

    def span(start: tuple[int, int], end: tuple[int, int]) -> str:
        return text[offsets[start[0] - 1] + start[1] : offsets[end[0] - 1] + end[1]]

    out: list[tuple[tuple, int]] = []
    strings: list[str] = []  # the current run of adjacent string literals
    string_line = 0
    i = 0
    while i < len(raw):
        tok = raw[i]
        if tok.type == tokenize.STRING or (
            _FSTRING_START is not None and tok.type == _FSTRING_START
        ):
            if tok.type == tokenize.STRING:
                piece = tok.string
            else:  # 3.12: FSTRING_START ... FSTRING_END, nested f-strings included
                depth, j = 0, i
                while True:
                    if raw[j].type == _FSTRING_START:
                        depth += 1
                    elif raw[j].type == _FSTRING_END:
                        depth -= 1
                        if depth == 0:
                            break
                    j += 1
                piece = span(tok.start, raw[j].end)
                i = j
            if not strings:
                string_line = tok.start[0]
            strings.append(piece)
            i += 1
            continue
        if tok.type in (tokenize.NL, tokenize.COMMENT) and strings:
            if tok.type == tokenize.COMMENT and NBVAL_COMMENT.match(tok.string):
                pass  # an NBVAL marker ends the run below
            else:
                i += 1
                continue  # a run of strings may span lines and comments
        if strings:
            fields = [_string_fields(piece) for piece in strings]
            kinds = {f[0] for f in fields}
            merged = (kinds.pop() if len(kinds) == 1 else "mixed",)
            merged += tuple(x for f in fields for x in f[1:])
            out.append((("STRING", *merged), string_line))
            strings = []
        if tok.type in _SKIP:
            pass
        elif tok.type == tokenize.COMMENT:
            if NBVAL_COMMENT.match(tok.string):
                out.append((("COMMENT", tok.string.strip()), tok.start[0]))
        elif tok.type == tokenize.NAME and tok.string == MAGIC and tok.start[0] in magic:
            out.append((("MAGIC", magic[tok.start[0]]), tok.start[0]))
        else:
            out.append(((tokenize.tok_name[tok.type], tok.string), tok.start[0]))
        i += 1
    return out


def _line(source: str, number: int) -> str:
    lines = source.splitlines()
    return lines[number - 1].strip() if 0 < number <= len(lines) else "(end of the cell)"


def code_difference(en: str, zh: str) -> tuple[int, int] | None:
    """``None`` when the Chinese cell ``zh`` has the code of the English cell ``en``; otherwise
    the line numbers (from 1) of the first difference in each."""
    try:
        a, b = code_tokens(en), code_tokens(zh)
    except (SyntaxError, tokenize.TokenError):  # not Python (a %%bash cell, say): lines as written
        a = [((line.strip(),), n) for n, line in enumerate(en.splitlines(), 1) if line.strip()]
        b = [((line.strip(),), n) for n, line in enumerate(zh.splitlines(), 1) if line.strip()]
    for (ta, la), (tb, lb) in zip(a, b, strict=False):
        if ta != tb:
            return la, lb
    if len(a) != len(b):
        end_a = a[len(b)][1] if len(a) > len(b) else len(en.splitlines()) + 1
        end_b = b[len(a)][1] if len(b) > len(a) else len(zh.splitlines()) + 1
        return end_a, end_b
    return None


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def compare_editions(en: nbformat.NotebookNode, zh: nbformat.NotebookNode, name: str) -> str | None:
    """``None`` when the Chinese notebook ``zh`` shares its cells and code with ``en``; otherwise
    one message naming the notebook, the cell and the first differing line of each edition."""
    zh_path, en_path = f"notebooks/zh/{name}", f"notebooks/{name}"
    if len(en.cells) != len(zh.cells):
        return (
            f"{zh_path}: {len(zh.cells)} cells, its English twin {en_path} has {len(en.cells)}. "
            "Both editions have the same cells in the same order: add or remove cells in both, "
            "translating the Markdown cells."
        )
    for number, (a, b) in enumerate(zip(en.cells, zh.cells, strict=True), 1):
        where = f"{zh_path}, cell {number} (counting every cell from 1)"
        if a.cell_type != b.cell_type:
            return (
                f"{where} is a {b.cell_type} cell; in {en_path} it is a {a.cell_type} cell. "
                "Both editions have the same cells in the same order."
            )
        if _tags(a) != _tags(b):
            return (
                f"{where} has the tags {_tags(b)}; in {en_path} {_tags(a)}. Give the cell the "
                "same tags in both editions."
            )
        if a.cell_type != "code":
            continue
        diff = code_difference(a.source, b.source)
        if diff:
            return (
                f"{where}: the code differs from {en_path}.\n"
                f"  English line {diff[0]}: {_line(a.source, diff[0])}\n"
                f"  Chinese line {diff[1]}: {_line(b.source, diff[1])}\n"
                f"  {FIX}"
            )
    return None


def check_editions(en_dir: Path = NOTEBOOKS, zh_dir: Path = ZH) -> list[str]:
    """Every problem between the English notebooks in ``en_dir`` and their Chinese twins in
    ``zh_dir``: a missing twin, a notebook without an English twin, cells or code that differ
    (the first difference of each notebook)."""
    en_names = {p.name for p in en_dir.glob("*.ipynb")}
    zh_names = {p.name for p in zh_dir.glob("*.ipynb")} if zh_dir.is_dir() else set()
    problems = []
    missing = sorted(en_names - zh_names)
    if missing:
        problems.append(
            f"notebooks/zh/ lacks the Chinese twin of {len(missing)} English notebook(s): "
            f"{', '.join(missing)}. Every English chapter has a Chinese twin of the same name: "
            "copy notebooks/NAME.ipynb to notebooks/zh/, translate its Markdown, the strings a "
            "learner reads and the comments, and run it (CONTRIBUTING.md, 'Two editions')."
        )
    for name in sorted(zh_names - en_names):
        problems.append(
            f"notebooks/zh/{name} has no English twin notebooks/{name}: give it its English "
            "twin's file name, or add the English notebook first."
        )
    for name in sorted(en_names & zh_names):
        problem = compare_editions(
            nbformat.read(en_dir / name, as_version=4),
            nbformat.read(zh_dir / name, as_version=4),
            name,
        )
        if problem:
            problems.append(problem)
    return problems


def _sync_file(path: Path, text: str, stale: list[str], check: bool) -> None:
    if path.read_text() != text:
        stale.append(str(path.relative_to(ROOT)))
        if not check:
            path.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    stale = []
    english = sorted(NOTEBOOKS.glob("*.ipynb"))
    chinese = sorted(ZH.glob("*.ipynb"))
    solutions = sorted(SOLUTIONS.glob("*.ipynb"))
    for lang, folder, paths in (("en", "", english), ("zh", "zh/", chinese),
                                ("en", "solutions/", solutions)):  # fmt: skip
        for path in paths:
            nb = nbformat.read(path, as_version=4)
            before = nbformat.writes(nb)
            after = nbformat.writes(sync(nb, path.name, lang, folder))
            if before != after:
                stale.append(str(path.relative_to(NOTEBOOKS)))
                if not args.check:
                    nbformat.write(nb, path)  # as Jupyter writes it: a final newline
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = text
    for name, body in readme_sections(english).items():
        new = replace_section(new, name, body)
    _sync_file(readme, new, stale, args.check)
    readme_zh = ROOT / "README.zh.md"
    text = readme_zh.read_text()
    new = text
    for name, body in readme_zh_sections(chinese).items():
        new = replace_section(new, name, body, "README.zh.md")
    _sync_file(readme_zh, new, stale, args.check)
    status = 0
    if args.check and stale:
        print("out of date (run python scripts/nbsync.py):", ", ".join(stale))
        status = 1
    problems = check_editions()
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) between the English and the Chinese edition (above)")
        status = 1
    print(
        ("checked" if args.check else "synced"),
        len(english), "English and", len(chinese), "Chinese notebooks and", len(solutions),
        "solution notebooks",
    )  # fmt: skip
    return status


if __name__ == "__main__":
    sys.exit(main())
