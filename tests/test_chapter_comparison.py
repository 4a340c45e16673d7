"""The comparison chapter's pieces: neuron pruning, cost measurement, summaries and plots."""

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import matplotlib.colors
import pytest
import torch
from conftest import seeded_mlp
from torch import nn

import minipruner as mp
from minipruner.book.chapters import comparison as chapter
from minipruner.book.claims import TIMING, VERDICTS, Claim
from minipruner.core.experiment import measure_cost
from minipruner.experiments.records import Results
from minipruner.methods import get_method, make_pruner


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
        report = mp.sparsity_report(m)
        if method == chapter.NEURONS:
            assert report.sparsity >= 0.9
        elif method in chapter.LAYERWISE:  # every layer to 90 %, up to rounding per row
            for layer in report.layers:
                assert 1 - layer.density == pytest.approx(0.9, abs=0.5 / 20), method
        else:
            assert report.sparsity == pytest.approx(0.9, abs=1e-4), method


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
                        "achieved_sparsity": s + 0.01 * (method == chapter.NEURONS),
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


def test_results_are_keyed_by_id_and_pages_show_the_tables_labels_and_colours():
    st = chapter.settings("quick")
    assert st["methods"] == list(chapter.METHODS) and "methods" in chapter.GRID
    assert {c["method"] for c in chapter.configurations(st)} == set(chapter.METHODS)
    results = _synthetic()
    labels = [get_method(m).label for m in chapter.METHODS]
    assert [r.split(" (ch.")[0] for r in _table_rows(chapter.table(results))] == labels
    figs = chapter.figures(results)
    handles, names = figs["accuracy"].axes[0].get_legend_handles_labels()
    drawn = {n: h[0].get_color() for h, n in zip(handles, names, strict=True) if n != "dense"}
    assert drawn == {get_method(m).label: get_method(m).colour for m in chapter.METHODS}
    bars = figs["cost"].axes[0]
    assert [t.get_text() for t in bars.get_yticklabels()] == labels
    colours = [matplotlib.colors.to_hex(p.get_facecolor()) for p in bars.patches]
    assert colours == [matplotlib.colors.to_hex(get_method(m).colour) for m in chapter.METHODS]
    named = chapter.named_claims(results)  # short names and statements print labels
    assert "time_WoodFisher" in named and named["time_CBS"].statement.startswith("CBS takes")


def _table_rows(text: str) -> list[str]:
    """The first cell of each body row of a markdown table."""
    return [line.split("|")[1].strip() for line in text.splitlines()[2:]]


def test_claims_have_verdicts():
    found = chapter.claims(_synthetic())
    assert found and all(isinstance(c, Claim) and c.verdict in VERDICTS for c in found)


def _official_lap_global(weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """``LAP_Global(normalize=True)`` of the LAP paper's code for a chain of linear layers:
    ``W**2 * prev * next`` (``prev[k]``: squared norm of row ``k`` of the layer before,
    ``next[j]``: squared norm of column ``j`` of the layer after, 1 at the ends), each layer's
    score divided by its 2-norm."""
    out = []
    for i, w in enumerate(weights):
        prev = (weights[i - 1] ** 2).sum(1) if i > 0 else torch.ones(w.shape[1])
        nxt = (weights[i + 1] ** 2).sum(0) if i + 1 < len(weights) else torch.ones(w.shape[0])
        score = w**2 * prev.view(1, -1) * nxt.view(-1, 1)
        out.append(score / score.norm())
    return out


def test_global_lap_is_the_lap_codes_and_its_densities_follow():
    torch.manual_seed(0)
    net = mp.get_model("mlpnet")  # 784-40-20-10, as initialised, 90 % as in issue 24
    names = list(mp.prunable(net))
    weights = [w.detach() for w in mp.prunable(net).values()]
    official = dict(zip(names, _official_lap_global(weights), strict=True))
    want = mp.masks_from_scores(official, 0.9)
    got = chapter.pruner(chapter.settings("quick"), chapter.LAP, 0, None)(
        copy.deepcopy(net), 0.9, None
    )
    assert all(torch.equal(got[n], want[n]) for n in names)
    densities = chapter.normalisation_densities(net, 0.9)
    assert set(densities) == set(chapter.NORMALISATIONS)
    assert densities["lap"] == [float(want[n].double().mean()) for n in names]
    assert densities["lap"] == pytest.approx([0.083, 0.608, 0.725], abs=1e-3)
    # dividing the unsquared score by its 2-norm (not the paper's rule) keeps the small layers
    assert densities["lap_l2"] == pytest.approx([0.076, 0.834, 0.915], abs=1e-3)
    norm = mp.magnitude_scores(net, normalize=True)  # |w| / ||W||_F, the code's MP rule
    for n, w in zip(names, weights, strict=True):
        assert torch.allclose(norm[n], w.abs() / w.norm())
    mp_masks = mp.masks_from_scores(norm, 0.9)
    assert densities["magnitude"] == [float(mp_masks[n].double().mean()) for n in names]


def test_lap_against_normalised_names_the_sparsities_below_and_above():
    results = _synthetic()
    for r in results.records:  # LAP: 2 points below at 90 %, 3 above at 98 %, level at 50 %
        if r["method"] == chapter.NORMALISED_MP:
            r["acc_pruned"] = 0.8
        if r["method"] == chapter.LAP:
            r["acc_pruned"] = 0.8 + {0.9: -0.02, 0.98: 0.03, 0.5: -0.001}.get(r["sparsity"], 0)
    gaps = chapter.mean_gaps(results, chapter.LAP, chapter.NORMALISED_MP)
    assert gaps[0.9] == pytest.approx(-2) and gaps[0.98] == pytest.approx(3)
    named = {"lap_mag_level_0.5": SimpleNamespace(held=True)}
    text = chapter.lap_against_normalised(results, named)
    assert text == {"below": "90 % (by 2.0 points)", "above": "98 % (by 3.0 points)"}
    assert chapter.lap_against_normalised(results, {})["below"] == (
        "50 % (by 0.1 points) and 90 % (by 2.0)"
    )


# ------------------------------------------------------------------ chapter 7's layer-wise methods


def test_layerwise_methods_join_the_page_by_id_with_the_papers_defaults():
    st = chapter.settings("quick")
    assert set(chapter.LAYERWISE) == {"wanda", "sparsegpt"}
    assert set(chapter.LAYERWISE) <= set(st["methods"]) and "methods" in chapter.GRID
    net = seeded_mlp([784, 40, 20, 10], bias=False)
    x = torch.randn(30, 784)
    for method in chapter.LAYERWISE:
        got, want = copy.deepcopy(net), copy.deepcopy(net)
        masks = chapter.pruner(st, method, 0, None)(got, 0.5, (x, None))
        make_pruner(method)(want, 0.5, (x, None))  # the table's defaults, the papers'
        for name, w in mp.prunable(want).items():
            assert torch.equal(mp.prunable(got)[name], w), (method, name)
            assert float((~masks[name]).double().mean()) == pytest.approx(0.5), (method, name)
    # not the page's Fisher damping (1e-3, absolute), which would change SparseGPT's weights
    other = copy.deepcopy(net)
    make_pruner("sparsegpt", damp=st["fisher"]["damp"])(other, 0.5, (x, None))
    assert not torch.equal(mp.prunable(other)["fc1.weight"], mp.prunable(got)["fc1.weight"])


def test_global_allocation_is_global_magnitudes_per_layer_sparsities():
    net = _mlp()
    alloc = chapter.global_allocation(net, 0.6)
    masks = mp.masks_from_scores(mp.magnitude_scores(net), 0.6)
    assert list(alloc) == list(masks)
    sizes = {n: m.numel() for n, m in masks.items()}
    for n, m in masks.items():
        assert alloc[n] == pytest.approx(1 - float(m.double().mean()))
    total = sum(alloc[n] * sizes[n] for n in sizes) / sum(sizes.values())
    assert total == pytest.approx(0.6, abs=0.5 / sum(sizes.values()))
    assert len(set(round(v, 6) for v in alloc.values())) > 1  # not one fraction per layer


def test_at_global_allocation_gives_the_layerwise_methods_global_magnitudes_sparsities(
    monkeypatch,
):
    torch.manual_seed(0)
    x, y = torch.randn(40, 1, 28, 28), torch.arange(40) % 10
    data = torch.utils.data.TensorDataset(x, y)
    net = seeded_mlp([784, 40, 20, 10], bias=False)
    monkeypatch.setattr(chapter, "load_data", lambda name, scale: (data, data))
    monkeypatch.setattr(chapter, "model", lambda settings, seed=None: net)
    seen = []
    real = chapter.prune_and_measure

    def spy(model, pruner, sparsity, *args, **kwargs):
        seen.append(sparsity)
        return real(model, pruner, sparsity, *args, **kwargs)

    monkeypatch.setattr(chapter, "prune_and_measure", spy)
    st = chapter.settings("quick") | {"per_class": 2}
    out = chapter.at_global_allocation(st, 0, 0.8)
    assert list(out) == list(chapter.ALLOCATED) and all(0 <= a <= 1 for a in out.values())
    alloc = chapter.global_allocation(net, 0.8)
    assert seen == [0.8, alloc, alloc]  # chapter.ALLOCATED: global magnitude, Wanda, SparseGPT
    assert mp.sparsity_report(net).sparsity == 0  # the trained network is left as it is


def test_layerwise_claims_figures_and_colours():
    results = _synthetic()
    named = chapter.named_claims(results)
    for short in ("sgpt_layer_0.5", "wanda_layer_0.5", "sgpt_wanda_0.5"):
        assert "without retraining" in named[short].statement
    assert "global_layerwise_from_0.8" in named
    assert named["time_SparseGPT"].over == TIMING and not named["time_SparseGPT"].asserted
    # the table draws Wanda in GraSP's colour and SparseGPT in CBS's: the page tells them apart
    # by line style and marker, and by hatching in the cost figure
    figs = chapter.figures(results)
    handles, names = figs["accuracy"].axes[0].get_legend_handles_labels()
    lines = {n: h[0] for h, n in zip(handles, names, strict=True) if n != "dense"}
    for method in chapter.LAYERWISE:
        line = lines[get_method(method).label]
        assert line.get_linestyle() == "--" and line.get_marker() == "s"
    assert lines["GraSP"].get_marker() == "o"
    bars = figs["cost"].axes[0].patches
    hatched = [p.get_hatch() or "" for p in bars]
    methods = results.settings["methods"]
    assert hatched == ["//" if m in chapter.LAYERWISE else "" for m in methods]
