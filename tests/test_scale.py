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
