"""Chapter 4's experiment module: settings, configurations, and its figures and table on
hand-made results (no training)."""

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from minipruner.chapters import obs as chapter
from minipruner.claims import VERDICTS, Claim
from minipruner.results import Results


@pytest.mark.parametrize("scale", ["quick", "full"])
def test_settings_are_json_and_configurations_are_unique(scale):
    settings = chapter.settings(scale)
    assert json.loads(json.dumps(settings)) == settings
    assert settings["scale"] == scale
    configs = chapter.configurations(settings)
    assert len({json.dumps(c, sort_keys=True) for c in configs}) == len(configs)
    kinds = [c["experiment"] for c in configs]
    assert kinds.count("damping") == len(settings["seeds"]) and kinds.count("swap_trace") == 1
    damping_seeds = [c["seed"] for c in configs if c["experiment"] == "damping"]
    assert damping_seeds == settings["seeds"] and configs[0]["experiment"] == "damping"
    n_networks = len(settings["networks"])
    assert kinds.count("oneshot") == n_networks * len(settings["seeds"]) * len(
        settings["sparsities"]
    )


def test_full_scale_keeps_the_papers_settings():
    full = chapter.settings("full")
    assert full["seeds"] == [0, 1, 2, 3, 4]
    assert full["networks"]["mlpnet"]["per_class"] == 1000
    assert full["networks"]["mlpnet"]["damp"] == {"damp": 1e-3, "relative": False}
    assert full["networks"]["resnet20"]["blocks"] == "layer"
    assert full["cbs"] == {"max_iters": 1000}
    quick = chapter.settings("quick")
    assert list(quick["networks"]) == ["mlpnet"]
    assert quick["networks"]["mlpnet"]["damp"] == {"damp": 1e-6, "relative": True}


def _synthetic(scale: str = "quick") -> Results:
    settings = chapter.settings(scale)
    rng = np.random.default_rng(0)
    records = []
    for config in chapter.configurations(settings):
        if config["experiment"] == "damping":
            result = {
                "train_accuracy": 1.0,
                "train_loss": 1e-3,
                "mean_diag": 5e-7,
                "agree_absolute": 0.9999,
                "agree_relative": 0.998,
            }
        elif config["experiment"] == "oneshot":
            s = config["sparsity"]
            acc = {m: float(0.93 - s * 0.3 + 0.01 * rng.normal()) for m in settings["methods"]}
            result = {
                "accuracy": acc,
                "acc_dense": 0.93,
                "cbs": {
                    "objectives": [1e-5, 5e-6, 1e-6],
                    "loss_iterates": [0, 2],
                    "losses": [0.3, 0.4],
                    "chosen": 0,
                    "kept_not_mp": [3, 40_000],
                    "pruned_not_mp": [5, 31_000],
                },
            }
        else:
            result = {
                "steps": [0, 5, 10],
                "fit": [1e-5, 1e-6, 1e-7],
                "held": [1e-5, 2e-5, 2e-5],
                "loss": [0.3, 0.35, 0.4],
                "chosen": 1,
                "n_iterates": 11,
            }
        records.append({**config, **result})
    return Results("04_obs", scale, settings, records, Path("."))


@pytest.mark.parametrize("scale", ["quick", "full"])
def test_figures_and_table_work_on_synthetic_results(scale):
    results = _synthetic(scale)
    figures = chapter.figures(results)
    expected = {"accuracy", "swap_trace"} | ({"accuracy_resnet20"} if scale == "full" else set())
    assert set(figures) == expected
    assert all(isinstance(f, Figure) for f in figures.values())
    table = chapter.table(results)
    lines = table.splitlines()
    n_networks = len(results.settings["networks"])
    assert len(lines) == 2 + n_networks * len(results.settings["sparsities"])
    assert "[90.3]" in table  # the paper's MP number at 90 %
    assert "ResNet-20" not in chapter.table(results, network="mlpnet")
    acc = chapter.accuracies(results, "MP", 0.9)
    assert acc.shape == (len(results.settings["seeds"]),) and 50 < acc.mean() < 80
    assert np.allclose(chapter.dense_accuracies(results), 93.0)


@pytest.mark.parametrize("scale", ["quick", "full"])
def test_claims_have_verdicts(scale):
    found = chapter.claims(_synthetic(scale))
    assert found and all(isinstance(c, Claim) and c.verdict in VERDICTS for c in found)
