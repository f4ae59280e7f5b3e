"""pytest configuration shared by the unit tests and the notebook validation (nbval).

Notebooks run in quick mode unless D2LCNN_QUICK is already set, so plain ``pytest`` stays fast.
stderr is not compared: it carries progress bars and the quick-mode banner, which differ
between a stored full run and a quick run by design.
"""

import os

os.environ.setdefault("D2LCNN_QUICK", "1")


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr",)
