"""What chapter 3's page shows from its stored results: accessors, figures and tables.

:mod:`minipruner.book.chapters.init_pruning` runs the chapter's experiments and states its
claims; this module reads what they stored (a :class:`~minipruner.experiments.records.Results`):
the accessors the claims and the page share (accuracies, gradient flow, the layers each mask
keeps), the three figures, the tables, the GraSP paper's numbers beside this page's, and each
claim's record under the two initialisations. Nothing here builds or trains a network. The results
name each method by its id in :data:`minipruner.methods.METHODS`; figures and tables show its
``label`` and draw its ``colour``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from ...experiments.records import Results
from ...experiments.tables import markdown_table, mean_sd_cell, sample_sd
from ...methods import get_method
from .. import calibration
from ..claims import spearman

PAPER_SOURCE = (
    "the GraSP paper's VGG-19 rows (Wang et al. 2020, its table of CIFAR-10 and CIFAR-100 "
    "accuracies), second-hand: as copied in HaroonKhawaja/BaCP, docs/published_comparators.md; "
    "not checked against the paper itself"
)
"""Where :data:`PAPER`, :data:`PAPER_CIFAR100` and :data:`PAPER_DENSE` come from. The GraSP
paper's tables were not found in a first-hand copy, and its official repository
(``alecwangcq/GraSP``) holds configurations but no results."""
PAPER = {
    "snip": {0.9: 93.63, 0.95: 93.43, 0.98: 92.05},
    "grasp": {0.9: 93.30, 0.95: 93.04, 0.98: 92.19},
}
"""Test accuracies (%) of VGG-19 on CIFAR-10 in the GraSP paper (:data:`PAPER_SOURCE`). At 98 %
GraSP leads SNIP by 0.14 points, inside the spread the copy gives (± 0.12 and ± 0.28)."""
PAPER_CIFAR100 = {
    "snip": {0.9: 72.84, 0.95: 71.83, 0.98: 58.46},
    "grasp": {0.9: 71.95, 0.95: 71.23, 0.98: 68.90},
}
"""Test accuracies (%) of VGG-19 on CIFAR-100 in the GraSP paper (:data:`PAPER_SOURCE`): the row
where the paper separates GraSP from SNIP, by 10.44 points at 98 %."""
PAPER_DENSE = 94.23
"""The dense VGG-19's test accuracy (%) on CIFAR-10 in the GraSP paper (:data:`PAPER_SOURCE`)."""

FLOOR = 3e-4
"""Where an empty layer is drawn on a logarithmic density axis (%)."""


def arch_names(settings: dict[str, Any]) -> list[str]:
    """The names of the chapter's networks; the first one is the one every figure shows."""
    return [net["name"] for net in settings["networks"]]


def all_methods(settings: dict[str, Any]) -> list[str]:
    """The four methods followed by GraSP's two sign variants (method ids)."""
    return settings["methods"] + settings["sign_variants"]


def label(method: str) -> str:
    """What the page prints for a method id: its table entry's label (``"dense"`` as is)."""
    return method if method == "dense" else get_method(method).label


# ------------------------------------------------------------------- reading the results


def accuracies(
    results: Results,
    method: str,
    sparsity: float,
    shuffled: bool = False,
    arch: str | None = None,
) -> np.ndarray:
    """Test accuracies in percent, one per seed (``arch``: the first network by default)."""
    arch = arch or arch_names(results.settings)[0]
    where = dict(arch=arch, method=method, sparsity=sparsity, shuffled=shuffled)
    return 100 * results.values("accuracy", experiment="train", **where)


def is_trained(results: Results, method: str, sparsity: float, arch: str | None = None) -> bool:
    """Whether the results hold training runs of ``method`` at ``sparsity`` (not shuffled)."""
    arch = arch or arch_names(results.settings)[0]
    where = dict(arch=arch, method=method, sparsity=sparsity, shuffled=False)
    return bool(results.select(experiment="train", **where))


def mask_record(
    results: Results, method: str, sparsity: float, seed: int | None = None
) -> dict[str, Any]:
    """The ``masks`` measurement of one method, sparsity and seed."""
    seed = results.settings["seeds"][0] if seed is None else seed  # the first seed by default
    (record,) = results.select(experiment="masks", method=method, sparsity=sparsity, seed=seed)
    return record


def flows(results: Results, method: str, sparsity: float) -> np.ndarray:
    """Gradient flow after pruning over gradient flow before, one per seed."""
    return results.values("flow", experiment="masks", method=method, sparsity=sparsity)


def kept_weights(
    results: Results, method: str, sparsity: float, seed: int | None = None
) -> np.ndarray:
    """Weights kept in each layer (forward order) by one method's mask."""
    seed = results.settings["seeds"][0] if seed is None else seed  # the first seed by default
    return np.array(mask_record(results, method, sparsity, seed)["kept"])


def layer_sizes(results: Results) -> np.ndarray:
    """The number of weights of each prunable layer, in forward order."""
    return np.array(results.select(experiment="masks")[0]["sizes"])


def densities(
    results: Results, method: str, sparsity: float, seed: int | None = None
) -> np.ndarray:
    """Fraction of each layer's weights kept by one method's mask, ``kept_l / n_l``."""
    seed = results.settings["seeds"][0] if seed is None else seed  # the first seed by default
    record = mask_record(results, method, sparsity, seed)
    return np.array(record["kept"]) / np.array(record["sizes"])


def kind_labels(kinds: list[str]) -> list[str]:
    """Short names of layers of the given kinds: ``conv1``, ``conv2``, ... and ``fc``."""
    return [k if k == "fc" else f"conv{kinds[: i + 1].count(k)}" for i, k in enumerate(kinds)]


def layer_labels(results: Results) -> list[str]:
    """Short names of the prunable layers of the stored masks (:func:`kind_labels`)."""
    return kind_labels(results.select(experiment="masks")[0]["kinds"])


def collapse_counts(results: Results) -> dict[tuple[str, float], int]:
    """Per (method id, sparsity): how many seeds' masks empty at least one layer."""
    counts: dict[tuple[str, float], int] = {}
    for r in results.select(experiment="masks"):
        key = (r["method"], r["sparsity"])
        counts[key] = counts.get(key, 0) + bool(r["collapsed"])
    return counts


def active_channels(
    results: Results, method: str, sparsity: float, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Active output channels per layer of one mask, as chosen and shuffled within layers."""
    seed = results.settings["seeds"][0] if seed is None else seed  # the first seed by default
    record = mask_record(results, method, sparsity, seed)
    return np.array(record["active"]), np.array(record["active_shuffled"])


# ------------------------------------------------------------------------------ figures


def accuracy_figure(results: Results) -> Figure:
    """Test accuracy after pruning at init and training against weights kept, per method
    (mean ± sample sd over seeds), with the dense network and chance; one panel per network."""
    archs = arch_names(results.settings)
    sparsities = results.settings["trained_sparsities"]
    kept = 100 * (1 - np.array(sparsities))
    fig = Figure(figsize=(6 * len(archs), 3.8), layout="tight")
    axes = fig.subplots(1, len(archs), squeeze=False)[0]
    for ax, arch in zip(axes, archs, strict=True):
        for i, method in enumerate(results.settings["methods"]):
            marker = "osv^Dp"[i % 6]
            a = [accuracies(results, method, s, arch=arch) for s in sparsities]
            mean, sd = np.array([(x.mean(), sample_sd(x)) for x in a]).T
            entry = get_method(method)
            ax.errorbar(
                kept,
                mean,
                yerr=sd,
                marker=marker,
                capsize=3,
                color=entry.colour,
                label=entry.label,
            )
        ax.axhline(
            accuracies(results, "dense", 0.0, arch=arch).mean(),
            color="gray",
            ls="--",
            lw=1,
            label="dense",
        )
        chance_acc = results.select(experiment="train", arch=arch)[0]["chance"]
        ax.axhline(100 * chance_acc, color="gray", ls=":", lw=1, label="chance")
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("weights kept (%)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{arch} on {results.settings['dataset']}: pruned at init, then trained")
        ax.legend(fontsize=8)
    return fig


def flow_figure(results: Results) -> Figure:
    """Gradient flow kept by each mask (G after / G before pruning) against weights kept:
    the mean over seeds (line) and every seed (dots), on the first network. The vertical
    axis is logarithmic above 1e-5 and linear below, so a mask that keeps no gradient flow
    at all (an emptied layer) is drawn at 0."""
    sparsities = results.settings["sparsities"]
    kept = 100 * (1 - np.array(sparsities))
    fig = Figure(figsize=(6, 3.8), layout="tight")
    ax = fig.subplots()
    for method in all_methods(results.settings):
        color = get_method(method).colour
        values = np.array([flows(results, method, s) for s in sparsities])
        ax.plot(kept, values.mean(1), marker="o", color=color, label=label(method))
        for column in values.T:
            ax.plot(kept, column, ".", color=color, alpha=0.4, ms=4)
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-5)
    ax.set_ylim(bottom=-3e-6)  # room for the markers at 0
    ax.invert_xaxis()
    ax.set_xlabel("weights kept (%)")
    ax.set_ylabel("G after / G before pruning")
    ax.set_title(f"{arch_names(results.settings)[0]}: gradient flow kept at initialisation")
    ax.legend(fontsize=7)
    return fig


def density_figure(results: Results) -> Figure:
    """Per method: the fraction of each layer its mask keeps at every sparsity (seed 0,
    log scale; red crosses mark empty layers, drawn at :data:`FLOOR`)."""
    methods = results.settings["methods"]
    sparsities = results.settings["sparsities"]
    labels = layer_labels(results)
    fig = Figure(figsize=(14, 3.4), layout="tight")
    axes = fig.subplots(1, len(methods), sharey=True, squeeze=False)[0]
    colors = colormaps["viridis"](np.linspace(0, 0.85, len(sparsities)))
    for ax, method in zip(axes, methods, strict=True):
        for s, color in zip(sparsities, colors, strict=True):
            d = 100 * densities(results, method, s)
            ax.plot(np.maximum(d, FLOOR), marker="o", ms=4, color=color, label=f"{s:.1%}")
            ax.plot(np.flatnonzero(d == 0), np.full((d == 0).sum(), FLOOR), "x", color="red", ms=9)
        ax.set_yscale("log")
        ax.set_title(label(method))
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    axes[0].set_ylabel("weights kept in the layer (%)")
    axes[-1].legend(title="sparsity", fontsize=7)
    return fig


def figures(results: Results) -> dict[str, Figure]:
    """The chapter's three plots."""
    return {
        "accuracy": accuracy_figure(results),
        "flow": flow_figure(results),
        "density": density_figure(results),
    }


# ------------------------------------------------------------------------------- tables


def _pct(values: np.ndarray) -> str:
    """``"mean ± sample sd"`` of values already in percent."""
    return mean_sd_cell(values, percent=False)


def table(results: Results) -> str:
    """Test accuracy (%, mean ± sample sd over seeds) of every network, method and trained
    sparsity after pruning at init and training; the dense network in the first row."""
    methods = results.settings["methods"]
    rows = []
    for arch in arch_names(results.settings):
        dense = _pct(accuracies(results, "dense", 0.0, arch=arch))
        rows.append([arch, "0 % (dense)", *[dense] * len(methods)])
        for s in results.settings["trained_sparsities"]:
            rows.append(
                [arch, f"{s:.1%}", *[_pct(accuracies(results, m, s, arch=arch)) for m in methods]]
            )
    return markdown_table(["network", "sparsity", *map(label, methods)], rows)


def flow_table(results: Results) -> str:
    """Gradient flow kept, G after / G before pruning (mean over seeds), per method and
    sparsity."""
    sparsities = results.settings["sparsities"]
    rows = [
        [label(method), *[f"{flows(results, method, s).mean():.4f}" for s in sparsities]]
        for method in all_methods(results.settings)
    ]
    return markdown_table(["method", *[f"{s:.1%}" for s in sparsities]], rows)


def collapse_table(results: Results) -> str:
    """Per method and sparsity: the seeds whose mask empties at least one layer."""
    sparsities = results.settings["sparsities"]
    n = len(results.settings["seeds"])
    counts = collapse_counts(results)
    rows = [
        [label(method), *[f"{counts[method, s]} of {n}" for s in sparsities]]
        for method in all_methods(results.settings)
    ]
    header = ["seeds with an empty layer", *[f"{s:.1%}" for s in sparsities]]
    return markdown_table(header, rows)


def last_conv_table(results: Results) -> str:
    """Weights kept in the layer before the classifier (the last convolution), per method
    and sparsity, one number per seed."""
    sparsities = results.settings["sparsities"]
    seeds = results.settings["seeds"]
    layer, size = layer_labels(results)[-2], layer_sizes(results)[-2]
    rows = [
        [
            label(method),
            *[
                " / ".join(str(kept_weights(results, method, s, seed)[-2]) for seed in seeds)
                for s in sparsities
            ],
        ]
        for method in results.settings["methods"]
    ]
    seed_list = ", ".join(map(str, seeds))
    header = [f"kept in {layer} (of {size:,}), seeds {seed_list}"]
    header += [f"{s:.1%}" for s in sparsities]
    return markdown_table(header, rows)


def shuffle_table(results: Results) -> str:
    """Test accuracy (%) of the masks as chosen and shuffled within layers, and the change
    per seed, for each shuffled method and sparsity (first network)."""
    rows = []
    for s in results.settings["shuffle_sparsities"]:
        for method in results.settings["shuffle_methods"]:
            chosen = accuracies(results, method, s)
            shuffled = accuracies(results, method, s, shuffled=True)
            change = ", ".join(f"{c:+.1f}" for c in shuffled - chosen)
            rows.append([label(method), f"{s:.0%}", _pct(chosen), _pct(shuffled), change])
    header = ["method", "sparsity", "as chosen", "shuffled within layers", "change per seed"]
    return markdown_table(header, rows)


def channels_table(results: Results, seed: int | None = None) -> str:
    """Active output channels per layer (of the layer's width) of the shuffled methods'
    masks at the last shuffle sparsity, as chosen and shuffled within layers (one seed)."""
    seed = results.settings["seeds"][0] if seed is None else seed  # the first seed by default
    s = results.settings["shuffle_sparsities"][-1]
    rows = []
    for method in results.settings["shuffle_methods"]:
        widths = mask_record(results, method, s, seed)["widths"]
        for kind, counts in zip(
            ["as chosen", "shuffled"], active_channels(results, method, s, seed), strict=True
        ):
            cells = [f"{a}/{w}" for a, w in zip(counts, widths, strict=True)]
            rows.append([f"{label(method)} at {s:.0%}", kind, *cells])
    return markdown_table(["mask", "weights", *layer_labels(results)], rows)


def sign_table(results: Results) -> str:
    """GraSP and its sign variants at the sign sparsity: test accuracy (%, mean ± sample sd over
    seeds) and gradient flow kept (mean over seeds)."""
    s = results.settings["sign_sparsity"]
    rows = [
        [
            label(method),
            _pct(accuracies(results, method, s)),
            f"{flows(results, method, s).mean():.4f}",
        ]
        for method in ["grasp", *results.settings["sign_variants"]]
    ]
    return markdown_table([f"scores (at {s:.0%})", "test accuracy (%)", "G kept"], rows)


def paper_table(results: Results) -> str:
    """The GraSP paper's test accuracies of VGG-19 on CIFAR-10 and CIFAR-100
    (:data:`PAPER_SOURCE`) beside this run's (VGG-19 when it ran, else the first network),
    with a caption saying where each column comes from."""
    archs = arch_names(results.settings)
    ours = "vgg19" if "vgg19" in archs else archs[0]
    dense_here = _pct(accuracies(results, "dense", 0.0, arch=ours))
    rows = [["dense", f"{PAPER_DENSE:.2f}", f"{PAPER_DENSE:.2f}", "—", "—", dense_here, dense_here]]
    for s in sorted(set(PAPER["snip"]) | set(results.settings["trained_sparsities"])):
        paper = [
            f"{table[m][s]:.2f}" if s in table[m] else "—"
            for table in (PAPER, PAPER_CIFAR100)
            for m in ("snip", "grasp")
        ]
        here = [
            _pct(accuracies(results, m, s, arch=ours))
            if is_trained(results, m, s, arch=ours)
            else "not trained here"
            for m in ("snip", "grasp")
        ]
        rows.append([f"{s:.1%}", *paper, *here])
    header = [
        "sparsity",
        "paper C10 SNIP",
        "paper C10 GraSP",
        "paper C100 SNIP",
        "paper C100 GraSP",
        f"{ours} SNIP",
        f"{ours} GraSP",
    ]
    n_test = results.select(experiment="train", arch=ours)[0]["test_examples"]
    caption = (
        f"Paper: VGG-19 on CIFAR-10 (C10) and CIFAR-100 (C100), 160 epochs; {PAPER_SOURCE}; "
        "the CIFAR-100 dense accuracy is not in that copy. This page: "
        f"{ours} on {results.settings['dataset']} ({results.scale} scale), mean ± sample sd "
        f"over {len(results.settings['seeds'])} seeds, {n_test:,} test examples."
    )
    return markdown_table(header, rows) + "\n\n" + caption


# ------------------------------------------------- the paper's initialisation, calibrated

NAME = "03_init_pruning"
PAPER_INIT = {"init": "grasp", "grasp_reinit_linear": True}
"""The GraSP code's initialisation, which the full scale runs: :func:`grasp_paper_init`, and
GraSP scored on a copy whose linear layers are re-drawn Xavier-normal."""
PAPER_INIT_VARIANT = "paper-init"
"""The quick scale under :data:`PAPER_INIT`, calibrated as a variant of this chapter (it
asserts nothing) and committed as ``03_init_pruning.paper-init.json`` by::

    python -m minipruner calibrate 3 --set init='"grasp"' --set grasp_reinit_linear=true \\
        --variant paper-init --offsets 0 100 200 300 400 500
"""


def record_text(record: dict[str, Any]) -> str:
    """A claim's record over a calibration's runs, e.g. ``"held in 4 of 6 runs (chance
    0.41)"``, from :func:`minipruner.book.calibration.verdicts`."""
    text = f"held in {record['held']} of {record['runs']} runs"
    if record["reversed"]:
        text += f", reversed in {record['reversed']}"
    power = record["power"]
    return text + (f" (chance {power:.2f})" if power is not None else "")


def init_record(*words: str) -> dict[str, str]:
    """One claim's record under this page's initialisation (PyTorch's default, the chapter's
    calibration) and under the paper's (the :data:`PAPER_INIT_VARIANT` calibration), as
    :func:`record_text`; the claim is the one whose statement contains every word."""
    return {
        "default": record_text(calibration.verdicts(NAME, *words)),
        "paper": record_text(calibration.verdicts(f"{NAME}.{PAPER_INIT_VARIANT}", *words)),
    }


def init_record_table() -> str:
    """Every claim's record over the calibration's runs under PyTorch's default
    initialisation (this page's quick scale) and under the GraSP code's (the
    :data:`PAPER_INIT_VARIANT` calibration): runs where it held, of all runs, and the chance
    that a fresh seed set confirms it."""
    base = calibration.load(NAME)
    variant = calibration.load(f"{NAME}.{PAPER_INIT_VARIANT}")
    if base is None or variant is None:
        raise FileNotFoundError("chapter 3's calibration or its paper-init variant is missing")
    other = {c["statement"]: c for c in variant["claims"]}
    rows = []
    for i, claim in enumerate(base["claims"], 1):
        mine = record_text(calibration.run_record(claim))
        twin = other.get(claim["statement"])
        theirs = record_text(calibration.run_record(twin)) if twin else "not measured"
        rows.append([str(i), claim["statement"], mine, theirs])
    header = ["claim", "statement", "PyTorch's default (this page)", "the GraSP code's"]
    return markdown_table(header, rows)


def flow_accuracy_pairs(
    results: Results, seed: int, sparsity: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient flow kept at initialisation and test accuracy (%) after training of the
    trained masks of one seed on the first network, at ``sparsity`` (``None``: every trained
    sparsity pooled): every method and sign variant trained there, not shuffled, the dense
    network and masks recorded at chance untrained (an emptied layer, flow 0 by
    construction) left out. Returns ``(flow, accuracy)`` in record order."""
    arch = arch_names(results.settings)[0]
    where = dict(experiment="train", arch=arch, seed=seed, shuffled=False)
    if sparsity is not None:
        where["sparsity"] = sparsity
    flow, acc = [], []
    for r in results.select(**where):
        if r["method"] == "dense" or not r["trained"]:
            continue
        flow.append(mask_record(results, r["method"], r["sparsity"], seed)["flow"])
        acc.append(100 * r["accuracy"])
    return np.array(flow, dtype=float), np.array(acc, dtype=float)


def flow_accuracy_correlation(results: Results, seed: int, sparsity: float | None = None) -> float:
    """Spearman's rank correlation (:func:`minipruner.book.claims.spearman`: the Pearson
    correlation of the ranks, tied values given their average rank, 0 when one side is
    constant) between gradient flow kept at initialisation and test accuracy after
    training, over the trained masks of one seed (:func:`flow_accuracy_pairs`) at
    ``sparsity``, or pooled over every trained sparsity (``None``: then sparsity drives
    both, which is why the claims measure it one sparsity at a time)."""
    flow, acc = flow_accuracy_pairs(results, seed, sparsity)
    return spearman(flow, acc)


def flow_accuracy_table(results: Results) -> str:
    """Per trained sparsity, and for every trained sparsity pooled: the trained masks of each
    seed and the rank correlation between gradient flow kept and test accuracy over them
    (:func:`flow_accuracy_correlation`, ties at average ranks), per seed and their mean;
    "—" where a seed has fewer than three trained masks."""
    seeds = results.settings["seeds"]
    rows = []
    for s in [*results.settings["trained_sparsities"], None]:
        counts = [flow_accuracy_pairs(results, seed, s)[0].size for seed in seeds]
        rho = [
            flow_accuracy_correlation(results, seed, s) if n >= 3 else None
            for seed, n in zip(seeds, counts, strict=True)
        ]
        values = [r for r in rho if r is not None]
        rows.append(
            [
                "all trained, pooled" if s is None else f"{s:.0%}",
                " / ".join(map(str, counts)),
                " / ".join("—" if r is None else f"{r:+.2f}" for r in rho),
                f"{np.mean(values):+.2f}" if len(values) == len(seeds) else "—",
            ]
        )
    header = [
        "sparsity",
        f"trained masks, seeds {', '.join(map(str, seeds))}",
        "rank correlation per seed",
        "mean",
    ]
    return markdown_table(header, rows)
