"""Chapter 3's module: settings, configurations, and its figures and tables on made-up
results (no training)."""

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from minipruner.book.chapters import init_pruning as chapter
from minipruner.book.chapters import init_pruning_page as page
from minipruner.experiments.records import Results, result_path

LAYERS = ["features.0.weight", "features.3.weight", "classifier.weight"]
SIZES = [144, 2304, 640]
WIDTHS = [16, 16, 10]


def fake_run(config: dict, settings: dict) -> dict:
    """Made-up numbers shaped like ``chapter.run``'s output."""
    rng = np.random.default_rng(zlib.crc32(json.dumps(config, sort_keys=True).encode()))
    density = 1 - config["sparsity"]
    if config["experiment"] == "masks":
        kept = [int(round(density * n * f)) for n, f in zip(SIZES, [2.0, 0.8, 1.5], strict=True)]
        if config["method"] == "magnitude-global":
            kept[1] = 0
        return {
            "layers": LAYERS,
            "kinds": ["conv", "conv", "fc"],
            "sizes": SIZES,
            "widths": WIDTHS,
            "kept": kept,
            "collapsed": [n for n, k in zip(LAYERS, kept, strict=True) if k == 0],
            "active": [min(w, k) for w, k in zip(WIDTHS, kept, strict=True)],
            "active_shuffled": WIDTHS,
            "flow": 0.0 if config["method"] == "magnitude-global" else float(rng.uniform(1e-4, 1)),
            "seconds": 0.1,
        }
    collapsed = config["method"] == "magnitude-global"
    return {
        "accuracy": 0.1 if collapsed else float(rng.uniform(0.2, 0.98)),
        "trained": not collapsed,
        "chance": 0.1,
        "test_examples": 1000,
        "collapsed": [LAYERS[1]] if collapsed else [],
        "seconds": 1.0,
    }


def fake_results(scale: str) -> Results:
    """A ``Results`` of every configuration at ``scale``, with made-up measurements."""
    settings = json.loads(json.dumps(chapter.settings(scale)))
    records = [{**c, **fake_run(c, settings)} for c in chapter.configurations(settings)]
    return Results("03_init_pruning", scale, settings, records, Path("/nonexistent"))


@pytest.mark.parametrize("scale", ["quick", "full"])
def test_configurations_per_seed_and_network(scale):
    # (JSON settings and unique configurations: tests/test_chapters.py, for every chapter)
    settings = chapter.settings(scale)
    configs = chapter.configurations(json.loads(json.dumps(settings)))
    archs = page.arch_names(settings)
    assert set(settings["train"]) == set(archs)
    trained = [c for c in configs if c["experiment"] == "train"]
    per_seed = 1 + len(settings["methods"]) * len(settings["trained_sparsities"])
    per_seed += len(settings["shuffle_methods"]) * len(settings["shuffle_sparsities"])
    per_seed += len(settings["sign_variants"])
    assert len(trained) == len(archs) * len(settings["seeds"]) * per_seed
    masks = [c for c in configs if c["experiment"] == "masks"]
    assert {c["arch"] for c in masks} == {archs[0]}
    assert len(masks) == len(settings["seeds"]) * 6 * len(settings["sparsities"])


def test_quick_settings_are_the_pages():
    settings = chapter.settings("quick")
    assert page.arch_names(settings) == ["vgg6"]
    assert settings["trained_sparsities"] == [0.9, 0.98, 0.99]
    assert len(chapter.configurations(settings)) == 141
    net = chapter.init_net(settings, "vgg6", 0)
    assert net.training
    assert sum(w.numel() for n, w in net.named_parameters() if n.endswith("weight") and w.ndim > 1)
    assert len(chapter.configurations(chapter.settings("full"))) == 264


@pytest.mark.parametrize("scale", ["quick", "full"])
def test_figures_and_tables_work_on_made_up_results(scale):
    results = fake_results(scale)
    figures = chapter.figures(results)
    assert set(figures) == {"accuracy", "flow", "density"}
    assert all(isinstance(f, Figure) for f in figures.values())
    n_archs = len(page.arch_names(results.settings))
    assert len(figures["accuracy"].axes) == n_archs
    assert len(figures["density"].axes) == len(results.settings["methods"])
    for f in figures.values():
        f.canvas.draw()  # render fully: catches errors that only show when drawn

    text = chapter.table(results)
    rows = text.splitlines()[2:]
    assert len(rows) == n_archs * (1 + len(results.settings["trained_sparsities"]))
    assert rows[0].startswith(f"| {page.arch_names(results.settings)[0]} | 0 % (dense) |")
    for fn in (
        page.flow_table,
        page.collapse_table,
        page.last_conv_table,
        page.shuffle_table,
        page.channels_table,
        page.sign_table,
        page.paper_table,
    ):
        lines = fn(results).split("\n\n")[0].splitlines()
        # every row has as many cells as the header: no unescaped "|" inside a cell
        widths = {len(line.replace("\\|", "").split("|")) for line in lines}
        assert len(widths) == 1, (fn.__name__, lines)
    assert "\\|theta Hg\\|" in page.flow_table(results)
    assert "3 of 3" in page.collapse_table(results)  # magnitude empties a layer


def test_every_method_is_a_table_entry_and_the_page_shows_its_label_and_colour():
    from minipruner.methods import METHODS, get_method

    settings = chapter.settings("quick")
    ids = page.all_methods(settings)
    assert ids == ["grasp", "snip", "random", "magnitude-global", "grasp-opposite", "grasp-abs"]
    assert set(ids) <= set(METHODS) and set(settings["shuffle_methods"]) <= set(ids)
    assert {c["method"] for c in chapter.configurations(settings)} == {"dense", *ids}
    results = fake_results("quick")
    header = chapter.table(results).splitlines()[0]
    assert header == "| network | sparsity | GraSP | SNIP | random | magnitude (global) |"
    assert "GraSP, opposite sign" in page.sign_table(results)
    flow_axes = page.flow_figure(results).axes[0]
    lines = [line for line in flow_axes.get_lines() if not line.get_label().startswith("_")]
    assert [line.get_label() for line in lines] == [get_method(m).label for m in ids]
    assert [line.get_color() for line in lines] == [get_method(m).colour for m in ids]


def test_a_new_method_adds_only_its_own_configurations():
    # "methods" and "sign_variants" are in GRID: every configuration names its method, so a
    # method added to the settings keys only its own configurations anew (a throwaway id
    # stands in for a new entry of the method table); the others keep their files
    settings = chapter.settings("quick")
    assert {"methods", "sign_variants"} <= set(chapter.GRID)
    folder = Path("results")
    before = {result_path(folder, chapter, settings, c) for c in chapter.configurations(settings)}
    for key in ("methods", "sign_variants"):
        more = dict(settings, **{key: [*settings[key], "synflow"]})
        configs = chapter.configurations(more)
        assert before < {result_path(folder, chapter, more, c) for c in configs}
        new = [c for c in configs if result_path(folder, chapter, more, c) not in before]
        assert new and all(c["method"] == "synflow" for c in new)
        trained = more["trained_sparsities"] if key == "methods" else [more["sign_sparsity"]]
        n_new = len(more["seeds"]) * (len(more["sparsities"]) + len(trained))
        assert len(new) == n_new


def test_helpers_read_the_records():
    results = fake_results("quick")
    assert page.layer_labels(results) == ["conv1", "conv2", "fc"]
    np.testing.assert_array_equal(page.layer_sizes(results), SIZES)
    d = page.densities(results, "grasp", 0.9, seed=1)
    np.testing.assert_allclose(d, page.kept_weights(results, "grasp", 0.9, 1) / SIZES)
    assert page.collapse_counts(results)["magnitude-global", 0.99] == 3
    assert page.collapse_counts(results)["grasp", 0.99] == 0
    acc = page.accuracies(results, "magnitude-global", 0.98)
    np.testing.assert_array_equal(acc, [10.0, 10.0, 10.0])
    assert page.flows(results, "snip", 0.95).shape == (3,)
    assert page.is_trained(results, "snip", 0.98)
    assert not page.is_trained(results, "snip", 0.95)
    chosen, shuffled = page.active_channels(results, "grasp", 0.98, seed=2)
    assert (shuffled >= chosen).all()


def test_run_end_to_end_on_a_tiny_setting(tmp_path):
    """Every kind of configuration runs, on a 2-conv VGG trained for two steps, and the
    figures and tables read what ``run`` returns."""
    import minipruner as mp

    settings = chapter.settings("quick")
    settings.update(
        seeds=[0],
        sparsities=[0.99],
        methods=["grasp", "magnitude-global"],
        sign_variants=["grasp-abs"],
        trained_sparsities=[0.99],
        shuffle_methods=["grasp"],
        shuffle_sparsities=[0.99],
        sign_sparsity=0.99,
        train={"vgg6": {"iterations": 2, "batch_size": 32}},
    )
    settings["networks"][0]["kwargs"]["cfg"] = [4, "M", 8]
    results = mp.reproduce("03_init_pruning", "quick", root=tmp_path, settings=settings, quiet=True)
    assert len(results) == 8 and results.computed == 8
    (masks,) = results.select(experiment="masks", method="magnitude-global")
    assert masks["layers"] == ["features.0.weight", "features.4.weight", "classifier.weight"]
    assert masks["kinds"] == ["conv", "conv", "fc"] and masks["sizes"] == [36, 288, 80]
    assert "features.4.weight" in masks["collapsed"] and masks["flow"] == 0.0
    (collapsed,) = results.select(experiment="train", method="magnitude-global")
    assert collapsed["accuracy"] == 0.1 and not collapsed["trained"]
    (dense,) = results.select(experiment="train", method="dense")
    assert dense["trained"] and dense["test_examples"] == 1000 and dense["chance"] == 0.1
    assert set(chapter.figures(results)) == {"accuracy", "flow", "density"}
    assert "| vgg6 | 99.0% |" in chapter.table(results)
    for fn in (page.flow_table, page.sign_table, page.paper_table):
        assert fn(results)
    again = mp.reproduce("03_init_pruning", "quick", root=tmp_path, settings=settings, quiet=True)
    assert again.computed == 0 and again.records == results.records


@pytest.mark.parametrize("scale", ["quick", "full"])
def test_claims_have_computed_verdicts(scale):
    from minipruner.book.calibration import POWER_TO_ASSERT
    from minipruner.book.claims import VERDICTS, Claim

    found = chapter.claims(fake_results(scale))
    assert found and all(isinstance(c, Claim) for c in found)
    assert all(c.verdict in VERDICTS for c in found)
    # asserted by the committed calibration's power at the quick scale only, never by hand
    if scale == "full":
        assert all(c.power is None and not c.asserted for c in found)
    else:
        assert sum(c.power is not None for c in found) > len(found) // 2
        assert all(c.asserted == ((c.power or 0) >= POWER_TO_ASSERT) for c in found)


def test_flow_accuracy_correlation_is_measured_within_each_sparsity():
    """Made-up records in which gradient flow and accuracy both fall with sparsity, so that
    pooled over sparsities they are strongly rank-correlated, while within each sparsity a
    seed's accuracies are symmetric about its middle mask in flow order: rank-uncorrelated
    with flow (with ties, given their average ranks). The claims measure the latter."""
    from minipruner.book.claims import UNDECIDED, find_claim

    results = fake_results("quick")
    settings = results.settings
    level = {0.9: 0.9, 0.98: 0.6, 0.99: 0.3}
    for seed in settings["seeds"]:
        for s in settings["trained_sparsities"]:
            where = dict(experiment="train", seed=seed, sparsity=s, shuffled=False)
            trained = [r for r in results.select(**where) if r["trained"]]
            for i, r in enumerate(trained):  # flow rises with i, accuracy symmetric in i
                page.mask_record(results, r["method"], s, seed)["flow"] = level[s] * (1 + i / 100)
                r["accuracy"] = level[s] + abs(i - (len(trained) - 1) / 2) / 100
    assert chapter.correlation_sparsities(settings) == [0.9, 0.98]
    for seed in settings["seeds"]:
        assert page.flow_accuracy_correlation(results, seed) > 0.8  # pooled: sparsity
        for s in settings["trained_sparsities"]:
            assert page.flow_accuracy_correlation(results, seed, s) == pytest.approx(0, abs=1e-12)
        # ties broken by order instead of averaged would read a correlation at 90 %
        flow, acc = page.flow_accuracy_pairs(results, seed, 0.9)
        assert len(flow) == 3 and acc[0] == acc[2]
        ordinal = [np.argsort(np.argsort(v, kind="stable")) for v in (flow, acc)]
        assert np.corrcoef(*ordinal)[0, 1] == pytest.approx(0.5)
    found = chapter.claims(results)
    for s in ("90 %", "98 %"):
        c = find_claim(found, s, "more gradient flow train to higher accuracy")
        assert c.effect == pytest.approx(0, abs=1e-12) and c.verdict == UNDECIDED
        assert c.sample == pytest.approx([0.0] * len(settings["seeds"]), abs=1e-12)
    table = page.flow_accuracy_table(results)
    assert "| 90% | 3 / 3 / 3 | +0.00 / +0.00 / +0.00 | +0.00 |" in table
    assert "| all trained, pooled | 11 / 11 / 11 | +0.88 / +0.88 / +0.88 | +0.88 |" in table


def test_records_under_both_initialisations_read_the_calibrations():
    record = {"runs": 6, "held": 4, "not distinguishable": 1, "reversed": 1, "power": 0.4149}
    assert page.record_text(record) == "held in 4 of 6 runs, reversed in 1 (chance 0.41)"
    assert page.record_text({**record, "reversed": 0, "power": None}) == "held in 4 of 6 runs"
    # the committed calibrations: every claim of the page has a row, both records filled
    table = page.init_record_table()
    rows = [line for line in table.splitlines()[2:] if line.startswith("|")]
    assert len(rows) == len(chapter.calibration.load(page.NAME)["claims"])
    assert "not measured" not in table
    first = page.init_record("98 %: GraSP beats the best")
    assert set(first) == {"default", "paper"} and all("runs" in v for v in first.values())
