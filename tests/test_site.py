"""The course website (``make site``, ``book/``).

Three layers:

- the table of contents and the landing page, from the files present (no Sphinx needed);
- small sites built from notebooks made here (Sphinx): the parts, the languages, the launch links,
  and that a remote image or an unknown directive fails the build;
- the course's own site, as ``make site`` built it into ``build/book/html``, opened page by page
  in headless Chromium from a local HTTP server: rendered math, loaded figures, launch links to
  the page's own notebook, no broken internal link, no request leaving the machine. One
  screenshot per kind of page (landing, chapter, Chinese chapter) goes to ``test-artifacts/``.

The browser layer does not build the site (CI's ``.ci/run`` runs ``make site`` first). Without a
built site, or with one built from other notebooks than those present, it is skipped, unless
``D2LCNN_REQUIRE_SITE=1`` (as in CI), where that is a failure; without Sphinx the build layer
is skipped in the same way. Chromium as in ``tests/test_browser.py`` (Debian's, skipped when
missing unless ``D2LCNN_REQUIRE_BROWSER=1``).
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book"))
import build_site  # noqa: E402
import course_site  # noqa: E402
import nbsync  # noqa: E402  (course_site put scripts/ on the path)
from helpers import CHROMIUM, launch_chromium  # noqa: E402

SITE = build_site.WORK / "html"
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "test-artifacts"
REQUIRE_SITE = os.environ.get("D2LCNN_REQUIRE_SITE") == "1"
REQUIRE_BROWSER = os.environ.get("D2LCNN_REQUIRE_BROWSER") == "1"
# myst-parser 5 and sphinx-book-theme 1.4 still read Sphinx 9's deprecated ``.app`` attributes:
# Python warnings about their own code (40 of them in the small builds), no Sphinx warnings
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*is deprecated. Check CHANGES for Sphinx API modifications:PendingDeprecationWarning"
)
PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="


def unavailable(reason: str) -> None:
    """Skip, or fail where CI requires the site (``D2LCNN_REQUIRE_SITE=1``)."""
    if REQUIRE_SITE:
        pytest.fail(f"{reason} (D2LCNN_REQUIRE_SITE=1)")
    pytest.skip(reason)


def notebook(
    folder: Path, rel: str, title: str, markdown: str = "", outputs: list | None = None
) -> None:
    """Write ``folder/rel``: a badge and title cell as nbsync writes them, then a code cell."""
    nb = nbformat.v4.new_notebook()
    path = folder / rel
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"{nbsync.launch_badges(rel)}\n\n# {title}\n\n{markdown}"),
        nbformat.v4.new_code_cell("print(1 + 1)", outputs=outputs or []),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


# ---- the table of contents and the landing page -------------------------------------------


def test_parts_come_from_the_files_present(tmp_path):
    for rel in [
        "01_b.ipynb",
        "00_a.ipynb",
        "appendix_a.ipynb",
        "zh/00_a.ipynb",
        "extra/x.ipynb",
        "solutions/01_b.ipynb",
        "solutions/zh/01_b.ipynb",
        ".ipynb_checkpoints/00_a.ipynb",
    ]:
        notebook(tmp_path, rel, rel)  # fmt: skip
    parts = course_site.discover_parts(tmp_path)
    assert [p.folder for p in parts] == ["", "solutions", "zh", "extra", "solutions/zh"]
    assert [str(n) for n in parts[0].notebooks] == ["00_a.ipynb", "01_b.ipynb", "appendix_a.ipynb"]
    assert [p.language for p in parts] == ["en", "en", "zh-CN", "en", "zh-CN"]
    assert parts[2].docnames() == ["notebooks/zh/00_a"]
    assert parts[3].caption == "Extra"


def test_parts_of_the_course_cover_every_notebook():
    parts = course_site.discover_parts(NOTEBOOKS)
    listed = {f"notebooks/{n}" for p in parts for n in p.notebooks}
    present = {p.relative_to(ROOT).as_posix() for p in NOTEBOOKS.rglob("*.ipynb")}
    present = {p for p in present if "/." not in p}
    assert listed == present
    assert parts[0].caption == "Chapters"


def test_no_notebook_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no chapter notebook"):
        course_site.discover_parts(tmp_path)


def test_language_of_a_notebook():
    assert course_site.language_of("01_convolutions.ipynb") == "en"
    assert course_site.language_of("zh/01_convolutions.ipynb") == "zh-CN"
    assert course_site.language_of("solutions/zh/01.ipynb") == "zh-CN"
    assert course_site.page_language("index") == "en"
    assert course_site.notebook_of("notebooks/zh/03_lenet") == "zh/03_lenet.ipynb"


def test_landing_page_has_the_readme_tables():
    page = course_site.landing_page(NOTEBOOKS, ROOT / "README.md")
    chapters = sorted(NOTEBOOKS.glob("*.ipynb"))
    table = nbsync.readme_sections(chapters)["chapters"]
    assert course_site.for_the_site(table) in page  # the README's table, badges as text
    import results_table

    assert course_site.for_the_site(results_table.table(chapters)) in page
    assert page.startswith(f"# {course_site.readme_title(ROOT / 'README.md')}\n")
    assert "colab-badge.svg" not in page and "badge_logo.svg" not in page  # no remote image
    for part in course_site.discover_parts(NOTEBOOKS):
        assert f":caption: {part.caption}\n\n" + "\n".join(part.docnames()) in page


def test_links_to_repository_files_point_at_the_host():
    repo = nbsync.repo_url()
    md = "[a](../../README.zh.md) [b](03_lenet.ipynb#x) [c](https://d2l.ai) [d](#h) [e](nope.md)"
    out = course_site.site_links(md, "notebooks/zh")
    assert f"[a]({repo}/blob/main/README.zh.md)" in out
    assert "[b](03_lenet.ipynb#x)" in out  # a page: Sphinx links it
    assert "[c](https://d2l.ai)" in out and "[d](#h)" in out
    assert "[e](nope.md)" in out  # a broken link stays broken: the build fails on it
    assert f"({repo}/tree/main/d2lcnn)" in course_site.site_links("[p](d2lcnn)", "")
    image = "![a figure](../d2lcnn/__init__.py)"  # an image stays the site's own file
    assert course_site.site_links(image, "notebooks") == image
    linked = "[![b](x.png)](../README.md)"
    assert (
        course_site.site_links(linked, "notebooks") == f"[![b](x.png)]({repo}/blob/main/README.md)"
    )
    img = "[![Open In Colab](https://x/badge.svg)](https://colab/y)"
    assert course_site.for_the_site(img) == "[Open In Colab](https://colab/y)"


def test_cross_language_links_get_the_target_language():
    docs = {"index", "notebooks/01_a", "notebooks/zh/01_a"}
    html = '<a class="r" href="zh/01_a.html#s">第1章</a> <a href="02.html">x</a>'
    out = course_site.mark_link_languages(html, "notebooks/01_a", docs)
    assert '<a class="r" href="zh/01_a.html#s" lang="zh-CN">' in out
    assert '<a href="02.html">' in out
    back = course_site.mark_link_languages(
        '<a href="../01_a.html">1</a>', "notebooks/zh/01_a", docs
    )
    assert 'lang="en"' in back


# ---- small sites built here ------------------------------------------------------------------


@pytest.fixture(scope="module")
def sphinx():
    try:
        import myst_nb  # noqa: F401
        import sphinx_book_theme  # noqa: F401
    except ImportError:
        unavailable(
            "the site's packages are missing: make site (pip install -r requirements-site.txt)"
        )


def build(tmp_path: Path, notebooks: Path) -> tuple[int, Path]:
    out = tmp_path / "out" / "html"
    status = build_site.build(notebooks, ROOT / "README.md", out, tmp_path / "work")
    return status, out


@pytest.fixture(scope="module")
def small_site(sphinx, tmp_path_factory):
    """A site of an English chapter (math, a stored figure), its Chinese twin and a solution."""
    tmp = tmp_path_factory.mktemp("small-site")
    nbs = tmp / "notebooks"
    figure = [
        nbformat.v4.new_output(
            "display_data", data={"image/png": PNG_1PX, "text/plain": "<Figure>"}
        )
    ]
    notebook(
        nbs,
        "01_a.ipynb",
        "Chapter 1: A",
        "Math $\\frac{a}{b}$ and\n\n$$y = \\mathbf{W}x$$\n\n"
        "The [Chinese edition](zh/01_a.ipynb) and [the README](../README.md).",
        figure,
    )
    notebook(nbs, "zh/01_a.ipynb", "第1章：甲", "数学 $x^2$。[English](../01_a.ipynb)")
    notebook(nbs, "solutions/01_a.ipynb", "Solutions 1", "See [the chapter](../01_a.ipynb).")  # fmt: skip
    status, out = build(tmp, nbs)
    assert status == 0, "the small site did not build (warnings above)"
    return out


def test_small_site_parts_languages_and_launch_links(small_site):
    index = (small_site / "index.html").read_text()
    captions = re.findall(r'<span class="caption-text">([^<]*)</span>', index)
    assert captions == ["Chapters", "Solutions", "中文版 (Chinese edition)"]
    assert '<html lang="en"' in index
    zh = (small_site / "notebooks" / "zh" / "01_a.html").read_text()
    assert '<html lang="zh-CN"' in zh
    assert re.search(r'<a [^>]*href="\.\./01_a\.html"[^>]*lang="en"', zh)  # the English link
    en = (small_site / "notebooks" / "01_a.html").read_text()
    assert re.search(r'<a [^>]*href="zh/01_a\.html"[^>]*lang="zh-CN"', en)
    for name, url in [
        ("launch-colab", nbsync.colab_url("zh/01_a.ipynb")),
        ("launch-binder", nbsync.binder_url("zh/01_a.ipynb")),
        ("launch-kaggle", nbsync.kaggle_url("zh/01_a.ipynb")),
        ("launch-studiolab", nbsync.studiolab_url("zh/01_a.ipynb")),
        ("notebook-source", course_site.source_url("zh/01_a.ipynb")),
    ]:
        assert re.search(rf'<a href="{re.escape(url)}"[^>]*class="[^"]*btn-{name}', zh), name  # fmt: skip
    for (
        _,
        image,
        _,
    ) in nbsync.LAUNCHERS:  # the badges are off the page, the launch menu replaces them
        assert image not in en
    assert f'href="{nbsync.repo_url()}/blob/main/README.md"' in en
    assert '<span class="math notranslate nohighlight">' in en and "<img" in en
    assert (small_site / "_static" / "mathjax" / course_site.MATHJAX_COMPONENT).is_file()
    assert (small_site / "_static" / "mathjax" / "output/chtml/fonts/woff-v2").is_dir()
    assert (small_site / "_sources" / "notebooks" / "01_a.ipynb").is_file()  # the download


@pytest.mark.parametrize(
    "markdown, message",
    [("![fig](https://example.org/fig.png)", "remote image"),
     ("```{nosuchdirective}\n```", "nosuchdirective"),
     ("[gone](02_missing.ipynb)", "02_missing")],
    ids=["remote-image", "unknown-directive", "broken-link"],
)  # fmt: skip
def test_warnings_fail_the_build(sphinx, tmp_path, capsys, markdown, message):
    notebook(tmp_path / "nb", "01_a.ipynb", "Chapter 1: A", markdown)
    status, _ = build(tmp_path, tmp_path / "nb")
    assert status != 0
    assert message in capsys.readouterr().err


# ---- the course's site in a real browser ----------------------------------------------------


def course_pages() -> list[str]:
    """The notebook paths (relative to notebooks/) the course's site must have a page for."""
    return [str(n) for part in course_site.discover_parts(NOTEBOOKS) for n in part.notebooks]


def page_file(notebook: str) -> Path:
    return SITE / "notebooks" / PurePosixPath(notebook).with_suffix(".html")


@pytest.fixture(scope="module")
def site_url():
    """The built site on a free loopback port."""
    if not (SITE / "index.html").is_file():
        unavailable(f"no site in {SITE}: run make site")
    staged = build_site.WORK / "src" / "notebooks"  # what the site was built from
    stale = [n for n in course_pages() if not page_file(n).is_file()
             or not (staged / n).is_file() or (staged / n).read_bytes() != (NOTEBOOKS / n).read_bytes()]  # fmt: skip
    if stale:
        unavailable(f"the site was built from other notebooks ({', '.join(stale[:3])}): make site")
    handler = functools.partial(QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def browser(site_url):
    if CHROMIUM is None:
        if REQUIRE_BROWSER:
            pytest.fail("Chromium is required (D2LCNN_REQUIRE_BROWSER=1): apt install chromium")
        pytest.skip("Chromium not found (apt install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        chromium = launch_chromium(p)
        try:
            yield chromium
        finally:
            chromium.close()


@functools.cache
def fetch(url: str) -> tuple[int, frozenset[str]]:
    """HTTP status of a site URL and the ids (and names) its HTML defines."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body = r.read().decode("utf-8", "replace") if url.endswith((".html", "/")) else ""
            return r.status, frozenset(re.findall(r'\b(?:id|name)="([^"]+)"', body))
    except urllib.error.HTTPError as err:
        return err.code, frozenset()


RAW_TEX = [
    (re.compile(r"\$\$|\$[^$\n]{1,300}?\$"), "a $...$ pair"),
    (re.compile(r"\\[A-Za-z]{2,}"), "a TeX command"),
    (re.compile(r"\\[()\[\]]"), "a \\( \\[ delimiter"),
]

CHECK_JS = """() => {
  const article = document.querySelector('article.bd-article') || document.body;
  const prose = article.cloneNode(true);
  prose.querySelectorAll('pre, code, script, style, mjx-container, .highlight')
       .forEach(e => e.remove());
  const math = [...article.querySelectorAll('.math')];
  return {
    prose: prose.textContent,
    math: math.length,
    unrendered: math.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent),
    mathErrors: [...article.querySelectorAll('mjx-merror')].map(e => e.getAttribute('data-mjx-error')),
    images: [...document.images].map(i => ({src: i.src, ok: i.complete && i.naturalWidth > 0})),
    articleImages: article.querySelectorAll('img').length,
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    launch: Object.fromEntries(['launch-colab', 'launch-binder', 'launch-kaggle', 'launch-studiolab',
                                'notebook-source'].map(
      k => [k, [...document.querySelectorAll('a.btn-' + k)].map(a => a.getAttribute('href'))])),
    lang: document.documentElement.lang,
    prevNext: document.querySelectorAll('.prev-next-area a').length,
  };
}"""

SCREENSHOTS = {"index.html": "site-landing.png", "notebooks/01_convolutions.html": "site-chapter.png",
               "notebooks/zh/01_convolutions.html": "site-chapter-zh.png"}  # fmt: skip


def open_page(browser, site_url: str, path: str, screenshot: str | None = None) -> dict:
    """Open a page; everything the checks need, and the requests that went wrong. With
    ``screenshot``, a screenshot (of the first displayed equation's part of a chapter) too."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    outside, failed, errors = [], [], []

    def route(r):
        if r.request.url.startswith(site_url + "/"):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on(
        "response", lambda resp: resp.status >= 400 and failed.append(f"{resp.status} {resp.url}")
    )
    page.on("requestfailed", lambda req: req.url.startswith(site_url) and failed.append(req.url))
    page.on("pageerror", lambda err: errors.append(str(err)))
    try:
        page.goto(f"{site_url}/{path}", wait_until="load")
        page.evaluate(
            "() => window.MathJax && MathJax.startup ? MathJax.startup.promise.then(() => true) : false"
        )
        page.evaluate(
            """() => Promise.all([...document.images].map(i => { i.loading = 'eager';
                 return i.complete ? 0 : new Promise(r => { i.onload = i.onerror = r; }); }))"""
        )
        info = page.evaluate(CHECK_JS)
        if screenshot:
            ARTIFACTS.mkdir(exist_ok=True)
            first_math = page.locator("article div.math")
            if path != "index.html" and first_math.count():
                first_math.first.scroll_into_view_if_needed()
                page.mouse.wheel(0, -250)
                # wait until the scroll has come to rest (the same position for 5 frames; the
                # theme may scroll an inner element, so the window need not move at all)
                page.wait_for_function(
                    """() => { const y = window.scrollY, same = y === window.lastY;
                               window.lastY = y; window.still = same ? (window.still || 0) + 1 : 0;
                               return window.still >= 5; }""",
                    polling="raf", timeout=10_000,
                )  # fmt: skip
            page.screenshot(path=str(ARTIFACTS / screenshot))
    finally:
        page.close()
    info.update(outside=outside, failed=failed, errors=errors)
    return info


def check_common(info: dict, site_url: str, path: str) -> None:
    """What every page must satisfy: offline, no error, figures loaded, internal links whole."""
    assert not info["outside"], f"requests left the machine: {info['outside'][:5]}"
    assert not info["failed"], f"requests failed: {info['failed'][:5]}"
    assert not info["errors"], f"JavaScript errors: {info['errors'][:3]}"
    broken = [i["src"] for i in info["images"] if not i["ok"]]
    assert not broken, f"images not loaded: {broken[:5]}"
    for link in sorted(set(info["links"])):
        if not link.startswith(site_url + "/"):
            continue
        parts = urlsplit(link)
        status, ids = fetch(link.split("#", 1)[0])
        assert status == 200, f"{path}: broken link {link} ({status})"
        if parts.fragment:
            assert unquote(parts.fragment) in ids, f"{path}: no anchor #{parts.fragment} at {link}"


def test_landing_page_in_browser(browser, site_url):
    info = open_page(browser, site_url, "index.html")
    check_common(info, site_url, "index.html")
    assert info["lang"] == "en"
    pages = {urlsplit(link).path.lstrip("/") for link in info["links"]}
    for notebook in course_pages():  # the table of contents lists every notebook
        assert f"notebooks/{PurePosixPath(notebook).with_suffix('.html')}" in pages, notebook


@pytest.mark.parametrize("notebook", course_pages())
def test_chapter_page_in_browser(browser, site_url, notebook):
    path = f"notebooks/{PurePosixPath(notebook).with_suffix('.html')}"
    info = open_page(browser, site_url, path)
    check_common(info, site_url, path)
    assert info["lang"] == course_site.language_of(notebook)
    nb = nbformat.read(NOTEBOOKS / notebook, as_version=4)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    prose = re.sub(r"```.*?```|`[^`\n]*`", "", markdown, flags=re.S)  # code is no math
    if re.search(r"\$[^$\n]+\$", prose):
        assert info["math"] > 0, "the notebook has math, the page none"
    assert not info["unrendered"], f"math not typeset by MathJax: {info['unrendered'][:3]}"
    assert not info["mathErrors"], f"MathJax errors: {info['mathErrors'][:3]}"
    for pattern, what in RAW_TEX:
        match = pattern.search(info["prose"])
        assert not match, f"{what} left in the visible text: ...{match.group(0)[:80]}..."
    figures = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
                  for o in c.outputs)  # fmt: skip
    assert info["articleImages"] >= figures, "a stored figure is missing from the page"
    assert info["launch"] == {
        "launch-colab": [nbsync.colab_url(notebook)],
        "launch-binder": [nbsync.binder_url(notebook)],
        "launch-kaggle": [nbsync.kaggle_url(notebook)],
        "launch-studiolab": [nbsync.studiolab_url(notebook)],
        "notebook-source": [course_site.source_url(notebook)],
    }
    for url in info["launch"].values():
        assert url[0].endswith(f"notebooks/{notebook}")
    assert info["prevNext"] >= 1, "no previous/next link"


@pytest.mark.parametrize("path", list(SCREENSHOTS))
def test_screenshot_per_page_kind(browser, site_url, path):
    if not (SITE / path).is_file():
        pytest.skip(f"no {path} in this course (yet)")
    target = ARTIFACTS / SCREENSHOTS[path]
    target.unlink(missing_ok=True)
    check_common(open_page(browser, site_url, path, SCREENSHOTS[path]), site_url, path)
    assert target.stat().st_size > 10_000


def test_mathjax_is_the_sites_own(site_url):
    index = (SITE / "notebooks" / "01_convolutions.html").read_text()
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', index)
    assert any(s.endswith(f"_static/mathjax/{course_site.MATHJAX_COMPONENT}") for s in scripts)
    assert not [s for s in scripts if re.match(r"(https?:)?//", s)], "a script from elsewhere"
    assert fetch(f"{site_url}/_static/mathjax/{course_site.MATHJAX_COMPONENT}")[0] == 200


def _wide_text_characters(html: str) -> set[str]:
    """The wide (CJK) characters of a page's text and attributes (scripts and styles left out)."""
    import unicodedata

    text = re.sub(r"<(script|style)\b.*?</\1>", "", html, flags=re.S | re.I)
    return {
        ch for ch in text if unicodedata.east_asian_width(ch) in ("W", "F") and not ch.isspace()
    }


def test_the_sites_chinese_text_is_in_its_web_font(site_url):
    """Every wide character of every built page is in the font the site serves for Chinese text
    (a machine without a CJK font would otherwise show empty boxes), and the pages load it."""
    import cjk_font  # scripts/, on the path through course_site

    served = SITE / "_static" / "fonts" / course_site.CJK_FONT.name
    assert served.read_bytes() == course_site.CJK_FONT.read_bytes()
    css = (SITE / "_static" / "course.css").read_text()
    assert f'url("fonts/{course_site.CJK_FONT.name}")' in css and "--pst-font-family-base:" in css
    have = cjk_font.font_characters(served)
    missing: dict[str, str] = {}
    for page in SITE.rglob("*.html"):
        for ch in _wide_text_characters(page.read_text(encoding="utf-8")) - have:
            missing.setdefault(ch, page.relative_to(SITE).as_posix())
    assert not missing, f"not in the web font (run python scripts/cjk_font.py): {missing}"


def test_chinese_page_draws_with_the_web_font(browser, site_url):
    """In Chromium with no CJK font of its own (the test machine), a Chinese page's text is drawn
    with the site's web font: the face is loaded and covers the page's title."""
    page = browser.new_page()
    try:
        page.goto(f"{site_url}/notebooks/zh/01_convolutions.html", wait_until="load")
        title = page.evaluate("() => document.querySelector('article h1').textContent.trim()")
        result = page.evaluate(
            """async (title) => {
                 await document.fonts.load('16px "Noto Sans CJK SC d2lcnn"', title);
                 await document.fonts.ready;
                 const faces = [...document.fonts].filter(f => f.family.includes('d2lcnn'));
                 return {status: faces.map(f => f.status),
                         check: document.fonts.check('16px "Noto Sans CJK SC d2lcnn"', title),
                         family: getComputedStyle(document.querySelector('article h1')).fontFamily};
               }""",
            title,
        )  # fmt: skip
    finally:
        page.close()
    assert any(_wide_text_characters(title)), title
    assert result["status"] == ["loaded"], result
    assert result["check"] and "Noto Sans CJK SC d2lcnn" in result["family"], result
