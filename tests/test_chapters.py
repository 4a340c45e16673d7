"""Every chapter module follows the one chapter protocol, at both scales: the settings round-
trip through JSON and say their scale and seed offset, the configurations are unique and
JSON too, and the settings a chapter names in GRID exist."""

import importlib
import json

import pytest

from minipruner.book.chapters import CHAPTERS
from minipruner.experiments.protocol import Chapter


@pytest.mark.parametrize("scale", ["quick", "full"])
@pytest.mark.parametrize("name", list(CHAPTERS))
def test_every_chapter_follows_the_protocol(name, scale):
    chapter = importlib.import_module(CHAPTERS[name])
    assert isinstance(chapter, Chapter)
    assert isinstance(chapter.VERSION, int) and chapter.TITLE
    settings = chapter.settings(scale)
    assert json.loads(json.dumps(settings)) == settings
    assert settings["scale"] == scale and "seed_offset" in settings
    configs = chapter.configurations(settings)
    texts = [json.dumps(c, sort_keys=True) for c in configs]
    assert configs and len(set(texts)) == len(texts)
    assert all(json.loads(t) == c for t, c in zip(texts, configs, strict=True))
    assert set(getattr(chapter, "GRID", ())) <= set(settings)


@pytest.mark.parametrize("name", list(CHAPTERS))
def test_adding_a_seed_keeps_every_other_result_key(name):
    # GRID settings only enumerate configurations: a new seed adds configurations and leaves
    # the keys (and so the stored results) of the others as they were
    from minipruner.experiments.records import keyed as _keyed

    chapter = importlib.import_module(CHAPTERS[name])
    assert "seeds" in getattr(chapter, "GRID", ()), f"{name} has no GRID with its seeds"
    settings = chapter.settings("quick")
    more = {**settings, "seeds": [*settings["seeds"], 999]}
    before = {json.dumps(c, sort_keys=True): c for c in chapter.configurations(settings)}
    after = {json.dumps(c, sort_keys=True): c for c in chapter.configurations(more)}
    assert set(before) <= set(after) and all(
        c.get("seed") == 999 for k, c in after.items() if k not in before
    )
    for c in before.values():
        assert _keyed(chapter, settings, c) == _keyed(chapter, more, c)


@pytest.mark.parametrize("name", list(CHAPTERS))
def test_every_chapter_takes_its_methods_from_the_method_table(name):
    # each chapter names its methods by their ids in minipruner.methods, so every method the
    # book compares is one entry of the table; the settings list exactly those methods
    from minipruner.methods import METHODS

    chapter = importlib.import_module(CHAPTERS[name])
    ids = list(getattr(chapter, "METHODS", ()))
    assert ids, f"{name} names no method of the method table (its METHODS: a tuple of ids)"
    assert set(ids) <= set(METHODS)
    settings = chapter.settings("quick")
    assert set(settings.get("methods", ids)) <= set(ids)  # results keyed by id, never a label
    # a chapter uses methods derived up to it, unless it names one derived later in AHEAD
    # (chapter 6, every method of the book on one network, takes chapter 7's layer-wise ones)
    ahead = {i for i in ids if METHODS[i].chapter > int(name[:2])}
    assert ahead == set(getattr(chapter, "AHEAD", ())), (
        f"{name} uses {ahead} before they are derived"
    )
