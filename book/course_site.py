"""The course website: its parts, its landing page, and a small Sphinx extension.

Nothing here is typed per chapter. The parts of the table of contents are the folders of
``notebooks/`` that hold notebooks (the chapters, then ``solutions/``, then the Chinese edition
``zh/``, then any other folder), each listing the notebooks it holds, so a new notebook appears
on the site without a configuration edit. The landing page is written from README.md (its title
and opening paragraphs) and from the code that writes the README's chapter and results tables
(``scripts/nbsync.py``, ``scripts/results_table.py``). The launch links come from
``scripts/nbsync.py`` too, so the site's Binder and Colab links are the notebooks' own.

The extension (``extensions = ["course_site"]`` in ``book/conf.py``):

- takes the launch badges off the top of each notebook page (the page's launch menu replaces them,
  and its image lives on a remote host that an offline site cannot load), and points links to
  repository files that are no page (README.zh.md, say) at the repository host;
- fails the build (a warning under ``-W``) on any other remote image: the site must work offline;
- adds per notebook page a launch menu (Binder, Colab, Kaggle, SageMaker Studio Lab) and a source menu (the notebook on the
  repository host, the repository);
- gives every page of the Chinese edition ``lang="zh-CN"`` and every link between pages of two
  languages the ``lang`` of the page it points to;
- copies MathJax 3 from the ``django-static-mathjax`` package into ``_static/mathjax``, so math is
  typeset with no network at build or view time;
- copies the course's Chinese font (``d2lcnn/fonts``, a subset of Noto Sans CJK SC covering every
  wide character of the site: ``scripts/cjk_font.py``) into ``_static/fonts``, which
  ``_static/course.css`` serves as the web font for Chinese text: a machine without a CJK font
  shows the Chinese edition and the sidebar's Chinese captions, not empty boxes.
"""

from __future__ import annotations

import json
import posixpath
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import nbsync  # noqa: E402
import results_table  # noqa: E402

#: Known folders of ``notebooks/``: (folder, part caption), in table-of-contents order. Any other
#: folder holding notebooks becomes a part too, after these, captioned by its name.
KNOWN_PARTS = [
    ("", "Chapters"),
    ("solutions", "Solutions"),
    ("zh", "中文版 (Chinese edition)"),
    ("zh/solutions", "中文版：习题解答 (Chinese edition: solutions)"),
]
#: ``lang`` of the pages of notebooks in a folder of this name (at any depth under ``notebooks/``).
LANGUAGES = {"zh": "zh-CN"}
DEFAULT_LANGUAGE = "en"
#: The folder the staged notebooks live in, inside the Sphinx source folder (as in the repository).
NOTEBOOK_DIR = "notebooks"
#: Where the launch menu's and source menu's links point for a branch.
BRANCH = "main"
#: What of MathJax 3's ``es5`` folder the site ships: the combined component the pages load, and
#: the folders it loads from lazily: fonts, and the menu's accessibility parts (explorer, speech).
#: The ``-full`` component holds every TeX extension, so none is loaded from ``input/``.
MATHJAX_COMPONENT = "tex-chtml-full.js"
MATHJAX_FOLDERS = ["output/chtml/fonts/woff-v2", "a11y", "sre", "ui"]
#: The Chinese web font: d2lcnn's bundled subset, served from ``_static/fonts`` (course.css).
CJK_FONT = ROOT / "d2lcnn" / "fonts" / "NotoSansCJKsc-d2lcnn-subset.otf"

REMOTE = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)
MD_IMAGE = re.compile(r"!\[([^\]]*)\]\((https?://[^)\s]+)\)")
# [text](target), text may hold one level of brackets ([![badge](img)](target)); group 1 is "!"
# for an image, which stays as it is (a relative image is the site's own file)
MD_LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)\)")


@dataclass
class Part:
    """One part of the table of contents: a folder of ``notebooks/`` and its notebooks."""

    folder: str  # relative to notebooks/, "" for the top level
    caption: str
    language: str
    notebooks: list[PurePosixPath] = field(default_factory=list)  # relative to notebooks/

    def docnames(self) -> list[str]:
        """The Sphinx document names of the part's pages, in order."""
        return [f"{NOTEBOOK_DIR}/{nb.with_suffix('')}" for nb in self.notebooks]


def language_of(notebook: PurePosixPath | str) -> str:
    """The ``lang`` of a notebook, from its folders under ``notebooks/`` (``zh/``,
    ``solutions/zh/``: Chinese)."""
    for folder in PurePosixPath(notebook).parent.parts:
        if folder in LANGUAGES:
            return LANGUAGES[folder]
    return DEFAULT_LANGUAGE


def discover_parts(notebooks: Path) -> list[Part]:
    """The parts of the site, from the notebooks present under ``notebooks``."""
    if not notebooks.is_dir():
        raise SystemExit(f"no notebook folder {notebooks}: give the folder of the notebooks")
    by_folder: dict[str, list[PurePosixPath]] = {}
    for path in sorted(notebooks.rglob("*.ipynb")):
        rel = PurePosixPath(path.relative_to(notebooks).as_posix())
        if any(p.startswith((".", "_")) for p in rel.parts):
            continue  # .ipynb_checkpoints and the like
        by_folder.setdefault(
            str(rel.parent) if rel.parent != PurePosixPath(".") else "", []
        ).append(rel)
    if "" not in by_folder:
        raise SystemExit(f"no chapter notebook (*.ipynb) in {notebooks}")
    known = dict(KNOWN_PARTS)
    order = [f for f, _ in KNOWN_PARTS] + sorted(set(by_folder) - set(known))
    return [
        Part(f, known.get(f, f.replace("/", ": ").replace("_", " ").capitalize()),
             language_of(f"{f}/x.ipynb"), by_folder[f])
        for f in order if f in by_folder
    ]  # fmt: skip


def readme_title(readme: Path) -> str:
    """The README's first ``# `` heading."""
    match = re.search(r"^# (.+)$", readme.read_text(encoding="utf-8"), re.M)
    if not match:
        raise SystemExit(f"{readme} has no '# Title' line for the site's title")
    return match.group(1).strip()


def readme_intro(readme: Path) -> str:
    """The README's opening paragraphs: after its badges, before its first ``## `` section."""
    text = readme.read_text(encoding="utf-8")
    start = text.find("<!-- badges:end -->")
    start = text.index("\n", start) + 1 if start >= 0 else text.index("\n") + 1
    end = text.find("\n## ", start)
    return text[start : end if end >= 0 else len(text)].strip()


def site_links(markdown: str, base: str) -> str:
    """Markdown with relative links to repository files that are no page of the site (README.md,
    CONTRIBUTING.md, ...) pointed at the repository host; ``base`` is the Markdown's folder,
    relative to the repository root. Links to notebooks stay (Sphinx links the pages; a missing
    one fails the build), and so do links to nothing (they fail the build too)."""

    def link(m: re.Match[str]) -> str:
        bang, text, target = m.groups()
        if bang or REMOTE.match(target) or target.startswith(("#", "mailto:")):
            return m.group(0)
        path = unquote(target.split("#", 1)[0])
        resolved = posixpath.normpath(posixpath.join(base, path))
        if resolved.startswith(f"{NOTEBOOK_DIR}/") and resolved.endswith(".ipynb"):
            return m.group(0)
        if resolved.startswith("..") or not (ROOT / resolved).exists():
            return m.group(0)
        kind = "tree" if (ROOT / resolved).is_dir() else "blob"
        rest = target[len(target.split("#", 1)[0]) :]
        return f"[{text}]({nbsync.repo_url()}/{kind}/{BRANCH}/{resolved}{rest})"

    return MD_LINK.sub(link, markdown)


def for_the_site(markdown: str, base: str = "") -> str:
    """README Markdown made fit for an offline page of the site: remote images (badges) become
    their alt text, and links to repository files point at the repository host."""
    return site_links(MD_IMAGE.sub(lambda m: m.group(1), markdown), base)


def landing_page(notebooks: Path, readme: Path) -> str:
    """The Markdown (MyST) of the site's landing page, with the hidden toctrees of every part."""
    parts = discover_parts(notebooks)
    chapters = sorted(notebooks.glob("*.ipynb"))
    start = chapters[0].name
    lines = [
        f"# {readme_title(readme)}",
        "",
        readme_intro(readme),
        "",
        f"Read the course here, or run it: every chapter opens on "
        f"[Binder]({nbsync.binder_url(start)}) (JupyterLab with everything installed), on "
        f"[Colab]({nbsync.colab_url(start)}), [Kaggle]({nbsync.kaggle_url(start)}) and "
        f"[SageMaker Studio Lab]({nbsync.studiolab_url(start)}) from the rocket menu at the top "
        "of its page. "
        f"The source is on [GitHub]({nbsync.repo_url()}).",
        "",
        "## Chapters",
        "",
        nbsync.readme_sections(chapters)["chapters"],
        "",
    ]
    for part in parts[1:]:
        lines += [f"## {part.caption}", ""]
        if part.folder == "zh":  # README.zh.md's table, from the code that writes it
            lines += [
                nbsync.readme_zh_sections([notebooks / n for n in part.notebooks])["chapters"],
                "",
            ]
            continue
        for nb in part.notebooks:
            title = nbsync.title(nbformat.read(notebooks / nb, as_version=4))
            lines.append(f"- [{title}]({NOTEBOOK_DIR}/{nb})")
        lines.append("")
    lines += [
        "## Results",
        "",
        "The stored main run of each training chapter (`scripts/results_table.py`):",
        "",
        results_table.table(chapters),
        "",
    ]
    for part in parts:
        lines += ["```{toctree}", ":hidden:", f":caption: {part.caption}", ""]
        lines += part.docnames()
        lines += ["```", ""]
    return for_the_site("\n".join(lines))


# --- the Sphinx extension ------------------------------------------------------------------


def notebook_of(docname: str) -> str | None:
    """The notebook path relative to ``notebooks/`` of a page, or None for other pages."""
    prefix = NOTEBOOK_DIR + "/"
    return docname[len(prefix) :] + ".ipynb" if docname.startswith(prefix) else None


def page_language(docname: str) -> str:
    """The ``lang`` of a page: its notebook's, or the site's for the other pages."""
    nb = notebook_of(docname)
    return language_of(nb) if nb else DEFAULT_LANGUAGE


def source_url(notebook: str) -> str:
    """The notebook's page on the repository host."""
    return f"{nbsync.repo_url()}/blob/{BRANCH}/{NOTEBOOK_DIR}/{notebook}"


def prepare_notebook(app: Any, docname: str, source: list[str]) -> None:
    """``source-read``: take the launch badges (as ``scripts/nbsync.py`` writes them) off the top of
    the notebook's first Markdown cell (the page's launch menu replaces it), and point links to
    repository files that are no page (``../../README.zh.md``) at the repository host."""
    notebook = notebook_of(docname)
    if notebook is None:
        return
    base = posixpath.dirname(f"{NOTEBOOK_DIR}/{notebook}")
    nb = json.loads(source[0])
    first = True
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            if first:
                text, first = nbsync.BADGE_RE.sub("", text, count=1), False
            cell["source"] = site_links(text, base)
    source[0] = json.dumps(nb)


def check_remote_images(app: Any, doctree: Any) -> None:
    """``doctree-read``: a warning (an error under ``-W``) for an image on a remote host."""
    from docutils import nodes
    from sphinx.util import logging

    logger = logging.getLogger(__name__)
    for node in doctree.findall(nodes.image):
        if REMOTE.match(node.get("uri", "")):
            logger.warning(
                "remote image %s: the site must work offline; put the file in the repository "
                "and link it by a relative path", node["uri"], location=node
            )  # fmt: skip
    for node in doctree.findall(nodes.raw):
        for src in re.findall(r"<img\b[^>]*\bsrc=[\"']([a-z]+://[^\"']+)", node.astext(), re.I):
            logger.warning(
                "remote image %s (raw HTML): the site must work offline", src, location=node
            )


#: The launch menu of a notebook page: (text, tooltip, icon, button label, address of a notebook)
LAUNCH_MENU = [
    ("Binder", "Run on Binder (JupyterLab)", "_static/images/logo_binder.svg", "launch-binder",
     nbsync.binder_url),
    ("Colab", "Run on Google Colab", "_static/images/logo_colab.png", "launch-colab",
     nbsync.colab_url),
    ("Kaggle", "Run on Kaggle", "fab fa-kaggle", "launch-kaggle", nbsync.kaggle_url),
    ("Studio Lab", "Run on SageMaker Studio Lab", "fas fa-flask", "launch-studiolab",
     nbsync.studiolab_url),
]  # fmt: skip


def launch_buttons(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """``html-page-context``: the page's language, and for a notebook page its launch menu
    (Binder, Colab, Kaggle, Studio Lab: ``scripts/nbsync.py``'s links) and source menu."""
    context["language"] = page_language(pagename)
    notebook = notebook_of(pagename)
    buttons = context.get("header_buttons")
    if notebook is None or buttons is None:
        return
    launch = {
        "type": "group",
        "tooltip": "Run this chapter",
        "icon": "fas fa-rocket",
        "label": "launch-buttons",
        "buttons": [
            {"type": "link", "text": text, "tooltip": tooltip, "icon": icon, "label": label,
             "url": url(notebook)}
            for text, tooltip, icon, label, url in LAUNCH_MENU
        ],
    }  # fmt: skip
    source = {
        "type": "group",
        "tooltip": "Source",
        "icon": "fab fa-github",
        "label": "source-buttons",
        "buttons": [
            {"type": "link", "text": "Notebook source", "tooltip": "This notebook on GitHub",
             "icon": "fas fa-code", "label": "notebook-source", "url": source_url(notebook)},
            {"type": "link", "text": "Repository", "tooltip": "The course repository",
             "icon": "fab fa-github", "label": "repository", "url": nbsync.repo_url()},
        ],
    }  # fmt: skip
    buttons[0:0] = [launch, source]


ANCHOR = re.compile(r"<a\b([^>]*?)\bhref=\"([^\"]*)\"([^>]*)>")


def mark_link_languages(html: str, pagename: str, docnames: set[str]) -> str:
    """Give each link to a page of another language than ``pagename``'s that page's ``lang``."""
    here = page_language(pagename)
    base = posixpath.dirname(pagename)

    def mark(m: re.Match[str]) -> str:
        before, href, after = m.groups()
        path = href.split("#", 1)[0]
        if "lang=" in before + after or not path.endswith(".html") or REMOTE.match(path):
            return m.group(0)
        target = posixpath.normpath(posixpath.join(base, path))[: -len(".html")]
        if target not in docnames or page_language(target) == here:
            return m.group(0)
        return f'<a{before}href="{href}" lang="{page_language(target)}"{after}>'

    return ANCHOR.sub(mark, html)


def finish(app: Any, exception: Exception | None) -> None:
    """``build-finished``: mark cross-language links, ship MathJax and the Chinese web font."""
    if exception is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    docnames = set(app.env.found_docs)
    for page in outdir.rglob("*.html"):  # the pages, and search.html, genindex.html
        pagename = page.relative_to(outdir).with_suffix("").as_posix()
        if pagename.startswith("_"):
            continue  # _static, _sources
        html = page.read_text(encoding="utf-8")
        marked = mark_link_languages(html, pagename, docnames)
        if marked != html:
            page.write_text(marked, encoding="utf-8")
    copy_mathjax(outdir / "_static" / "mathjax")
    fonts = outdir / "_static" / "fonts"
    fonts.mkdir(parents=True, exist_ok=True)
    shutil.copy2(CJK_FONT, fonts / CJK_FONT.name)
    shutil.copy2(CJK_FONT.parent / "OFL.txt", fonts / "OFL.txt")


def mathjax_source() -> Path:
    """MathJax 3's ``es5`` folder, as the ``django-static-mathjax`` package installs it."""
    try:
        import mathjax  # django-static-mathjax: MathJax 3 as static files, no Django needed
    except ImportError as err:
        raise SystemExit(
            "MathJax is missing: pip install -r requirements-site.txt (or make site)"
        ) from err
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (es5 / MATHJAX_COMPONENT).is_file():
        raise SystemExit(f"{es5 / MATHJAX_COMPONENT} not found: reinstall django-static-mathjax")
    return es5


def copy_mathjax(dest: Path) -> None:
    es5 = mathjax_source()
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(es5 / MATHJAX_COMPONENT, dest / MATHJAX_COMPONENT)
    for folder in MATHJAX_FOLDERS:
        shutil.copytree(es5 / folder, dest / folder, dirs_exist_ok=True)


def setup(app: Any) -> dict[str, Any]:
    app.connect("source-read", prepare_notebook)
    app.connect("doctree-read", check_remote_images)
    app.connect("html-page-context", launch_buttons, priority=502)  # after the theme's buttons
    app.connect("build-finished", finish)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
