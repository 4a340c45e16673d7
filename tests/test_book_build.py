"""The book build fails loudly: with the project's own _config.yml, a notebook that raises
makes ``jupyter-book build`` (what ``make book`` runs) exit non-zero, while the same book
without it builds. Builds a two-page book in a temporary folder (about 10 s)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"


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
    return folder


def _build(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(JUPYTER_BOOK), "build", str(folder)],
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
