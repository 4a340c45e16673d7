"""Chapter 7's module (minipruner.book.chapters.language_models) and its explorer, on tiny
settings: a 16-wide TinyGPT trained a few steps, two seeds, one sparsity and one pattern."""

import math

import numpy as np
import pytest
import torch

import minipruner as mp
from minipruner.book.chapters import CHAPTERS, chapter_explorer
from minipruner.book.chapters import language_models as chapter
from minipruner.book.claims import TIMING, find_claim
from minipruner.book.explorers import language_models_explorer, language_models_state
from minipruner.book.widgets import Explorer


def tiny_settings() -> dict:
    s = chapter.settings("quick", seed_offset=0)
    s.update(
        seeds=[0, 1],
        sparsities=[0.5, 0.75],
        patterns=["2:4"],
        group_sparsities=[0.5],
        model={"context": 16, "d_model": 16, "n_layers": 2, "n_heads": 2},
        train={"steps": 4, "batch_size": 4, "lr": 3e-3, "weight_decay": 0.01, "warmup": 1},
        calibration={"windows": 8, "blocks": 2},
        eval_windows=4,
        cost={"widths": [8, 16], "obc_widths": [8, 16], "tokens": 64, "repeats": 1},
    )
    return s


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("ch07")
    with pytest.MonkeyPatch.context() as mpatch:
        mpatch.setenv("MINIPRUNER_CACHE", str(root / "cache"))
        mpatch.setitem(CHAPTERS, "07_language_models", chapter.__name__)  # registered or not
        first = mp.reproduce("07", "quick", root=root / "r", settings=tiny_settings(), quiet=True)
        again = mp.reproduce("07", "quick", root=root / "r", settings=tiny_settings(), quiet=True)
        assert again.computed == 0 and again.records == first.records
        trained = list((root / "cache" / "ch07-tinygpt").glob("*.pt"))
        assert len(trained) == 2  # one model per seed, trained once and shared
        yield first


def test_settings_and_configurations():
    s = chapter.settings("quick", seed_offset=100)
    assert s["seeds"] == [100, 101, 102, 103, 104] and set(chapter.GRID) <= set(s)
    assert chapter.levels(s) == [
        ("unstructured", 0.5),
        ("unstructured", 0.6),
        ("unstructured", 0.7),
        ("unstructured", 0.8),
        ("2:4", 0.5),
        ("4:8", 0.5),
    ]
    configs = chapter.configurations(s)
    kinds = [c["experiment"] for c in configs]
    # per seed: dense, 3 methods x 6 levels, 2 methods x 2 group sparsities, cost
    assert len(configs) == 5 * (1 + 18 + 4 + 1) and kinds.count("cost") == 5
    groups = [c for c in configs if c["experiment"] == "groups"]
    assert {(c["method"], c["groups"]) for c in groups} == {
        ("magnitude-pattern", "row"),
        ("wanda", "layer"),
    }
    assert chapter.level_name("unstructured", 0.7) == "70 %" and chapter.level_name("2:4", 0.5)
    assert set(chapter.METHODS) == set(s["methods"])  # keyed by method id
    runs = chapter.shared_runs(s)
    assert [r["kwargs"]["seed"] for r in runs] == s["seeds"]
    assert chapter.shared_run_trainings(s, runs[0]) == [] and not chapter.config_trainings(s, {})
    with pytest.raises(ValueError, match="no cost"):
        chapter.shared_run_trainings(s, {"call": "other"})


def test_pruner_options_follow_each_methods_declared_options():
    s = tiny_settings()
    assert chapter.pruner_options(s, "magnitude-pattern", "2:4", None) == {"pattern": "2:4"}
    assert chapter.pruner_options(s, "wanda", "unstructured", "layer") == {
        "pattern": "unstructured",
        "blocks": 2,
        "groups": "layer",
    }
    assert chapter.pruner_options(s, "sparsegpt", "4:8", None) == {
        "pattern": "4:8",
        "blocks": 2,
        "damp": 0.01,
        "blocksize": 128,
    }


def test_every_configuration_prunes_to_its_level(results):
    s = results.settings
    for r in results.select(experiment="sweep"):
        assert r["achieved"] == pytest.approx(r["sparsity"], abs=0.01)
        assert r["layers"] == 12 and r["prune_seconds"] > 0 and math.isfinite(r["ppl"])
    dense = results.select(experiment="dense")
    assert len(dense) == 2 and all(1 < r["ppl"] < 256 and r["unigram_ppl"] > 1 for r in dense)
    assert len(results.select(experiment="groups")) == 2 * 2 * len(s["group_sparsities"])
    cost = results.select(experiment="cost")[0]["layer_seconds"]
    assert set(cost) == {"magnitude-pattern", "wanda", "sparsegpt", "obc"}
    assert set(cost["obc"]) == {"8", "16"} and set(cost["sparsegpt"]) == {"8", "16"}


def same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return all(torch.equal(x, y) for x, y in pairs)


def test_the_same_seed_prunes_the_same_trained_model(results):
    # every method of a seed starts from one model: pruning magnitude at 50 % twice agrees
    s = results.settings
    a, b = chapter.model(s, 0), chapter.model(s, 0)
    assert same(a, b)
    assert not torch.equal(a.embed.weight, chapter.model(s, 1).embed.weight)


def test_claims_figures_and_tables(results):
    claims = chapter.claims(results)
    statements = [c.statement for c in claims]
    assert len(set(statements)) == len(statements)
    # 3 comparisons x 3 levels and magnitude over Wanda x 2 unstructured ones, 2 rise claims,
    # 3 group claims x 1 sparsity, 2 timing claims
    assert len(claims) == 9 + 2 + 2 + 3 + 2
    assert sum(c.over == TIMING for c in claims) == 2
    for c in claims:
        assert c.n == 2 and not c.asserted  # tiny settings: no calibration applies
    c = find_claim(claims, "At 2:4:", "SparseGPT reaches", "than Wanda")
    expected = 100 * (
        chapter.ppl(results, "wanda", "2:4", 0.5) / chapter.ppl(results, "sparsegpt", "2:4", 0.5)
        - 1
    )
    assert c.effect == pytest.approx(expected.mean())
    assert c.paper == "Wanda README, LLaMA-2 7b/13b/70b: lower on 1 of 3"  # 10.17 < 11.02 only
    assert chapter.readme_says("sparsegpt", "wanda", "unstructured", 0.5).endswith("level on 1")
    assert chapter.readme_says("sparsegpt", "wanda", "unstructured", 0.6) == ""
    for words in chapter.HEADLINES:
        find_claim(claims, *words)
    figures = chapter.figures(results)
    assert set(figures) == {"perplexity", "groups", "cost"}
    table = chapter.table(results)
    assert "2:4" in table and "SparseGPT" in table and table.count("\n") == 2 + 3
    ratios = chapter.paper_ratios(results)
    readme, ours = ratios["2:4", "sparsegpt"]
    assert readme[0] == pytest.approx(10.17 / 5.12) and ours is not None
    assert ratios["4:8", "wanda"][1] is None  # the tiny settings ran no 4:8
    paper = chapter.paper_table(results)
    assert paper.count("\n") == 1 + 9 and "llama2-7b" in paper
    assert "exponent" in chapter.cost_table(results)
    exps = chapter.cost_exponents(results)
    assert set(exps) == {"magnitude-pattern", "wanda", "sparsegpt", "obc"}
    assert all(v.shape == (2,) and np.isfinite(v).all() for v in exps.values())


def test_the_papers_numbers_are_the_readme_table():
    t = chapter.PAPER_TABLE
    assert "locuslab/wanda" in t["source"] and "README" in t["source"]
    assert len(t["rows"]) == 9 and all(len(v) == len(t["models"]) for v in t["rows"].values())
    assert t["rows"][("2:4", "sparsegpt")][0] == 10.17 and t["dense"][0] == 5.12


def test_explorer_state_reads_stored_perplexity_and_computes_new_states(results):
    s = results.settings
    net = chapter.model(s, 0)
    stored = language_models_state(net, s, "wanda", "2:4", 0.7, seed=0, results=results)
    assert stored["sparsity"] == 0.5 and not stored["measured"]  # 2:4 fixes the sparsity
    assert stored["ppl"] == chapter.ppl(results, "wanda", "2:4", 0.5)[0]
    groups = stored["mask"].reshape(stored["mask"].shape[0], -1, 4).sum(-1)
    assert torch.equal(groups, torch.full_like(groups, 2))  # the corner keeps 2 of every 4
    assert len(stored["layer_errors"]) == 12 and all(0 <= e for e in stored["layer_errors"])
    new = language_models_state(net, s, "sparsegpt", "unstructured", 0.6, seed=0, results=results)
    assert new["measured"] and math.isfinite(new["ppl"]) and new["sparsity"] == 0.6
    assert same(net, chapter.model(s, 0))  # the explorer prunes a copy
    live = language_models_state(net, s, "obc", "unstructured", 0.5, seed=0)
    assert live["measured"] and live["kept"] == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="method"):
        language_models_state(net, s, "snip", "unstructured", 0.5, seed=0)


def test_explorer_static_page_and_slot(results):
    s = results.settings
    found = language_models_explorer(
        chapter.model(s, 0), s, results, sparsities=[0.5], patterns=["unstructured"], mode="static"
    )
    assert isinstance(found, Explorer) and len(found.frames) == 3  # one per method
    assert chapter_explorer(chapter) is language_models_explorer


def test_explorer_live_any_method_pattern_and_sparsity(results):
    s = results.settings
    ex = language_models_explorer(chapter.model(s, 0), s, results, mode="live")
    first = ex.image.value
    ex.widgets["method"].value = "obc"  # live only: not on the static page
    ex.widgets["pattern"].value = "1:4"
    assert ex.image.value != first and ex.error is None
    assert ex.data["measured"] and ex.data["sparsity"] == 0.75
    groups = ex.data["mask"].reshape(ex.data["mask"].shape[0], -1, 4).sum(-1)
    assert torch.equal(groups, torch.ones_like(groups))  # 1 of every 4
    ex.widgets["pattern"].value = "unstructured"
    ex.widgets["sparsity"].value = 0.35  # between the static page's positions
    assert ex.error is None and ex.data["kept"] == pytest.approx(0.65, abs=0.02)  # rows round
