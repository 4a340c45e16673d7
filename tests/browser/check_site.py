"""Browser test of the built site: every page loads in headless Chromium without script
errors, its math is rendered by MathJax, each chapter shows its figures, numbered, with every
figure reference resolved, no Markdown table is left as text, no page shows a traceback or
an error output (a chapter whose execution failed), and a screenshot of each chapter page is
written to ``_build/screenshots``.

Run with ``make site-test`` (after ``make book``); needs Chromium (``apt-get install chromium``).
The site is served on localhost; Chromium is started with its background networking off, so
a page that needed the network would show up as missing math or figures.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=15000",
]
# figures (images and explorers) per chapter page: at least 3 unless named here
MIN_FIGURES = {"notebooks/00_toolkit": 2, "notebooks/06_comparison": 2}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the site without logging every request (the page summary is the output)."""

    def log_message(self, format: str, *args: object) -> None:
        pass


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    sys.exit("Chromium not found: apt-get install chromium")


def run(browser: str, url: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [browser, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0"]
        return subprocess.run([*cmd, *args, url], capture_output=True, text=True, timeout=180)


# What a failed cell leaves in a page: MyST-NB's traceback/error output blocks, IPython's
# traceback text, or a raised exception's name at the start of an output line.
_ERROR_MARKS = (
    re.compile(r'class="[^"]*\boutput (?:traceback|error)\b'),
    re.compile(r"Traceback \(most recent call last\)"),
    re.compile(r"^-{20,}\s*$\s*^\w*(?:Error|Exception)\b", re.M),
    re.compile(r"<span[^>]*>\s*\w*(?:Error|Exception)\s*</span>\s*:"),
)


def error_outputs(html: str) -> list[str]:
    """The marks of failed execution found in a page's HTML (empty for a clean page)."""
    found = []
    for mark in _ERROR_MARKS:
        hit = mark.search(html)
        if hit:
            found.append(hit.group(0).strip()[:80])
    return found


def pages() -> list[str]:
    toc = (ROOT / "_toc.yml").read_text()
    return re.findall(r"(?:root|file):\s*(\S+)", toc)


def main() -> int:
    if not (SITE / "index.html").exists():
        sys.exit(f"no built site at {SITE}: run make book first")
    browser = chromium()
    handler = functools.partial(QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    failures = []
    for page in pages():
        url = f"{base}/{page}.html"
        dom = run(browser, url, "--dump-dom")
        errors = [
            line
            for line in dom.stderr.splitlines()
            if "Uncaught" in line or ("CONSOLE" in line and "Error" in line)
        ]
        html = dom.stdout
        math_source = html.count('class="math notranslate nohighlight"')
        math_rendered = html.count("<mjx-container")
        figures = len(re.findall(r'<img[^>]+src="[^"]*_images/', html))
        figures += html.count('class="minipruner-explorer"')
        want = MIN_FIGURES.get(page, 3 if page.startswith("notebooks/") else 0)
        numbered = html.count('class="caption-number"')
        unresolved = html.count("xref std std-numref")  # a {numref} that found no figure
        raw_tables = len(re.findall(r"<p>\|[^<]*\|\s*\n?\|", html))  # Markdown left as text
        problems = []
        errors_shown = error_outputs(html)
        if errors_shown:
            problems.append(f"shows a traceback or error output: {errors_shown}")
        if dom.returncode != 0 or "<body" not in html:
            problems.append(f"did not load (exit {dom.returncode})")
        if errors:
            problems.append(f"script errors: {errors[:3]}")
        if math_source and math_rendered == 0:
            problems.append(f"{math_source} math elements, none rendered by MathJax")
        if figures < want:
            problems.append(f"{figures} figures, expected at least {want}")
        if page.startswith("notebooks/") and numbered < 2:
            problems.append(f"{numbered} numbered figures, expected at least 2")
        if raw_tables:
            problems.append(f"{raw_tables} Markdown tables shown as text, not rendered")
        if unresolved:
            problems.append(f"{unresolved} figure references that resolve to nothing")
        if page.startswith("notebooks/"):
            shot = SHOTS / f"{Path(page).name}.png"
            run(browser, url, "--window-size=1280,2400", f"--screenshot={shot}")
            if not shot.exists() or shot.stat().st_size < 10_000:
                problems.append("no screenshot")
        status = "ok" if not problems else "FAIL: " + "; ".join(problems)
        print(
            f"{page:32s} math {math_rendered:4d}/{math_source:<4d} figures {figures:3d} "
            f"numbered {numbered:2d}  {status}"
        )
        if problems:
            failures.append(page)
    server.shutdown()
    print(f"screenshots in {SHOTS}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
