"""Chapter 2's module (minipruner.book.chapters.lookahead) without training: settings,
configurations, the disconnected-weights measure, and the figures and tables on a small
synthetic Results shaped like run's output."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from minipruner.book.chapters import lookahead as chapter
from minipruner.core.masks import apply_masks
from minipruner.experiments.records import Results

LAYERS = ["fc1.weight", "fc2.weight", "fc3.weight"]


@pytest.mark.parametrize("scale", ["quick", "full"])
def test_configurations_per_experiment_and_level(scale):
    # (JSON settings and unique configurations: tests/test_chapters.py, for every chapter)
    settings = chapter.settings(scale)
    configs = chapter.configurations(settings)
    n_exp = len(settings["experiments"])
    sweep = [c for c in configs if "units_level" not in c]
    assert len(sweep) == n_exp * 3 * len(chapter.METHODS) * len(settings["levels"])
    units = [c for c in configs if "units_level" in c]  # section 2.8: one per seed
    first = next(iter(settings["experiments"]))
    assert [(c["experiment"], c["seed"]) for c in units] == [(first, s) for s in settings["seeds"]]
    assert all(c["units_level"] == settings["levels"][0] for c in units)


def test_quick_retrains_mp_and_lap_at_the_four_sparsest_levels_only():
    configs = chapter.configurations(chapter.settings("quick"))
    retrained = {(c["method"], c["level"]) for c in configs if c.get("retrain")}
    assert retrained == {(m, t) for m in (chapter.MP, chapter.LAP) for t in (7, 8, 9, 10)}
    full = chapter.configurations(chapter.settings("full"))
    assert all(c["retrain"] for c in full if "units_level" not in c)


def test_level_ratios_follow_the_layer_types():
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(8, 4), torch.nn.Linear(4, 2)
    )
    ratios = chapter.level_ratios(net, 2, 0.15, 0.2, 0.1)
    assert ratios == pytest.approx({"0.weight": 1 - 0.85**2, "2.weight": 0.36, "3.weight": 0.19})


def test_disconnected_fraction():
    keep = {
        "a": torch.tensor([[1, 0], [0, 0], [1, 1]], dtype=torch.bool),  # unit 1 receives nothing
        "b": torch.tensor([[1, 1, 1], [0, 1, 0]], dtype=torch.bool),
        "c": torch.tensor([[1, 0]], dtype=torch.bool),  # unit 1 of b's output is never read
    }
    # b keeps 4 weights; (0,1) reads the dead unit 1, (1,1) feeds the unread unit 1
    assert chapter.disconnected_fraction(keep) == 0.5
    # conv -> flatten -> linear: channel 1 of the conv reads nothing of the first conv
    conv = {
        "c1": torch.tensor([1, 0], dtype=torch.bool).view(2, 1, 1, 1).expand(2, 1, 3, 3),
        "c2": torch.ones(2, 2, 3, 3, dtype=torch.bool),
        "fc": torch.ones(3, 2 * 4, dtype=torch.bool),
    }
    assert chapter.disconnected_fraction(conv) == 0.5


def _synthetic_results(tmp_path: Path) -> Results:
    settings = chapter.settings("quick")
    rng = np.random.default_rng(0)
    records = []
    for config in chapter.configurations(settings):
        if "units_level" in config:  # section 2.8's records: see the claims test
            continue
        t = config["level"]
        acc = max(0.1, 0.95 - 0.1 * (t - 4) + (0.05 if config["method"] != chapter.MP else 0))
        record = {
            **config,
            "achieved_sparsity": 1 - 0.5**t,
            "density": dict.fromkeys(LAYERS, 0.5**t),
            "acc_dense": 0.93 + 0.01 * config["seed"],
            "acc_pruned": acc + 0.01 * rng.standard_normal(),
            "loss_pruned": 1.0,
            "disconnected": 0.01 * t + (0.02 if config["method"] == chapter.MP else 0),
            "seconds": 0.1,
        }
        if config["retrain"]:
            record |= {"acc_retrained": min(1.0, acc + 0.2), "loss_retrained": 0.5}
        if config["method"] == chapter.LAP:
            record["lap_only"] = {n: 0.03 * t for n in LAYERS}
        records.append(record)
    return Results("02_lookahead", "quick", settings, records, tmp_path)


def test_figures_and_tables_from_synthetic_results(tmp_path):
    results = _synthetic_results(tmp_path)
    exp = chapter.experiments(results)[0]
    survive = chapter.remaining(results, exp)
    assert survive[4] == pytest.approx(100 * 0.5**4)
    assert len(chapter.accuracies(results, exp, chapter.MP, 4, "acc_retrained")) == 0
    assert len(chapter.accuracies(results, exp, chapter.LAP, 10, "acc_retrained")) == 3
    assert (
        chapter.disconnected(results, exp, chapter.MP)[6]
        > chapter.disconnected(results, exp, chapter.LAP)[6]
    )
    figs = chapter.figures(results)
    assert set(figs) == {"error", "disagreement"}
    assert all(isinstance(f, Figure) for f in figs.values())
    for fig in figs.values():
        fig.savefig(tmp_path / "fig.png", dpi=30)
    table = chapter.table(results)
    assert "LAP, retrained" in table and "| LFP |" in table and "6.25 %" in table
    assert table.count("\n|") == 2 + 5 + 2  # header, separator, five methods, two retrained
    dead = chapter.disconnected_table(results)
    assert dead.startswith("| method |") and dead.count("\n") == 3


def test_lap_act_units_on_a_small_network(monkeypatch):
    """lap_act_units counts alive units and rates from the masks it returns, restricts LAP to
    LAP-act's alive units with LAP's per-layer counts, and evaluates each mask."""
    from torch.utils.data import TensorDataset

    from minipruner.core.models import MLP
    from minipruner.core.train import evaluate
    from minipruner.methods.lookahead import activation_rates

    torch.manual_seed(0)
    net = MLP([12, 16, 16, 16, 3], bias=True).eval()
    x = torch.randn(60, 12)
    test_data = TensorDataset(torch.randn(30, 12), torch.randint(0, 3, (30,)))
    monkeypatch.setattr(chapter, "model", lambda settings, experiment, seed: net)
    monkeypatch.setattr(chapter, "_rate_batch", lambda dataset, scale, per_class: x)
    monkeypatch.setattr(chapter, "load_data", lambda name, scale: (None, test_data))
    settings = {
        "scale": "quick",
        "rate_examples_per_class": 20,
        "experiments": {"tiny": {"dataset": "d", "ratios": [0.5, 0.5, 0.25]}},
    }
    found = chapter.lap_act_units(settings, "tiny", seed=0, level=3)
    masks, survival = found["masks"], found["survival"]
    hidden = ["fc1.weight", "fc2.weight", "fc3.weight"]
    rates = activation_rates(net, x)
    assert list(survival) == ["dense", chapter.LAP, chapter.LAP_ACT]
    for name in hidden:
        assert survival["dense"][name] == (16, 16, pytest.approx(rates[name].mean().item()))
        for method in (chapter.LAP, chapter.LAP_ACT):
            alive = masks[method][name].any(dim=1)
            expected = (int(alive.sum()), 16, pytest.approx(rates[name][alive].mean().item()))
            assert survival[method][name] == expected
        restricted = masks["LAP within LAP-act's units"][name]
        assert restricted.sum() == masks[chapter.LAP][name].sum()
        assert not restricted[~masks[chapter.LAP_ACT][name].any(dim=1)].any()
    dead = sum(16 - survival[chapter.LAP_ACT][name][0] for name in hidden)
    assert dead > 0  # so the restriction above is not vacuous
    assert all(p.grad is None for p in net.parameters())
    assert not hasattr(net.fc1, "weight_orig")  # the trained network itself is not masked
    for method, keep in masks.items():
        pruned = copy.deepcopy(net)
        apply_masks(pruned, keep)
        assert found["accuracy"][method] == evaluate(pruned, test_data).accuracy
    table = chapter.lap_act_accuracy_table({0: found, 1: found})
    assert "| LAP within LAP-act's units |" in table and "seed 1" in table


def test_claims_on_synthetic_results(tmp_path):
    """claims and unit_claims return Claims with verdicts, from synthetic measurements."""
    from minipruner.book.claims import VERDICTS, Claim

    results = _synthetic_results(tmp_path)
    claims = chapter.claims(results)
    hidden = ["fc1.weight", "fc2.weight"]
    units = {
        seed: {
            "survival": {
                chapter.LAP: {n: (100 + seed, 500, 0.4) for n in hidden},
                chapter.LAP_ACT: {n: (60, 500, 0.5 + 0.01 * seed) for n in hidden},
            },
            "accuracy": {
                chapter.LAP: 0.8 + 0.01 * seed,
                chapter.LAP_ACT: 0.6,
                "LAP within LAP-act's units": 0.81,
            },
        }
        for seed in (0, 1, 2)
    }
    claims += chapter.unit_claims(units)
    assert claims and all(isinstance(c, Claim) and c.verdict in VERDICTS for c in claims)
    # stored as the units configurations' records, they join the chapter's claims
    level = results.settings["levels"][0]
    exp = chapter.experiments(results)[0]
    results.records += [
        {"experiment": exp, "seed": s, "units_level": level, **u} for s, u in units.items()
    ]
    with_units = chapter.claims(results)
    assert [c.statement for c in with_units[-4:]] == [
        c.statement for c in chapter.unit_claims(units)
    ]


def test_only_claims_after_retraining_carry_the_papers_words(tmp_path):
    """A claim measured right after pruning has no paper statement (which accuracy the
    paper's tables report is not checked); the others quote the paper's abstract, the one
    source this book could read, and none cites a table it could not check."""
    claims = chapter.claims(_synthetic_results(tmp_path))
    for c in claims:
        if c.statement.startswith("Right after pruning"):
            assert c.paper == "", c.statement
        if c.paper:
            assert c.paper.startswith("the abstract:"), c.statement
            assert "Table" not in c.paper or "not checked" in c.paper, c.statement
    quoted = {c.paper for c in claims if c.paper}
    assert quoted == {chapter.PAPER_OUTPERFORMS, chapter.PAPER_HIGH_SPARSITY}
    retrained = [
        c for c in claims if c.statement.startswith("After retraining") and "LAP is" in c.statement
    ]
    assert retrained and all(c.paper == chapter.PAPER_OUTPERFORMS for c in retrained)


def test_calibrated_spreads_read_one_ratio_per_seed_set():
    """LAP-act's spread claim is one number per seed set; the page counts on how many of the
    calibration's seed sets LAP-act was the most spread method, from these values."""
    cal = {
        "offsets": [0, 100],
        "claims": [
            {"statement": "other", "runs": [{"sample": [9.0]}, {"sample": [9.0]}]},
            {
                "statement": "Right after pruning to 6.36 % of the weights, LAP-act's spread "
                "over seeds is more than twice any other method's",
                "runs": [{"sample": [0.5]}, {"sample": [2.5]}],
            },
        ],
    }
    assert chapter.calibrated_spreads(cal).tolist() == [0.5, 2.5]
    committed = chapter.calibrated_spreads()  # the committed calibration: one per offset
    offsets = chapter.calibration.load("02_lookahead")["offsets"]
    assert len(committed) == len(offsets) and (committed > 0).all()


def test_a_throwaway_method_adds_only_its_own_configurations(monkeypatch):
    """Adding a method is one Method entry and its id in the chapter's list: on a copy of the
    table with one extra method, the chapter's configurations are the old ones (same result
    keys, so nothing stored is recomputed) plus the new method's, each of which names it."""
    import dataclasses

    from minipruner.experiments.records import keyed
    from minipruner.methods import METHODS, table

    extra = dataclasses.replace(METHODS["lap"], id="lap-copy", label="LAP (copy)", colour="k")
    copy_of_table = {m.id: m for m in table._entries([*table._ENTRIES, extra])}
    monkeypatch.setattr(table, "METHODS", copy_of_table)
    assert chapter.get_method("lap-copy").label == "LAP (copy)"  # the table the chapter reads
    settings = chapter.settings("quick")
    more = {**settings, "methods": [*settings["methods"], "lap-copy"]}
    key = lambda s, c: repr(keyed(chapter, s, c))  # noqa: E731
    before = {key(settings, c) for c in chapter.configurations(settings)}
    after = {key(more, c): c for c in chapter.configurations(more)}
    assert before < set(after)
    new = [c for k, c in after.items() if k not in before]
    assert new and all(c["method"] == "lap-copy" for c in new)
    assert len(new) == len(settings["experiments"]) * 3 * len(settings["levels"])
