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
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NOTEBOOKS = ["00_start_here.ipynb", "02_pooling.ipynb"]
ARTIFACTS = ROOT / "test-artifacts"

if CHROMIUM is None:
    if os.environ.get("D2LCNN_REQUIRE_BROWSER") == "1":
        pytest.fail("Chromium is required (D2LCNN_REQUIRE_BROWSER=1): apt install chromium")
    pytest.skip("Chromium not found (apt install chromium)", allow_module_level=True)

playwright = pytest.importorskip("playwright.sync_api")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a free loopback port, token on, serving copies of the notebooks."""
    root = tmp_path_factory.mktemp("lab")
    for name in NOTEBOOKS:  # copies without outputs: every output must come from this run
        nb = json.loads((ROOT / "notebooks" / name).read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                cell["outputs"], cell["execution_count"] = [], None
        (root / name).write_text(json.dumps(nb))
    state = tmp_path_factory.mktemp("lab-state")
    port, token = free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
           f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--ServerApp.port_retries=0", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
           "jupyterlab.NeverCheckForUpdate",
           # workspaces and settings of this run only: not the user's, nor a parallel run's
           f"--LabApp.workspaces_dir={state / 'workspaces'}",
           f"--LabApp.user_settings_dir={state / 'settings'}"]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI runs as root; the token stays on
    env = dict(os.environ, D2LCNN_QUICK="1")
    env.pop("MPLBACKEND", None)  # the kernel's inline backend draws the figures
    log = open(root / "server.log", "w")  # noqa: SIM115
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                              start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "jupyter lab did not start:\n" + (root / "server.log").read_text()
                )
            time.sleep(0.5)
        with urllib.request.urlopen(f"{url}/api/status", timeout=5) as r:  # no token
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
    page.keyboard.press("Control+s")
    page.wait_for_timeout(1500)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_jupyterlab(lab, name):
    url, token, root = lab
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
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
            page.locator(".jp-RenderedImage").first.scroll_into_view_if_needed()
            page.wait_for_timeout(2000)  # JupyterLab renders cells lazily around the viewport
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
