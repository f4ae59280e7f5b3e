"""JupyterLab in a real browser: start ``jupyter lab`` with a token, drive headless Chromium,
run every cell of the start-here notebook and one chapter (quick mode), and check that no cell
shows an error and that the figures rendered. Screenshots go to ``test-artifacts/``.

Needs Debian's ``chromium`` (``apt install chromium``) and the playwright Python package (its own
browser download is not used). Without Chromium the test is skipped, unless
``D2LCNN_REQUIRE_BROWSER=1`` (as in CI), where a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import CHROMIUM, launch_chromium

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["00_start_here.ipynb", "02_pooling.ipynb"]
ARTIFACTS = ROOT / "test-artifacts"

if CHROMIUM is None:
    if os.environ.get("D2LCNN_REQUIRE_BROWSER") == "1":
        pytest.fail("Chromium is required (D2LCNN_REQUIRE_BROWSER=1): apt install chromium")
    pytest.skip("Chromium not found (apt install chromium)", allow_module_level=True)

playwright = pytest.importorskip("playwright.sync_api")


def server_port(runtime: Path, server: subprocess.Popen, log: Path) -> int:
    """The port a ``--port=0`` server bound, read from the info file it writes once listening
    (``jpserver-PID.json`` in its own runtime folder: no port is picked here and reused)."""
    deadline = time.monotonic() + 90
    while True:
        for info in runtime.glob("jpserver-*.json"):
            try:
                return int(json.loads(info.read_text())["port"])
            except (ValueError, KeyError):  # being written
                pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("jupyter lab did not start:\n" + log.read_text())
        time.sleep(0.2)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a loopback port it picks, token on, serving copies of the
    notebooks."""
    root = tmp_path_factory.mktemp("lab")
    for name in NOTEBOOKS:  # copies without outputs: every output must come from this run
        nb = json.loads((ROOT / "notebooks" / name).read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                cell["outputs"], cell["execution_count"] = [], None
        (root / name).write_text(json.dumps(nb))
    state = tmp_path_factory.mktemp("lab-state")
    token = secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
           "--port=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--ServerApp.port_retries=0", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
           "jupyterlab.NeverCheckForUpdate",
           # workspaces and settings of this run only: not the user's, nor a parallel run's
           f"--LabApp.workspaces_dir={state / 'workspaces'}",
           f"--LabApp.user_settings_dir={state / 'settings'}"]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI runs as root; the token stays on
    env = dict(os.environ, D2LCNN_QUICK="1", JUPYTER_RUNTIME_DIR=str(state / "runtime"))
    env.pop("MPLBACKEND", None)  # the kernel's inline backend draws the figures
    log = open(root / "server.log", "w")  # noqa: SIM115
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                              start_new_session=True)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{server_port(state / 'runtime', server, root / 'server.log')}"
        with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=30) as r:
            assert r.status == 200
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=30) as r:  # no token
                pytest.fail(f"the server answered without a token ({r.status})")
        except urllib.error.HTTPError as err:
            assert err.code == 403  # authentication is on
        yield url, token, root
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def run_all_cells(page, url: str, token: str, name: str) -> None:
    page.goto(f"{url}/lab/workspaces/{name[:2]}/tree/{name}?token={token}&reset")  # one tab
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    accept = page.locator(".jp-Dialog .jp-mod-accept")  # "Select Kernel", if JupyterLab asks
    try:
        accept.wait_for(timeout=5_000)
        accept.click()
    except playwright.TimeoutError:
        pass
    idle = page.locator(".jp-StatusBar-Widget").get_by_text("| Idle")
    idle.wait_for(timeout=90_000)  # the kernel has started
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
        }""",
        timeout=300_000,
    )
    idle.wait_for(timeout=60_000)
    dirty = page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty")  # unsaved changes
    dirty.wait_for(timeout=10_000)
    page.keyboard.press("Control+s")
    dirty.wait_for(state="detached", timeout=30_000)  # saved


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_jupyterlab(lab, name):
    url, token, root = lab
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            try:
                run_all_cells(page, url, token, name)
            except Exception:
                page.screenshot(path=str(ARTIFACTS / f"jupyterlab-{name}-failed.png"))
                raise
            no_news = page.locator("button:text-is('No')")
            if no_news.count():
                no_news.first.click()  # JupyterLab's "get notified about news?" toast
            figure = page.locator(".jp-RenderedImage img").first
            figure.scroll_into_view_if_needed()  # JupyterLab renders cells lazily around the view
            figure.wait_for(state="visible", timeout=30_000)
            page.wait_for_function(  # every image in view decoded, for the screenshot
                "() => [...document.querySelectorAll('.jp-RenderedImage img')]"
                ".every(i => i.complete)", timeout=30_000)  # fmt: skip
            page.screenshot(path=str(ARTIFACTS / f"jupyterlab-{name}.png"), full_page=False)
            errors = page.locator(
                ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
            )
            tracebacks = [t for t in errors.all_inner_texts() if "Traceback" in t or "Error" in t]
            assert not tracebacks, tracebacks[0][:2000]
            assert page.locator(".jp-RenderedImage img").count() >= 1, "no figure rendered"
        finally:
            browser.close()
    saved = json.loads((root / name).read_text())
    outputs = [o for c in saved["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
