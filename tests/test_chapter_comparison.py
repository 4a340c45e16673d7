"""The comparison chapter's pieces: neuron pruning, cost measurement, summaries and plots."""

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import minipruner as mp
from minipruner.chapters import comparison as chapter
from minipruner.claims import VERDICTS, Claim
from minipruner.experiment import measure_cost
from minipruner.results import Results


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))


def test_neuron_masks_remove_whole_units_until_the_budget_is_met():
    net = _mlp()
    masks = chapter.neuron_masks(net, 0.4)
    d = sum(m.numel() for m in masks.values())
    removed = sum(int((~m).sum()) for m in masks.values())
    assert removed >= round(0.4 * d)
    w1, w2, w3 = masks.values()
    assert (~w1).any()  # the budget took units of the wide first layer
    for k in range(6):  # a unit of layer 1 goes with its whole row and outgoing column
        assert w1[k].any() == w1[k].all()
        assert w1[k].any() == w2[:, k].any()
    for k in range(4):  # a removed unit of layer 2 takes its outgoing column with it
        assert w2[k].any() == w3[:, k].any()
    assert w3.any(1).all()  # output units are never removed


def test_neuron_masks_remove_the_least_salient_unit_first():
    net = _mlp()
    with torch.no_grad():
        net[0].weight[2] *= 1e-3  # unit 2 of the first layer: smallest mean |w|
    masks = chapter.neuron_masks(net, 0.01)
    assert not masks["0.weight"][2].any()
    assert int((~masks["0.weight"]).sum()) == 8  # exactly one unit was enough


def test_neuron_masks_keep_one_unit_per_layer_and_reject_other_models():
    masks = chapter.neuron_masks(_mlp(), 0.99)
    assert masks["0.weight"].any(1).sum() == 1 and masks["2.weight"].any(1).sum() == 1
    with pytest.raises(ValueError, match="nn.Linear"):
        chapter.neuron_masks(mp.get_model("conv6"), 0.5)


def test_measure_cost_sees_a_large_temporary_allocation():
    _, big = measure_cost(lambda: torch.ones(25_000_000).sum())  # 100 MB, freed at once
    _, small = measure_cost(lambda: torch.ones(10).sum())
    assert big["seconds"] >= 0 and small["seconds"] >= 0
    if big["memory"] == "process rss":  # Linux
        assert 90 < big["peak_mb"] < 200
        assert small["peak_mb"] < 10
    else:
        assert big["peak_mb"] is None


def test_every_pruner_prunes_a_trained_looking_mlpnet_to_the_sparsity():
    net = mp.get_model("mlpnet")
    x, y = torch.randn(20, 1, 28, 28), torch.arange(20) % 10
    st = chapter.settings("quick")
    st["cbs"] = st["cbs"] | {"max_iter": 3, "n_starts": 3}
    train_data = torch.utils.data.TensorDataset(x, y)
    for method in st["methods"]:
        m = mp.get_model("mlpnet")
        m.load_state_dict(net.state_dict())
        chapter.pruner(st, method, 0, train_data)(m, 0.9, (x, y))
        sparsity = mp.sparsity_report(m).sparsity
        if method == "neurons (L1)":
            assert sparsity >= 0.9
        else:
            assert sparsity == pytest.approx(0.9, abs=1e-4), method


def _synthetic() -> Results:
    st = chapter.settings("quick")
    records = []
    for i, method in enumerate(st["methods"]):
        for s in st["sparsities"]:
            for seed in st["seeds"]:
                records.append(
                    {
                        "seed": seed,
                        "method": method,
                        "sparsity": s,
                        "acc_dense": 0.95,
                        "acc_pruned": 0.9 - s / 2 + i / 100,
                        "acc_retrained": 0.93 - s / 4,
                        "achieved_sparsity": s + 0.01 * (method == "neurons (L1)"),
                        "prune_seconds": 0.01 * (i + 1),
                        "prune_peak_mb": None if method == "random" else 2.0 * i,
                    }
                )
    return Results("06_comparison", "quick", st, records, Path("."))


def test_summaries_table_and_figures_from_synthetic_results():
    results = _synthetic()
    methods = results.settings["methods"]
    assert chapter.ranking(results, 0.9) == methods[::-1]
    assert chapter.cost(results, methods[1]) == {"seconds": 0.02, "peak_mb": 2.0}
    text = chapter.table(results)
    assert text.count("\n") == len(methods) + 1 and "→" in text
    assert "(ch. 4)" in text
    figs = chapter.figures(results)
    assert set(figs) == {"accuracy", "cost"}
    assert len(figs["accuracy"].axes[0].lines) > len(methods)
    json.dumps(chapter.settings("full"))


def test_claims_have_verdicts():
    found = chapter.claims(_synthetic())
    assert found and all(isinstance(c, Claim) and c.verdict in VERDICTS for c in found)
