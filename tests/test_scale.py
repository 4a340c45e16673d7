"""MINIPRUNER_SCALE: quick by default, full on request, anything else a clear error."""

import pytest

import minipruner as mp


def test_default_scale_is_quick(monkeypatch):
    monkeypatch.delenv("MINIPRUNER_SCALE", raising=False)
    assert mp.get_scale() == "quick"


def test_environment_variable_and_argument(monkeypatch):
    monkeypatch.setenv("MINIPRUNER_SCALE", "full")
    assert mp.get_scale() == "full"
    assert mp.get_scale("quick") == "quick"
    assert mp.by_scale(quick=1, full=2) == 2


def test_unknown_scale_lists_valid_ones(monkeypatch):
    monkeypatch.setenv("MINIPRUNER_SCALE", "huge")
    with pytest.raises(ValueError, match="quick, full"):
        mp.get_scale()
    with pytest.raises(ValueError, match="'medium'"):
        mp.get_scale("medium")


def test_seed_offset_shifts_every_chapters_seeds(monkeypatch):
    from minipruner.results import CHAPTERS, chapter_module

    monkeypatch.delenv(mp.scale.SEED_OFFSET_ENV, raising=False)
    base = {name: chapter_module(name).settings("quick")["seeds"] for name in CHAPTERS}
    monkeypatch.setenv(mp.scale.SEED_OFFSET_ENV, "100")
    for name in CHAPTERS:
        settings = chapter_module(name).settings("quick")
        assert settings["seeds"] == [s + 100 for s in base[name]], name
        assert settings["seed_offset"] == 100, name


def test_seed_offset_errors(monkeypatch):
    monkeypatch.setenv(mp.scale.SEED_OFFSET_ENV, "ten")
    with pytest.raises(ValueError, match="non-negative integer"):
        mp.scale.seed_offset()
    with pytest.raises(ValueError, match="non-negative integer"):
        mp.scale.shifted_seeds([0, 1], -5)
    assert mp.scale.shifted_seeds([0, 1], 7) == [7, 8]
