"""Project consistency: environment.yml names pyproject's dependencies; notebooks are
stored without outputs and listed in the table of contents."""

import json
import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

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
    # every dependency is pinned to the version of constraints.txt, inside pyproject's range
    pins = _constraints()
    ranges = {_name(r): r for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        ranges.update({_name(r): r for r in extra})
    for item in pip_items:
        if item.startswith("-e"):
            continue
        name, _, version = item.partition("==")
        assert version, f"environment.yml does not pin {item}"
        assert pins.get(_name(name)) == version, (item, pins.get(_name(name)))
        assert Requirement(ranges[_name(name)]).specifier.contains(version), (item, ranges)


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep, f"constraints.txt: {line!r} is not name==version"
            pins[_name(name)] = version.strip()
    return pins


def test_constraints_pin_every_dependency_and_the_makefile_installs_with_them():
    pins = _constraints()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted |= {_name(r) for r in extra}
    assert wanted <= set(pins), f"not pinned: {sorted(wanted - set(pins))}"
    makefile = (ROOT / "Makefile").read_text()
    assert makefile.count("pip install -c constraints.txt") == 2


def test_installed_versions_are_the_pinned_ones():
    # the environment the tests run in is the one the constraints describe
    pins = _constraints()
    for name in ("torch", "torchvision", "numpy", "scipy", "jupyter-book", "myst-nb", "nbval"):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        assert installed.split("+")[0] == pins[name], (name, installed, pins[name])


# A measured number typed into a notebook's Markdown goes stale on the next machine: numbers
# come from the results through MyST-NB's glue. Decimal numbers may appear only in math,
# code, roles (glue, cite, numref), headings and section references (§1.6).
_EXEMPT = re.compile(
    r"\$\$.*?\$\$|\$[^$\n]+\$|```.*?```|`[^`\n]*`|\{[\w:-]+\}`[^`]*`|^#+ [^\n]*$"
    r"|§+\s*\d+(?:\.\d+)*(?:\s*[-–]\s*\d+(?:\.\d+)*)?",
    re.S | re.M,
)
_DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?!\w|\.\d)")


def typed_decimals(markdown: str) -> list[str]:
    """Decimal numbers in ``markdown`` outside math, code, roles and headings."""
    return _DECIMAL.findall(_EXEMPT.sub(" ", markdown))


def test_typed_decimals_are_found_outside_math_code_and_roles():
    text = "## 1.5 Global\nacc 93.7 here, $0.9$, `0.5`, {glue:text}`ch1_x:.1f`, §1.6 and 3.14."
    assert typed_decimals(text) == ["93.7", "3.14"]


def test_no_measured_decimal_is_typed_into_a_notebook_markdown_cell():
    found = {}
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(nb.read_text())["cells"]):
            if cell["cell_type"] == "markdown":
                hits = typed_decimals("".join(cell["source"]))
                if hits:
                    found[f"{nb.name} cell {i}"] = hits
    assert not found, f"decimal numbers typed into Markdown (glue them): {found}"


def test_notebooks_are_stored_without_outputs_and_listed_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for nb in notebooks:
        cells = json.loads(nb.read_text())["cells"]
        assert not any(c.get("outputs") for c in cells if c["cell_type"] == "code"), nb.name
        assert f"notebooks/{nb.stem}" in toc, f"{nb.name} missing from _toc.yml"


def test_live_notes_link_the_wheel_that_make_book_builds():
    """Each chapter's "Run this chapter live" note links the wheel of the package's current
    version (the Colab route), at the path where ``make book`` writes it."""
    version = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M)[1]
    wheel = f"minipruner-{version}-py3-none-any.whl"
    assert "_build/wheel/minipruner-$(VERSION)-py3-none-any.whl" in (ROOT / "Makefile").read_text()
    for nb in sorted((ROOT / "notebooks").glob("0[1-6]_*.ipynb")):
        notes = [
            "".join(c["source"])
            for c in json.loads(nb.read_text())["cells"]
            if c["cell_type"] == "markdown" and "Run this chapter live" in "".join(c["source"])
        ]
        assert len(notes) == 1, nb.name
        assert f"{{download}}`{wheel} <../_build/wheel/{wheel}>`" in notes[0], nb.name
        assert f"%pip install {wheel}" in notes[0], nb.name


def test_every_bibliography_entry_has_the_field_its_type_needs():
    # sphinxcontrib-bibtex warns (and make book, run with -W, fails) on an @inproceedings
    # without a booktitle or an @article without a journal
    text = (ROOT / "book" / "references.bib").read_text()
    needed = {"inproceedings": "booktitle", "article": "journal", "book": "publisher"}
    entries = re.findall(r"@(\w+)\{([^,]+),(.*?)\n\}", text, re.S)
    assert entries
    missing = [
        (key, needed[kind.lower()])
        for kind, key, body in entries
        if kind.lower() in needed and not re.search(rf"\b{needed[kind.lower()]}\s*=", body)
    ]
    assert not missing, f"bibliography entries without the field their type needs: {missing}"
