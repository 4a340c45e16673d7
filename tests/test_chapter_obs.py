"""Chapter 4's experiment module: settings, configurations, and its figures and table on
hand-made results (no training)."""

from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from minipruner.book.chapters import obs as chapter
from minipruner.book.claims import VERDICTS, Claim
from minipruner.experiments.records import Results
from minipruner.methods import get_method


@pytest.mark.parametrize("scale", ["quick", "full"])
def test_configurations_per_seed_and_network(scale):
    # (JSON settings and unique configurations: tests/test_chapters.py, for every chapter)
    settings = chapter.settings(scale)
    configs = chapter.configurations(settings)
    kinds = [c["experiment"] for c in configs]
    assert kinds.count("damping") == len(settings["seeds"])
    damping_seeds = [c["seed"] for c in configs if c["experiment"] == "damping"]
    assert damping_seeds == settings["seeds"] and configs[0]["experiment"] == "damping"
    n_networks = len(settings["networks"])
    assert kinds.count("oneshot") == n_networks * len(settings["seeds"]) * len(
        settings["sparsities"]
    )


def test_settings_follow_the_papers():
    full, quick = chapter.settings("full"), chapter.settings("quick")
    assert full["seeds"] == [0, 1, 2, 3, 4] == quick["seeds"]
    assert full["networks"]["mlpnet"]["per_class"] == 1000  # the paper's 10,000 gradients
    assert quick["networks"]["mlpnet"]["per_class"] == 400  # all 4,000 training digits
    for settings in (full, quick):
        assert settings["networks"]["mlpnet"]["damp"] == {"damp": 1e-3, "relative": False}
        # the released search with the release's MLPNet values of rho, tau, n_starts,
        # patience and max_iter; epsilon is the release's 1e-4, used as a relative threshold
        # (cbs_select's default) where the release's is absolute (chapter 4, section 4.7)
        assert settings["cbs"] == dict(
            n_starts=50, rho=10, tau=20, epsilon=1e-4, patience=5, max_iter=100
        )
        assert settings["start_examples"] == 5000
    assert full["networks"]["resnet20"]["blocks"] == "layer"
    assert list(quick["networks"]) == ["mlpnet"]
    assert quick["networks"]["mlpnet"]["train"] == chapter.FITS["brief"]
    assert quick["sparsities"] == [0.9, 0.95, 0.98]


def _synthetic(scale: str = "quick") -> Results:
    settings = chapter.settings(scale)
    rng = np.random.default_rng(0)
    records = []
    for config in chapter.configurations(settings):
        if config["experiment"] == "damping":
            fit = {"train_accuracy": 0.95, "train_loss": 0.2, "mean_diag": 3e-3}
            result = {
                "fits": {
                    "brief": {**fit, "agree": 0.98 + 0.001 * rng.normal()},
                    "long": {**fit, "train_accuracy": 1.0, "mean_diag": 1e-5, "agree": 0.9999},
                },
                "n_gradients": 1000,
                "n_weights": 32_360,
            }
        else:
            s = config["sparsity"]
            acc = {m: float(0.93 - s * 0.3 + 0.01 * rng.normal()) for m in settings["methods"]}
            result = {
                "accuracy": acc,
                "acc_dense": 0.93,
                "cbs": {
                    "objectives": [1e-2, 5e-3, 1e-3],
                    "losses": [0.5, 0.4, 0.45],
                    "chosen": 1,
                    "stop": "patience",
                    "start_index": 3,
                    "start_losses": [0.6, 0.55],
                    "start_objectives": [2e-2, 1e-2],
                    "swaps_per_iteration": [10, 4],
                    "mp_loss": 0.6,
                    "kept_not_mp": [3, 40_000],
                    "pruned_not_mp": [5, 31_000],
                },
            }
        records.append({**config, **result})
    return Results("04_obs", scale, settings, records, Path("."))


@pytest.mark.parametrize("scale", ["quick", "full"])
def test_figures_and_table_work_on_synthetic_results(scale):
    results = _synthetic(scale)
    figures = chapter.figures(results)
    expected = {"accuracy", "search"} | ({"accuracy_resnet20"} if scale == "full" else set())
    assert set(figures) == expected
    assert all(isinstance(f, Figure) for f in figures.values())
    table = chapter.table(results)
    lines = table.splitlines()
    n_networks = len(results.settings["networks"])
    assert len(lines) == 2 + n_networks * len(results.settings["sparsities"])
    assert "[90.3]" in table  # the paper's MP number at 90 %
    header = lines[0]  # the table's labels, not ids
    assert all(get_method(m).label in header for m in chapter.METHODS)
    assert "magnitude (global)" in header and "magnitude-global" not in header
    assert "ResNet-20" not in chapter.table(results, network="mlpnet")
    acc = chapter.accuracies(results, "magnitude-global", 0.9)
    assert acc.shape == (len(results.settings["seeds"]),) and 50 < acc.mean() < 80
    assert np.allclose(chapter.dense_accuracies(results), 93.0)
    search = chapter.search_table(results).splitlines()
    assert len(search) == 2 + len(results.settings["sparsities"])
    assert "0 of 5" in search[2] and "0.67 ± 0.00" in search[2]  # loss 0.4 against MP's 0.6
    trap = chapter.damping_table(results).splitlines()
    assert len(trap) == 2 + 2 * len(results.settings["seeds"])


@pytest.mark.parametrize("scale", ["quick", "full"])
def test_claims_have_verdicts(scale):
    found = chapter.claims(_synthetic(scale))
    assert found and all(isinstance(c, Claim) and c.verdict in VERDICTS for c in found)


def test_methods_are_table_ids_and_claims_keep_the_papers_names():
    settings = chapter.settings("quick")
    assert settings["methods"] == list(chapter.METHODS) == list(chapter.SHORT)
    # each is a (selection, update) pair of the method table, all different
    steps = [get_method(m).obs_steps for m in settings["methods"]]
    assert len(set(steps)) == len(steps) == 6
    # one configuration per (seed, sparsity) computes every method (shared Fisher and search)
    oneshot = [c for c in chapter.configurations(settings) if c["experiment"] == "oneshot"]
    assert all("method" not in c for c in oneshot) and "methods" not in chapter.GRID
    # the paper's table and the claims name methods by the paper's short names
    assert set(chapter.PAPER) <= set(chapter.SHORT.values())
    assert chapter.paper_accuracy("wf", 0.9) == chapter.PAPER["WF"][0.9]
    assert chapter.paper_accuracy("mp+u", 0.9) is None
    statements = [c.statement for c in chapter.claims(_synthetic())]
    assert "WF beats MP at 90%" in statements and "CBS-S beats MP at 98%" in statements
    assert not any("magnitude-global" in s or "wf-s" in s for s in statements)
