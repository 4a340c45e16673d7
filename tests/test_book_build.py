"""The book build fails loudly: with the project's own _config.yml and the Makefile's flags,
a notebook that raises, or a glued number that cannot be formatted (a blank on the page),
makes ``jupyter-book build`` (what ``make book`` runs) exit non-zero, while the same book
without them builds. Builds small books in a temporary folder (about 15 s)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"
FLAGS = re.search(r"^JB_FLAGS\s*:=\s*(.*)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()


def _notebook(path: Path, code: str) -> None:
    cells = [
        {"cell_type": "markdown", "id": "title", "metadata": {}, "source": f"# {path.stem}"},
        {
            "cell_type": "code",
            "id": "code",
            "metadata": {},
            "source": code,
            "outputs": [],
            "execution_count": None,
        },
    ]
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb = {"cells": cells, "metadata": {"kernelspec": kernel}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


def _book(folder: Path, pages: list[str]) -> Path:
    folder.mkdir()
    shutil.copy(ROOT / "_config.yml", folder / "_config.yml")
    shutil.copytree(ROOT / "book" / "_ext", folder / "book" / "_ext")
    shutil.copy(ROOT / "book" / "references.bib", folder / "book" / "references.bib")
    (folder / "intro.md").write_text("# A test book\n")
    toc = "format: jb-book\nroot: intro\nchapters:\n" + "".join(f"  - file: {p}\n" for p in pages)
    (folder / "_toc.yml").write_text(toc)
    _notebook(folder / "good.ipynb", "from myst_nb import glue\nglue('x', 1.5, display=False)")
    _notebook(folder / "bad.ipynb", "assert 1 == 2, 'a claim that did not hold'")
    _notebook(
        folder / "badglue.ipynb",
        "import numpy as np\nfrom myst_nb import glue\nglue('y', np.float64(1.5), display=False)",
    )
    with open(folder / "badglue.ipynb") as f:
        nb = json.load(f)
    nb["cells"].append(
        {"cell_type": "markdown", "id": "use", "metadata": {}, "source": "y is {glue:text}`y:.1f`"}
    )
    (folder / "badglue.ipynb").write_text(json.dumps(nb))
    return folder


def _build(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(JUPYTER_BOOK), "build", str(folder), *FLAGS],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=folder,
    )


@pytest.mark.skipif(not JUPYTER_BOOK.exists(), reason="jupyter-book not installed beside python")
def test_a_failing_notebook_fails_the_book_build(tmp_path):
    good = _build(_book(tmp_path / "good", ["good"]))
    assert good.returncode == 0, good.stdout[-3000:] + good.stderr[-3000:]
    bad = _build(_book(tmp_path / "bad", ["good", "bad"]))
    assert bad.returncode != 0
    assert "a claim that did not hold" in bad.stdout + bad.stderr
    glue = _build(_book(tmp_path / "glue", ["good", "badglue"]))
    assert glue.returncode != 0
    assert "Failed to format" in glue.stdout + glue.stderr
