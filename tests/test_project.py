"""Project consistency: environment.yml names pyproject's dependencies; notebooks are
stored without outputs and listed in the table of contents."""

import json
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted |= {_name(r) for r in extra}
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = lines.index("  - pip:")
    pip_items = [ln.strip()[2:] for ln in lines[start + 1 :] if ln.startswith("      - ")]
    listed = {_name(r) for r in pip_items if not r.startswith("-e")}
    assert listed == wanted
    assert "-e .[book,test]" in pip_items
    assert "python=3.11" in (ROOT / "environment.yml").read_text()
    # the jupyter-book bound is the same in both places
    book = [r for r in project["optional-dependencies"]["book"] if _name(r) == "jupyter-book"]
    assert book and any(book[0].replace(" ", "") == r.replace(" ", "") for r in pip_items)


def test_notebooks_are_stored_without_outputs_and_listed_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for nb in notebooks:
        cells = json.loads(nb.read_text())["cells"]
        assert not any(c.get("outputs") for c in cells if c["cell_type"] == "code"), nb.name
        assert f"notebooks/{nb.stem}" in toc, f"{nb.name} missing from _toc.yml"
