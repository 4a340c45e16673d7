"""The browser test's check for pages that show a failed execution (no browser needed)."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "check_site", Path(__file__).parent / "browser" / "check_site.py"
)
check_site = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_site)

CLEAN = """<html><body><div class="cell_output docutils container">
<div class="output stream highlight-myst-ansi notranslate"><pre>dense: 93.1 %</pre></div>
<p>The error of the pruned network is 4.1 %. A ValueError is raised for bad input.</p>
</div></body></html>"""

TRACEBACK = """<html><body><div class="cell_output docutils container">
<div class="output traceback highlight-ipythontb notranslate"><div class="highlight"><pre>
<span class="gt">---------------------------------------------------------------------------</span>
<span class="ne">AssertionError</span>: global pruning within 1 point
</pre></div></div></div></body></html>"""

PLAIN = """<div class="output stream"><pre>Traceback (most recent call last):
  File "x.py", line 1
AssertionError: boom</pre></div>"""


def test_a_clean_page_has_no_error_output():
    assert check_site.error_outputs(CLEAN) == []


def test_a_page_with_a_traceback_fails():
    assert check_site.error_outputs(TRACEBACK)
    assert check_site.error_outputs(PLAIN)
