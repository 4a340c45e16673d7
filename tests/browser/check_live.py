"""Browser test of a live explorer: JupyterLab on localhost runs one chapter's notebook in
headless Chromium, one slider of its explorer is moved, and the figure must change with no
error output anywhere in the notebook. Screenshots go to ``_build/screenshots``.

Run with ``make site-test`` (or ``python tests/browser/check_live.py [notebook]``, default
``01_magnitude``); needs the ``browser`` extra (JupyterLab, Playwright) and Chromium
(``apt-get install chromium``). The notebook is copied to a temporary folder, so the
repository's copy stays without outputs; its kernel reads and writes the repository's
``results/`` (a chapter without stored results computes them first, which takes minutes).
The kernel is started by the Jupyter server like a reader's, without ``MINIPRUNER_WIDGETS``,
so the test also checks that JupyterLab gets the live explorer by itself.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "_build" / "screenshots"
RUN_TIMEOUT = 900  # seconds for the whole notebook (a chapter without stored results computes)
CHANGE_TIMEOUT = 180  # seconds for the new state to be computed and drawn after the slider moves
ERRORS = '[data-mime-type="application/vnd.jupyter.error"], .minipruner-live-error'


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    sys.exit("Chromium not found: apt-get install chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(folder: Path, port: int, token: str, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "MINIPRUNER_WIDGETS"}
    env.update(MINIPRUNER_RESULTS=str(ROOT / "results"), OMP_WAIT_POLICY="PASSIVE")
    env["JUPYTER_CONFIG_DIR"] = str(folder / ".jupyter")  # no user settings leak in
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--ServerApp.root_dir={folder}",
        f"--IdentityProvider.token={token}",
        "--LabApp.expose_app_in_browser=True",
        f"--LabApp.workspaces_dir={folder / '.workspaces'}",
        f"--LabApp.user_settings_dir={folder / '.settings'}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI run as root
    return subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_for_server(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"jupyter lab did not answer at {url} within {timeout} s")


def main(notebook: str = "01_magnitude") -> int:
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    port, token = free_port(), secrets.token_hex(16)
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shutil.copy(ROOT / "notebooks" / f"{notebook}.ipynb", folder / f"{notebook}.ipynb")
        log = SHOTS / "live-jupyterlab.log"
        lab = start_lab(folder, port, token, log)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_server(f"{base}/api/status?token={token}", lab)
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"]
                )
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{base}/lab/tree/{notebook}.ipynb?token={token}")
                page.wait_for_function(
                    "() => window.jupyterapp && document.querySelector('.jp-Notebook')",
                    timeout=120_000,
                )
                page.wait_for_function(
                    "() => { const k = window.jupyterapp.shell.currentWidget?.sessionContext;"
                    " return k && k.session && k.session.kernel &&"
                    " k.session.kernel.status === 'idle'; }",
                    timeout=120_000,
                )
                started = time.time()
                page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
                explorer = page.locator(".minipruner-live-explorer")
                explorer.wait_for(timeout=RUN_TIMEOUT * 1000)
                image = explorer.locator("img").first
                page.wait_for_function(
                    "() => { const k = window.jupyterapp.shell.currentWidget.sessionContext;"
                    " return k.session.kernel.status === 'idle' &&"
                    " ![...document.querySelectorAll('.jp-InputPrompt')]"
                    ".some(p => p.textContent.includes('[*]')); }",
                    timeout=RUN_TIMEOUT * 1000,
                    polling=1000,
                )
                ran = time.time() - started
                image.scroll_into_view_if_needed()
                src_before = image.get_attribute("src")
                shot_before = image.screenshot()
                explorer.screenshot(path=str(SHOTS / f"live-{notebook}-before.png"))
                handle = explorer.locator(".noUi-handle").first  # the first slider
                readout = explorer.locator(".widget-readout").first
                at_start = readout.inner_text()
                handle.focus()
                handle.press("ArrowRight")
                page.wait_for_timeout(300)
                if readout.inner_text() == at_start:  # it starts at its last value
                    handle.press("ArrowLeft")
                # A new state may take a while (chapter 4 computes a Fisher): poll until the
                # figure drawn on the page differs (a new src alone can be the same picture,
                # when JupyterLab re-renders the widget while the state computes).
                deadline = time.time() + CHANGE_TIMEOUT
                shot_after = image.screenshot()
                while shot_after == shot_before and time.time() < deadline:
                    page.wait_for_timeout(1000)
                    shot_after = image.screenshot()
                if image.get_attribute("src") == src_before:
                    problems.append("the figure did not change after moving the slider")
                elif shot_after == shot_before:
                    problems.append(
                        f"the figure looks the same {CHANGE_TIMEOUT} s after moving the slider"
                    )
                explorer.screenshot(path=str(SHOTS / f"live-{notebook}-after.png"))
                page.screenshot(path=str(SHOTS / f"live-{notebook}-page.png"))
                errors = page.locator(ERRORS)
                if errors.count():
                    problems.append(f"error output: {errors.first.inner_text()[:200]!r}")
                label = explorer.locator(".widget-readout").first.inner_text()
                print(f"{notebook}: ran in {ran:.0f} s; slider moved to {label!r}")
                browser.close()
        finally:
            lab.terminate()
            try:
                lab.wait(timeout=30)
            except subprocess.TimeoutExpired:
                lab.kill()
    status = "ok" if not problems else "FAIL: " + "; ".join(problems)
    print(f"live explorer of {notebook}: {status}; screenshots in {SHOTS}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
