"""pytest configuration shared by the unit tests and the notebook validation (nbval).

Notebooks run in quick mode unless D2LCNN_QUICK is already set, so plain ``pytest`` stays fast.
stderr is not compared: it carries progress bars and the quick-mode banner, which differ
between a stored run and a quick run by design.

Two tiers (README, "Tests"), chosen by marker:

* ``make test`` runs ``-m "not full"``: lint, the twin check, the unit tests and every English
  chapter under nbval -- what a contributor runs on every change;
* ``make test-all`` (CI) runs everything. Marked ``full`` here, by where they live: the Chinese
  and the solution notebooks, the browser, website and 2 GB memory-limit tests, the tests that
  launch torchrun, the d2l.ai sections that train at 96x96 and 224x224, and ``stress`` tests.

With pytest-xdist (``pytest -n 2``) every file runs whole on one worker: xdist's default,
``--dist load``, is turned into ``--dist loadfile`` here. A notebook's cells share one kernel and
must run in order on it, and a file's module fixtures (the JupyterLab server of
``tests/test_browser.py``) then start once.
"""

import os
from pathlib import Path

import pytest

os.environ.setdefault("D2LCNN_QUICK", "1")

ROOT = Path(__file__).resolve().parent
FULL_FOLDERS = (ROOT / "notebooks" / "zh", ROOT / "notebooks" / "solutions")
FULL_FILES = {"test_browser.py", "test_site.py", "test_memory_limit.py"}
TORCHRUN_FIXTURES = {"runs"}  # tests/test_distributed.py: two real processes under torchrun
# d2l.ai's sections that train its networks at 96x96 and 224x224: the English chapters under
# nbval train the same networks in make test; these check the class API's code of the book
BOOK_SECTIONS_AT_LARGE_INPUTS = {"test_alexnet", "test_vgg", "test_nin", "test_googlenet",
                                 "test_resnet", "test_densenet"}  # fmt: skip


def _share_the_cores() -> None:
    """Under pytest-xdist, each worker (and every notebook kernel it starts, which inherits the
    environment) gets its share of the cores: with ``-n 2`` on 2 cores, two workers of 2 threads
    each made chapter 10's deep-network cell take 467 s instead of 57 s (oversubscribed threads
    wait on each other). An ``OMP_NUM_THREADS`` set by the user is kept."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(workers)))


_share_the_cores()


def pytest_configure(config):
    if getattr(config.option, "dist", "no") == "load":  # xdist's default for -n
        config.option.dist = "loadfile"
    config.addinivalue_line("markers", "full: in make test-all (CI) only, not in make test")
    config.addinivalue_line("markers", "stress: repeats a flaky scenario many times (full tier)")
    config.addinivalue_line("markers", "notebook: a cell of a notebook under nbval")
    config.addinivalue_line("markers", "cuda: runs on a CUDA GPU, skipped without one "
                            "(scripts/gpu_session.sh cuda selects them: pytest -m cuda)")


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr",)


def _is_full(item) -> bool:
    path = Path(str(item.fspath)).resolve()
    if any(folder in path.parents for folder in FULL_FOLDERS) or path.name in FULL_FILES:
        return True
    if item.get_closest_marker("stress"):
        return True
    if path.name == "test_d2l_book.py" and item.name in BOOK_SECTIONS_AT_LARGE_INPUTS:
        return True
    fixtures = set(getattr(item, "fixturenames", ()))
    return path.name == "test_distributed.py" and (
        bool(fixtures & TORCHRUN_FIXTURES) or "torchrun" in item.name or "rendezvous" in item.name
    )


def pytest_collection_modifyitems(config, items):
    for item in items:
        if str(item.fspath).endswith(".ipynb"):
            item.add_marker(pytest.mark.notebook)
        if _is_full(item):
            item.add_marker(pytest.mark.full)
