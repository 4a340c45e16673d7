"""``minipruner.book.chapters.CHAPTERS`` is the only list of the chapters: the command line prints
it, the Makefile and the GPU workflow loop over that, the full-scale estimate reads each
chapter's declared cost, and explorers are an optional slot of the chapter protocol. The last
test reads every other file of the repository that could list the chapters and checks that
none does."""

import json
import re
import subprocess
import types
from pathlib import Path

import pytest

from minipruner.__main__ import main
from minipruner.book import explorers
from minipruner.book.chapters import CHAPTERS, chapter_explorer, chapter_module
from minipruner.experiments.protocol import (
    config_trainings,
    shared_run_trainings,
    shared_runs,
    training,
)

ROOT = Path(__file__).resolve().parents[1]


def test_list_prints_the_chapters_one_a_line_and_as_json(capsys):
    assert main(["list", "--names"]) == 0
    assert capsys.readouterr().out.split() == list(CHAPTERS)
    assert main(["list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == list(CHAPTERS)


def test_list_with_explorer_keeps_the_chapters_that_name_one(capsys):
    assert main(["list", "--names", "--with-explorer"]) == 0
    listed = capsys.readouterr().out.split()
    assert listed == [n for n in CHAPTERS if hasattr(chapter_module(n), "EXPLORER")]
    assert listed  # the book has explorers
    for name in CHAPTERS:
        found = chapter_explorer(name)
        assert (found is not None) == (name in listed)
        if found is not None:
            assert found is getattr(explorers, chapter_module(name).EXPLORER)


def test_an_explorer_slot_naming_nothing_is_a_clear_error():
    module = types.ModuleType("fake")
    module.EXPLORER = "no_such_explorer"
    with pytest.raises(ValueError, match="no_such_explorer"):
        chapter_explorer(module)
    assert chapter_explorer(types.ModuleType("bare")) is None


def test_training_checks_its_step_count():
    t = training("mlpnet", "mnist", {"epochs": 2}, steps=10)
    assert t == {
        "model": "mlpnet",
        "dataset": "mnist",
        "model_kwargs": None,
        "train": {"epochs": 2},
        "steps": 10,
    }
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="steps"):
            training("mlpnet", "mnist", {}, steps=bad)


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_chapter_declares_its_full_scale_cost(name):
    module = chapter_module(name)
    for scale in ("quick", "full"):
        settings = module.settings(scale, seed_offset=0)
        declared = [config_trainings(module, settings, c) for c in module.configurations(settings)]
        runs = shared_runs(module, settings)
        declared += [shared_run_trainings(module, settings, r) for r in runs]
        for t in (t for ts in declared for t in ts):
            assert set(t) == {"model", "dataset", "model_kwargs", "train", "steps"}


def test_a_chapter_without_a_cost_declaration_is_a_clear_error():
    module = types.ModuleType("bare")
    with pytest.raises(ValueError, match="config_trainings"):
        config_trainings(module, {}, {})
    with pytest.raises(ValueError, match="shared_run_trainings"):
        shared_run_trainings(module, {}, {"call": "x"})


# Files that may name the chapters: the list itself, the tests (each tests given chapters), the
# notebooks and prose (each page is one chapter), the committed calibrations (one per chapter).
NOT_SCANNED = ("minipruner/book/chapters/__init__.py", "tests/", "notebooks/", "book/", "_toc.yml")
SCANNED_SUFFIXES = (".py", ".yml", ".yaml", ".sh", ".toml", ".cfg", ".txt", "Makefile", "run")
NUMBER_LOOP = re.compile(r"for\s+\w+\s+in\s+(\d+\s+){2,}")  # a shell loop over 1 2 3 ...
NUMBER_LIST = re.compile(r"\[\s*\d+\s*,\s*\d+\s*,\s*\d+")  # a YAML/JSON matrix [1, 2, 3...]


def scanned_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return [
        ROOT / f
        for f in out.stdout.split()
        if f.endswith(SCANNED_SUFFIXES) and not f.startswith(NOT_SCANNED) and (ROOT / f).exists()
    ]


def test_no_other_file_lists_the_chapters_by_hand():
    """A file that names two or more chapters (``01_magnitude``, ...) or loops over chapter
    numbers keeps a second list; a chapter module naming itself, one example name in a help
    text, or a cross-reference to a chapter module's function is not a list."""
    files = scanned_files()
    assert any(f.name == "Makefile" for f in files)
    assert any(f.name == "gpu-full-scale.yml" for f in files)
    offenders = []
    for path in files:
        text = path.read_text(errors="replace")
        named = {name for name in CHAPTERS if name in text}
        if len(named) >= 2:
            offenders.append(f"{path.relative_to(ROOT)} names {sorted(named)}")
        if path.suffix in (".py",):
            continue  # Python lists hold numbers of many kinds; the shell and YAML ones do not
        for pattern in (NUMBER_LOOP, NUMBER_LIST):
            if pattern.search(text):
                offenders.append(f"{path.relative_to(ROOT)}: {pattern.search(text).group(0)!r}")
    assert not offenders, offenders


def test_the_book_contents_have_a_page_per_chapter_in_order():
    """``_toc.yml`` (Jupyter Book's table of contents, which cannot loop, and holds pages that
    are not chapters, such as the toolkit) lists every chapter's notebook, in the order of
    ``CHAPTERS``."""
    toc = (ROOT / "_toc.yml").read_text()
    pages = re.findall(r"notebooks/(\d\d_\w+)", toc)
    assert [p for p in pages if p in CHAPTERS] == list(CHAPTERS)
