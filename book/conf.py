"""Sphinx configuration of the course website (``make site``; see ``book/build_site.py``).

Sphinx + MyST-NB + sphinx-book-theme, the parts Jupyter Book 1 is made of, used directly: the
notebooks are read with their stored outputs and never executed, math is typeset by a MathJax
copy shipped with the site, and nothing is fetched at build or view time.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import course_site  # noqa: E402

project = "d2lcnn"
author = "the d2lcnn authors"
copyright = "the d2lcnn authors, MIT License"
language = "en"
# the README's title before its colon ("d2lcnn"): the sidebar's and the browser tab's name
html_title = course_site.readme_title(course_site.ROOT / "README.md").split(":")[0]

extensions = ["myst_nb", "course_site"]
root_doc = "index"
include_patterns = ["index.md", f"{course_site.NOTEBOOK_DIR}/**.ipynb"]
exclude_patterns = ["**/.ipynb_checkpoints"]

# MyST-NB: stored outputs only; Jupyter's Markdown math ($...$, $$...$$, also inline, and bare
# \begin{align}...); links to a heading of the same or another notebook by its anchor
nb_execution_mode = "off"
nb_merge_streams = True
nb_ipywidgets_js: dict = {}  # no widget manager from a CDN (no notebook stores widgets)
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_dmath_double_inline = True
myst_heading_anchors = 3

# MathJax 3 from the site itself (course_site copies it into _static/mathjax)
mathjax_path = f"mathjax/{course_site.MATHJAX_COMPONENT}"

html_theme = "sphinx_book_theme"
html_theme_options = {
    "home_page_in_toc": False,  # the title above the table of contents links the landing page
    "show_navbar_depth": 1,
    "show_toc_level": 2,
    "use_download_button": True,  # the .ipynb (from _sources) and print-to-PDF
    "use_fullscreen_button": True,
    "navigation_with_keys": False,
}
html_static_path = ["_static"]  # book/_static
html_css_files = ["course.css"]
html_show_sourcelink = False
html_last_updated_fmt = None
