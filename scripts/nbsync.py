"""One source of truth for the launch links: every notebook's Colab badge and setup cell, and
the README's badges and chapter table; and the line that shows figures in every notebook.

    python scripts/nbsync.py          # rewrite them
    python scripts/nbsync.py --check  # exit 1 if anything differs (used by the tests)

The repository URL is read from pyproject.toml ([project.urls] Repository): moving the
repository means changing that one line and running this script.

The import cell (the first code cell after the setup cell) starts with ``%matplotlib inline``:
without it a kernel started with ``MPLBACKEND`` set (``Agg`` in a terminal or CI, say) never
displays a figure, and nbval then misses the figures' stored outputs.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import tomllib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BADGE_RE = re.compile(r"^\[!\[Open In Colab\]\(.*?\)\]\(.*?\)\n*", re.M)
SETUP_MARK = "# Setup (the same in every notebook)"
INLINE = "%matplotlib inline"


def repo_url() -> str:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return meta["project"]["urls"]["Repository"].rstrip("/")


def github_path() -> str:
    """``owner/name`` of the repository."""
    return repo_url().split("github.com/", 1)[1]


def colab_url(notebook: str) -> str:
    return (
        f"https://colab.research.google.com/github/{github_path()}/blob/main/notebooks/{notebook}"
    )


def colab_badge(notebook: str) -> str:
    img = "https://colab.research.google.com/assets/colab-badge.svg"
    return f"[![Open In Colab]({img})]({colab_url(notebook)})"


def setup_cell_source() -> str:
    return (
        f"{SETUP_MARK}: on Google Colab, install d2lcnn from the course repository.\n"
        "# Colab's own torch is kept; elsewhere this cell does nothing.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install -q "d2lcnn @ git+{repo_url()}"'
    )


def binder_url(notebook: str = "00_start_here.ipynb") -> str:
    return f"https://mybinder.org/v2/gh/{github_path()}/main?urlpath=lab/tree/notebooks/{notebook}"


def title(nb: nbformat.NotebookNode) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^# (.+)$", cell.source, re.M)
            if match:
                return match.group(1).strip()
    return "(untitled)"


def readme_sections(notebooks: list[Path]) -> dict[str, str]:
    """The generated parts of README.md, by marker name."""
    badges = (
        f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder_url()}) "
        f"{colab_badge('00_start_here.ipynb')}"
    )
    rows = ["| Notebook | Chapter | Open |", "|---|---|---|"]
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        rows.append(
            f"| [`{path.name}`](notebooks/{path.name}) | {title(nb)} | {colab_badge(path.name)} |"
        )
    return {"badges": badges, "chapters": "\n".join(rows)}


def replace_section(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md lacks the markers <!-- {name}:start --> / <!-- {name}:end -->")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def inline_figures(source: str) -> str:
    """``source`` with ``%matplotlib inline`` as its first line (and no other ``%matplotlib``)."""
    lines = [line for line in source.splitlines() if not line.startswith("%matplotlib")]
    return "\n".join([INLINE, *lines])


def sync(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """Put the badge at the top of the first Markdown cell, the setup cell first among code cells
    and ``%matplotlib inline`` first in the import cell (the code cell after the setup cell)."""
    first_md = next(c for c in nb.cells if c.cell_type == "markdown")
    body = BADGE_RE.sub("", first_md.source)
    first_md.source = colab_badge(name) + "\n\n" + body.lstrip("\n")
    code = [c for c in nb.cells if c.cell_type == "code"]
    if code and code[0].source.startswith(SETUP_MARK):
        code[0].source = setup_cell_source()
    else:
        cell = nbformat.v4.new_code_cell(setup_cell_source())
        cell.execution_count = None
        nb.cells.insert(nb.cells.index(first_md) + 1, cell)
        code.insert(0, cell)
    if len(code) > 1 and not code[1].source.startswith(INLINE + "\n"):
        code[1].source = inline_figures(code[1].source)
    return nb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    stale = []
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        before = nbformat.writes(nb)
        after = nbformat.writes(sync(nb, path.name))
        if before != after:
            stale.append(path.name)
            if not args.check:
                nbformat.write(nb, path)  # as Jupyter writes it: a final newline
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = text
    for name, body in readme_sections(sorted(NOTEBOOKS.glob("*.ipynb"))).items():
        new = replace_section(new, name, body)
    if new != text:
        stale.append("README.md")
        if not args.check:
            readme.write_text(new)
    if args.check and stale:
        print("out of date (run python scripts/nbsync.py):", ", ".join(stale))
        return 1
    print(
        ("checked" if args.check else "synced"), len(list(NOTEBOOKS.glob("*.ipynb"))), "notebooks"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
