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
    from minipruner.book.chapters import CHAPTERS, chapter_module

    monkeypatch.delenv(mp.core.scale.SEED_OFFSET_ENV, raising=False)
    base = {name: chapter_module(name).settings("quick")["seeds"] for name in CHAPTERS}
    monkeypatch.setenv(mp.core.scale.SEED_OFFSET_ENV, "100")
    for name in CHAPTERS:
        settings = chapter_module(name).settings("quick")
        assert settings["seeds"] == [s + 100 for s in base[name]], name
        assert settings["seed_offset"] == 100, name


def test_seed_offset_errors(monkeypatch):
    monkeypatch.setenv(mp.core.scale.SEED_OFFSET_ENV, "ten")
    with pytest.raises(ValueError, match="non-negative integer"):
        mp.core.scale.seed_offset()
    with pytest.raises(ValueError, match="non-negative integer"):
        mp.core.scale.shifted_seeds([0, 1], -5)
    assert mp.core.scale.shifted_seeds([0, 1], 7) == [7, 8]


@pytest.mark.parametrize("scale", ["quick", "full"])
def test_an_explicit_seed_offset_is_the_variables_value_and_wins_over_it(monkeypatch, scale):
    # settings(scale, seed_offset=K) is what the variable set to K gives, and a given offset
    # wins over the variable; None (the default) reads it
    from minipruner.book.chapters import CHAPTERS, chapter_module

    for name in CHAPTERS:
        module = chapter_module(name)
        monkeypatch.setenv(mp.core.scale.SEED_OFFSET_ENV, "300")
        from_env = module.settings(scale)
        assert module.settings(scale, seed_offset=None) == from_env, name
        monkeypatch.setenv(mp.core.scale.SEED_OFFSET_ENV, "7")
        assert module.settings(scale, seed_offset=300) == from_env, name
        assert module.settings(scale, 0)["seed_offset"] == 0, name
        with pytest.raises(ValueError, match="non-negative integer"):
            module.settings(scale, seed_offset=-1)


def test_threads_sets_and_restores_torchs_thread_count():
    import torch

    before = torch.get_num_threads()
    with mp.threads(1) as n:
        assert n == torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), mp.threads(1):
        raise RuntimeError("the count is restored on the way out")
    assert torch.get_num_threads() == before
    with mp.threads(None) as n:
        assert n == before
    with pytest.raises(ValueError, match="positive integer"):
        with mp.threads(0):
            pass
