"""Build the course website from the notebooks and their stored outputs (``make site``).

    python book/build_site.py                      # -> build/book/html/index.html
    python book/build_site.py --notebooks DIR --out DIR

No notebook is executed. The Sphinx source folder is staged under ``build/book/src``: a copy of
``notebooks/`` and a landing page written from README.md and the notebooks present
(``book/course_site.py``). Sphinx then runs with warnings as errors (``-W --keep-going -n``), so
a broken cross-reference, a missing or remote image or an unknown directive fails the build;
warnings name the staged copy (``build/book/src/notebooks/...``), which mirrors ``notebooks/``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import course_site  # noqa: E402

ROOT = course_site.ROOT
WORK = ROOT / "build" / "book"


def stage(notebooks: Path, readme: Path, src: Path) -> list[course_site.Part]:
    """A fresh Sphinx source folder: ``src/notebooks`` (a copy) and ``src/index.md``."""
    parts = course_site.discover_parts(notebooks)
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(
        notebooks, src / course_site.NOTEBOOK_DIR,
        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"),
    )  # fmt: skip
    (src / "index.md").write_text(course_site.landing_page(notebooks, readme), encoding="utf-8")
    return parts


def build(notebooks: Path, readme: Path, out: Path, work: Path) -> int:
    """Stage and build; Sphinx's exit status (0: built without a warning)."""
    from sphinx.cmd.build import build_main

    start = time.monotonic()
    parts = stage(notebooks, readme, work / "src")
    if out.exists() and any(out.iterdir()) and not (out / ".buildinfo").exists():
        raise SystemExit(f"{out} is not empty and holds no Sphinx build: choose another --out")
    for old in (out, work / "doctrees"):
        if old.exists():
            shutil.rmtree(old)  # a fresh build: every page read, every warning seen
    status = build_main(
        ["-b", "html", "-W", "--keep-going", "-n", "-q", "-c", str(HERE),
         "-d", str(work / "doctrees"), str(work / "src"), str(out)]
    )  # fmt: skip
    if status == 0:
        pages = sum(len(p.notebooks) for p in parts) + 1
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
        print(
            f"site: {pages} pages ({', '.join(f'{p.caption}: {len(p.notebooks)}' for p in parts)}"
            f", landing: 1), {size:.1f} MB in {out}, built in {time.monotonic() - start:.0f} s"
        )
    return status


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--out", type=Path, default=WORK / "html", help="the HTML site")
    parser.add_argument("--work", type=Path, default=WORK, help="staged sources, doctrees")
    args = parser.parse_args()
    return build(args.notebooks.resolve(), args.readme.resolve(), args.out.resolve(),
                 args.work.resolve())  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
