"""Chapter 5's module (minipruner.book.chapters.structured): settings and configurations, and its
figures, tables and summaries on hand-made results shaped like ``run``'s (no training); and
exercise 2's formula for the initial L1 norm of a filter."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from minipruner.book.chapters import rank_correlation
from minipruner.book.chapters import structured as chapter
from minipruner.book.chapters import structured_page as page
from minipruner.core.models import WideResNet
from minipruner.experiments.records import Results, result_path
from minipruner.methods import structured as st

FOLDER = Path("results")
SCALES = ("quick", "full")


@pytest.mark.parametrize("scale", SCALES)
def test_configurations_per_kind(scale):
    # (JSON settings and unique configurations: tests/test_chapters.py, for every chapter)
    settings = chapter.settings(scale)
    configs = chapter.configurations(settings)
    kinds = {c["experiment"] for c in configs}
    assert kinds == {"saliency", "dense", "prune", "scratch", "reduced", "latency"}
    n_seeds, n_inputs = len(settings["seeds"]), len(settings["latency"]["inputs"])
    per_seed = 3 + len(settings["methods"])  # dense, one prune per method, scratch, reduced
    assert len(configs) == 1 + n_seeds * per_seed + n_inputs * len(
        settings["latency"]["batch_sizes"]
    )


def test_a_new_method_adds_only_its_own_configurations():
    # "methods" is in GRID: every configuration names its method, so a method added to the
    # settings keys only its own pruning runs anew (a throwaway id stands in for a new entry)
    settings = chapter.settings("quick")
    assert "methods" in chapter.GRID
    assert settings["methods"] == ["channels-fisher", "channels-l1"]
    more = dict(settings, methods=[*settings["methods"], "channels-new"])
    before = {result_path(FOLDER, chapter, settings, c) for c in chapter.configurations(settings)}
    configs = chapter.configurations(more)
    assert before < {result_path(FOLDER, chapter, more, c) for c in configs}
    new = [c for c in configs if result_path(FOLDER, chapter, more, c) not in before]
    assert new == [
        {"experiment": "prune", "seed": s, "method": "channels-new"} for s in settings["seeds"]
    ]


def test_full_scale_keeps_the_papers_setup():
    full = chapter.settings("full")
    assert full["arch"]["depth"] == 40 and full["arch"]["widen"] == 2
    assert full["dataset"] == "cifar10" and full["train"]["epochs"] == 200
    assert full["prune"] == {"prune_every": 100, "lr": 8e-4} and full["tune_steps"] == 2000
    assert page.latency_settings(full) == ["2-D, as trained"]
    quick = chapter.settings("quick")
    assert page.latency_settings(quick) == ["2-D 28x28", "1-D, as trained"]


def _snapshots(settings, seed, method):
    rng = np.random.default_rng(seed + 10 * (method == "channels-l1"))
    out = []
    for i, f in enumerate(settings["grid"]):
        widths = [max(1, 16 - 2 * i), 32 - 3 * i, 64 - 6 * i]  # a block keeps a channel
        rec = dict(
            fraction=f,
            step=5 * round(112 * f),
            widths=widths,
            parameters=28314 - 2300 * i,
            masks={f"block{b + 1}.0": [1] * w for b, w in enumerate(widths)},
            error=float(1.5 + 2 * i + rng.uniform(0, 1)),
        )
        if f == settings["compare"]:
            rec["tuned_error"] = float(4 + rng.uniform(0, 1))
        out.append(rec)
    return out


def _latency(settings, setting, batch_size):
    names = ["dense", "pruned 50%", "reduced 50%", "pruned 75%, masks only"]
    names += ["pruned 75%", "reduced 75%"]
    scale = {"dense": 1.0, "pruned 75%, masks only": 1.0}
    rounds = {
        n: [1e-3 * batch_size * scale.get(n, 0.7) * (1 + 0.1 * r) for r in range(5)] for n in names
    }
    counts = {n: [10000 * (i + 1), 1000000 * (i + 1)] for i, n in enumerate(names)}
    return dict(
        names=names,
        rounds=rounds,
        counts=counts,
        device="cpu: test",
        threads=1,
        batch_size=batch_size,
    )


@pytest.fixture(scope="module")
def results():
    settings = json.loads(json.dumps(chapter.settings("quick"), sort_keys=True))
    records = []
    for config in chapter.configurations(settings):
        kind = config["experiment"]
        if kind == "saliency":
            gates = [
                dict(
                    block="block1.0",
                    channel=k,
                    actual=0.01 * (k + 1),
                    taylor2=0.007 * (k + 1),
                    fisher=0.0003 * (k + 1) ** 1.1,
                    first=-0.001 * (k + 1),
                    half_curvature=0.008 * (k + 1),
                )
                for k in range(6)
            ]
            result = dict(loss=0.02, gates=gates)
        elif kind in ("dense", "scratch", "reduced"):
            result = dict(error=2.0 + config["seed"], parameters=28314, widths=[16, 32, 64])
            if kind == "reduced":
                result.update(parameters=7873, widths=[3, 5, 11], factor=0.17)
        elif kind == "prune":
            result = dict(snapshots=_snapshots(settings, config["seed"], config["method"]))
        else:
            result = _latency(settings, config["setting"], config["batch_size"])
        records.append({**config, **result, "seconds": 0.1})
    return Results("05_structured", "quick", settings, records, Path("unused"))


def test_figures_draw_from_results(results):
    figs = chapter.figures(results)
    assert set(figs) == {"saliency", "errors", "latency"}
    assert all(isinstance(f, Figure) for f in figs.values())
    assert len(figs["latency"].axes) == 2
    other = page.latency_figure(results, "1-D, as trained")
    assert "1-D" in other.get_suptitle()


def test_tables_and_summaries(results):
    text = chapter.table(results)
    assert text.count("| dense |") == 3  # accuracy table and two latency tables
    assert "Fisher: pruned-and-tuned" in text and "cpu: test" in text
    acc = page.accuracy_table(results).splitlines()
    assert len(acc) == 2 + len(page.families(results))
    err = page.errors(results)
    assert np.allclose(err["dense"], [2.0, 3.0, 4.0])
    tuned = [page.at_compare(results, "channels-fisher", s)["tuned_error"] for s in (0, 1, 2)]
    assert np.allclose(err["Fisher: pruned-and-tuned"], tuned)
    assert page.at_fraction(results, "channels-l1", 0, 0.5)["fraction"] == 0.5
    ratio = page.paired_ratio(results, "2-D 28x28", 64, "pruned 75%", "dense")
    assert ratio == pytest.approx(0.7)
    counts = page.latency_counts(results)
    assert counts["1-D, as trained", "dense"] == (10000, 1000000)
    summary = page.saliency_summary(results)
    assert summary["rho_fisher"] == pytest.approx(1.0)
    assert summary["fisher_ratio"] < 0.1 and summary["first_ratio"] == pytest.approx(0.1)


def test_rank_correlation_and_unknown_experiment():
    assert rank_correlation([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="unknown experiment"):
        chapter.run({"experiment": "nothing"}, chapter.settings("quick"))


def test_claims_have_computed_verdicts(results):
    from minipruner.book.claims import VERDICTS, Claim

    found = chapter.claims(results)
    assert found and all(isinstance(c, Claim) for c in found)
    assert all(c.verdict in VERDICTS for c in found)


def test_exercise_2_initial_filter_l1_norm_goes_as_c_in_over_sqrt_c():
    # Exercise 2: under the fan-out He init (std sqrt(2 / (s c))) a conv1 filter of the 1-D
    # WRN-10-1 has E||W1[k]||_1 = s C_in sqrt(2 / (s c)) sqrt(2 / pi)
    # = 2 sqrt(s / pi) C_in / sqrt(c): 4, 2.83 and 4 times 2 sqrt(3 / pi) for the three
    # blocks. Block 3 widens the stream as block 2 does (c = 2 C_in) without the deficit.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        nets = [WideResNet(**chapter.MNIST1D_WRN) for _ in range(50)]
    convs = [nets[0].get_submodule(c.conv1) for c in st.prunable_channels(nets[0])]
    shapes = [(conv.kernel_size[0], conv.in_channels, conv.out_channels) for conv in convs]
    assert shapes == [(3, 16, 16), (3, 16, 32), (3, 32, 64)]
    formula = np.array([2 * math.sqrt(s / math.pi) * c_in / math.sqrt(c) for s, c_in, c in shapes])
    assert formula / (2 * math.sqrt(3 / math.pi)) == pytest.approx([4, 16 / math.sqrt(32), 4])
    measured = np.mean(
        [[v.mean().item() for v in st.l1_saliency(net).values()] for net in nets], axis=0
    )
    # 50 networks: 800 / 1,600 / 3,200 filters per block, the mean within about 0.5 %
    assert measured == pytest.approx(formula, rel=0.02)
    assert np.argmin(measured) == 1
