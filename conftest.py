"""pytest configuration shared by the unit tests and the notebook validation (nbval).

Notebooks run in quick mode unless D2LCNN_QUICK is already set, so plain ``pytest`` stays fast.
stderr is not compared: it carries progress bars and the quick-mode banner, which differ
between a stored run and a quick run by design.

With pytest-xdist (``pytest -n 2``) every file runs whole on one worker: xdist's default,
``--dist load``, is turned into ``--dist loadfile`` here. A notebook's cells share one kernel and
must run in order on it, and a file's module fixtures (the JupyterLab server of
``tests/test_browser.py``) then start once.
"""

import os

os.environ.setdefault("D2LCNN_QUICK", "1")


def pytest_configure(config):
    if getattr(config.option, "dist", "no") == "load":  # xdist's default for -n
        config.option.dist = "loadfile"


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr",)
