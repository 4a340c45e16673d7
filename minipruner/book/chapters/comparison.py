"""The comparison chapter, "Which method when?": every method of the book on one trained network,
the same sparsities and the same examples, with the cost of each method measured.

The network is chapter 4's MLPNet (784-40-20-10, no bias), trained as chapter 4 trains it (the
paper's kind of fit), small enough for the second-order methods to use the full empirical
Fisher; CBS is chapter 4's, the search as its authors released it; Wanda and SparseGPT are
chapter 7's layer-wise methods, which prune every Linear layer to the same fraction, calibrated
on the batch's inputs. For each seed the trained network (cached) is pruned once to each
sparsity by each method; we measure the test accuracy right after pruning, the wall time and
peak memory of choosing the mask (and, for WoodFisher, CBS and SparseGPT, of computing the
weight update), and the test accuracy after a short retraining with the mask fixed. Every
method that looks at data sees the same class-balanced batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import Dataset

from ...core.data import class_balanced_batch
from ...core.experiment import prune_and_measure
from ...core.masks import Pruner, masks_from_scores, normalize_scores
from ...core.scale import by_scale, shifted_seeds
from ...core.scale import seed_offset as checked_offset
from ...experiments.protocol import training
from ...experiments.records import Results
from ...experiments.tables import markdown_table
from ...methods import get_method
from ...methods.lookahead import lookahead_scores, normalized_lookahead_scores
from ...methods.magnitude import magnitude_scores
from ...methods.structured import neuron_masks  # noqa: F401  (importable from here, as before)
from .. import calibration
from ..claims import TIMING, Claim, exceeds, within
from . import load_data, network_args, trained_network
from .obs import FITS, paper_pair
from .obs import settings as obs_settings

VERSION = 3  # 3: chapter 4's brief training, damping 1e-3 and released CBS search
GRID = ("seeds", "sparsities", "methods")  # enumerate configurations only
TITLE = "Which method when?"
HEADLINES = (
    ("at 90% without retraining, the better of WoodFisher and CBS",),
    ("after retraining, global magnitude pruning is less than 2 points",),
    ("WoodFisher adds more than 100 MB",),
)
"""The claims (words of their statements) the README's summary table shows for this chapter."""


def settings(scale: str, seed_offset: int | None = None) -> dict[str, Any]:
    """Chapter 4's MLPNet, training, damping and CBS search, on mnist-5k (quick) or MNIST
    (full); 1,000 gradients (quick) or the CBS paper's 10,000 (full)."""
    offset = checked_offset(seed_offset)  # added to every seed; None: $MINIPRUNER_SEED_OFFSET
    return {
        "seeds": shifted_seeds(by_scale([0, 1, 2], [0, 1, 2, 3, 4], scale), offset),
        "seed_offset": offset,
        "sparsities": [0.5, 0.8, 0.9, 0.95, 0.98],
        "methods": list(METHODS),
        "dataset": by_scale("mnist-5k", "mnist", scale),
        "model": "mlpnet",
        "scale": scale,
        "train": by_scale(FITS["brief"], FITS["long"], scale),
        "retrain": dict(epochs=2, lr=0.01, momentum=0.9, batch_size=64),
        "per_class": by_scale(100, 1000, scale),
        "fisher": dict(damp=1e-3, relative=False),
        "cbs": obs_settings(scale, offset)["cbs"],  # the released search and its MLPNet parameters
        "grasp_temperature": 200.0,
    }


def configurations(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """One configuration per (seed, method, sparsity)."""
    return [
        {"seed": seed, "method": method, "sparsity": s}
        for seed in settings["seeds"]
        for method in settings["methods"]
        for s in settings["sparsities"]
    ]


# ------------------------------------------------------------------ the methods
# The page's methods are entries of minipruner.methods, by id: one pruner
# (model, sparsity, batch) -> masks each, built with this page's options.

MAG, LAYER_MAG = "magnitude-global", "magnitude-layer"
NORMALISED_MP = "magnitude-global-normalised"
"""Global magnitude pruning as the LAP paper's code normalises it (``mp_global_normalize``):
``|w| / ||W||_F`` per layer."""
LAP = "lap-global"
"""Global LAP as the LAP paper's code runs it (``lap_global_normalize``): each layer's squared
lookahead scores divided by their L2 norm, which ranks the weights by ``L / ||L||_4``
(:func:`minipruner.methods.lookahead.normalized_lookahead_scores`)."""
SNIP, GRASP, WF, CBS, NEURONS = "snip", "grasp", "wf", "cbs", "neurons-l1"
WANDA, SPARSEGPT = "wanda", "sparsegpt"
LAYERWISE = (WANDA, SPARSEGPT)
"""Chapter 7's layer-wise methods: every Linear layer pruned to the same fraction (the sparsity
is per layer, like layer-wise magnitude pruning's, not one global threshold), one layer after
the other in forward order, each calibrated on the inputs it receives from the batch with the
earlier layers already pruned. Wanda keeps the largest ``|W_ij| ||X_j||_2`` of each output row;
SparseGPT chooses its mask by blocks of columns and reconstructs the kept weights
(``H = 2 X X^T``). Both take the papers' defaults (:func:`pruner`)."""
AHEAD = LAYERWISE
"""The page's methods derived in a later chapter (7): the page says so where it shows them."""
METHODS = ("random", LAYER_MAG, MAG, NORMALISED_MP, LAP, SNIP, GRASP, WF, CBS, NEURONS, *LAYERWISE)
"""The methods compared, as ids of :data:`minipruner.methods.METHODS`: results are keyed by
id (the settings' ``"methods"``, in :data:`GRID`: adding one computes only its
configurations); pages print :attr:`~minipruner.methods.Method.label` and draw
:attr:`~minipruner.methods.Method.colour`."""
LINESTYLES = {LAYER_MAG: "--", NORMALISED_MP: ":", "random": ":", NEURONS: "-.", WANDA: "--"}
LINESTYLES[SPARSEGPT] = "--"
"""Line styles of the accuracy figure other than solid (colours are the method table's, one per
method). The layer-wise methods of chapter 7, which prune every layer to the same fraction, are
also dashed with square markers (:data:`MARKERS`) and hatched in the cost figure
(:data:`HATCHES`), so the two kinds of allocation read apart."""
MARKERS = dict.fromkeys(LAYERWISE, "s")
"""Markers of the accuracy figure other than ``"o"``."""
HATCHES = dict.fromkeys(LAYERWISE, "//")
"""Hatching of the cost figure's bars (none for the other methods)."""


def label(method: str) -> str:
    """What the page prints for ``method`` (an id of :data:`METHODS`): its table label."""
    return get_method(method).label


def pruner(settings: dict[str, Any], method: str, seed: int, train_data: Dataset) -> Pruner:
    """The pruner of ``method`` (an id of :data:`METHODS`) with this page's options: the
    seed (random scores, CBS's starts), GraSP's temperature, the Fisher's damping, CBS's
    search parameters and the training set whose loss picks CBS's iterate. Each method
    takes the options it declares (:attr:`minipruner.methods.Method.options`). The
    layer-wise methods (:data:`LAYERWISE`) take none of them: their defaults are the papers'
    (unstructured; Wanda's per-row groups; SparseGPT's damping ``0.01 mean(diag H)`` and
    blocks of 128 columns, not the Fisher's absolute damping), each layer calibrated in turn."""
    entry = get_method(method)
    if method in LAYERWISE:
        return entry.pruner()
    available = {
        "seed": seed,
        "temperature": settings["grasp_temperature"],
        "select_data": train_data,
        **settings["fisher"],
        **settings["cbs"],
    }
    return entry.pruner(**{k: v for k, v in available.items() if k in entry.options})


def model(settings: dict[str, Any], seed: int | None = None) -> nn.Module:
    """The trained MLPNet of ``seed`` (chapter 4's network; trained once, then cached)."""
    seed = settings["seeds"][0] if seed is None else seed  # the first seed by default
    return trained_network(settings, settings["scale"], seed)


def trained_networks(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The trained MLPNet of every seed (what every configuration of that seed prunes)."""
    return [network_args(settings, settings["scale"], seed) for seed in settings["seeds"]]


def config_trainings(settings: dict[str, Any], config: dict[str, Any]) -> list[dict[str, Any]]:
    """The full-scale cost of ``config``
    (:func:`~minipruner.experiments.protocol.config_trainings`): the retraining of the pruned
    MLPNet with ``settings["retrain"]``."""
    return [training(settings["model"], settings["dataset"], settings["retrain"])]


def run(config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Prune the seed's trained network with one method at one sparsity: accuracy before
    and after retraining, achieved sparsity, and the time and peak memory of pruning."""
    train_data, test_data = load_data(settings["dataset"], settings["scale"])
    net = model(settings, config["seed"])
    device = next(net.parameters()).device
    x, y = class_balanced_batch(train_data, settings["per_class"], seed=config["seed"])
    x, y = x.to(device), y.to(device)
    pruned = prune_and_measure(
        net,
        pruner(settings, config["method"], config["seed"], train_data),
        config["sparsity"],
        test_data,
        train_data,
        settings["retrain"],
        batch=(x, y),
        seed=config["seed"],
        measure_cost=True,
    )
    return {
        **pruned.record,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }


# ------------------------------------------------------------------ summaries and plots


def mean_accuracy(results: Results, method: str, sparsity: float, key: str = "acc_pruned") -> float:
    """Mean over seeds of ``key`` (a test accuracy in [0, 1])."""
    return results.stat(key, method=method, sparsity=sparsity)[0]


def ranking(results: Results, sparsity: float, key: str = "acc_pruned") -> list[str]:
    """The methods ordered by mean ``key`` at ``sparsity``, best first."""
    methods = results.settings["methods"]
    return sorted(methods, key=lambda m: -mean_accuracy(results, m, sparsity, key))


def cost(results: Results, method: str) -> dict[str, float]:
    """Median over every configuration of ``method`` of the pruning time (s) and peak
    memory (MB): the median, because a shared machine makes single timings noisy."""
    rows = results.select(method=method)
    mb = [r["prune_peak_mb"] for r in rows if r["prune_peak_mb"] is not None]
    return {
        "seconds": float(np.median([r["prune_seconds"] for r in rows])),
        "peak_mb": float(np.median(mb)) if mb else float("nan"),
    }


NORMALISATIONS = {
    "lap": "LAP, L / ||L||_4 (the LAP code's rule)",
    "lap_l2": "LAP, L / ||L||_2 (not the code's rule)",
    "magnitude": "magnitude, |w| / ||W||_F (the LAP code's rule)",
}
"""The per-layer normalisations :func:`normalisation_densities` compares, with what they are."""


def normalisation_densities(net: nn.Module, sparsity: float = 0.9) -> dict[str, list[float]]:
    """Per-layer densities (fraction of weights kept, in forward order) that one global
    threshold at ``sparsity`` leaves under three per-layer normalisations, ``net`` unchanged
    (keys of :data:`NORMALISATIONS`):

    * ``"lap"``: the LAP paper's code (``lap_global_normalize``), the squared lookahead score
      over its 2-norm, ``L^2 / ||L^2||_2``, which ranks as ``L / ||L||_4`` (this page's
      "LAP (global, normalised)");
    * ``"lap_l2"``: the unsquared lookahead score over its 2-norm, ``L / ||L||_2`` (not the
      paper's rule; what this book ran before);
    * ``"magnitude"``: ``|w| / ||W||_F``, the code's ``mp_global_normalize`` (this page's
      "magnitude (global, normalised)")."""
    scores = {
        "lap": normalized_lookahead_scores(net),
        "lap_l2": normalize_scores(lookahead_scores(net)),
        "magnitude": magnitude_scores(net, normalize=True),
    }
    out = {}
    for rule, score in scores.items():
        masks = masks_from_scores(score, sparsity)
        out[rule] = [float(m.double().mean()) for m in masks.values()]
    return out


def global_allocation(net: nn.Module, sparsity: float) -> dict[str, float]:
    """Per layer (weight name, forward order), the fraction of weights removed by global
    magnitude pruning of ``net`` at ``sparsity`` (one threshold on ``|w|`` over the network),
    ``net`` unchanged: the per-layer sparsities ``s_l = 1 - |kept_l| / |W_l|`` whose mean,
    weighted by layer size, is ``sparsity``."""
    masks = masks_from_scores(magnitude_scores(net), sparsity)
    return {n: 1.0 - float(m.double().mean()) for n, m in masks.items()}


ALLOCATED = (MAG, *LAYERWISE)
"""The methods :func:`at_global_allocation` compares (global magnitude pruning first)."""


def at_global_allocation(settings: dict[str, Any], seed: int, sparsity: float) -> dict[str, float]:
    """Test accuracy (in [0, 1], right after pruning, no retraining) of the seed's trained
    network pruned by each method of :data:`ALLOCATED` to the per-layer sparsities that global
    magnitude pruning leaves at ``sparsity`` (:func:`global_allocation`), the layer-wise
    methods calibrated on the page's batch as in :func:`run`. Global magnitude pruning's
    accuracy is its own; the layer-wise methods keep their rule inside each layer (Wanda's
    rows, SparseGPT's blocks and reconstruction) but not their uniform fraction per layer.
    Computed when called (seconds), not stored."""
    train_data, test_data = load_data(settings["dataset"], settings["scale"])
    net = model(settings, seed)
    device = next(net.parameters()).device
    x, y = class_balanced_batch(train_data, settings["per_class"], seed=seed)
    batch = (x.to(device), y.to(device))
    allocation = global_allocation(net, sparsity)
    out = {}
    for method in ALLOCATED:
        target = sparsity if method == MAG else allocation
        done = prune_and_measure(
            net, pruner(settings, method, seed, train_data), target, test_data, batch=batch
        )
        out[method] = done.record["acc_pruned"]
    return out


def mean_gaps(results: Results, a: str, b: str, key: str = "acc_pruned") -> dict[float, float]:
    """Per listed sparsity, ``a``'s accuracy minus ``b``'s, mean over seeds, in points."""
    return {
        s: 100 * (mean_accuracy(results, a, s, key) - mean_accuracy(results, b, s, key))
        for s in results.settings["sparsities"]
    }


def _join(items: list[str]) -> str:
    if not items:
        return "no listed sparsity"
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def lap_against_normalised(results: Results, named: dict[str, Claim]) -> dict[str, str]:
    """Where global LAP fell below and rose above normalised global magnitude pruning without
    retraining (mean over seeds), as text for the page: ``{"below": ..., "above": ...}``,
    e.g. ``"90 % (by 2.2 points) and 95 % (by 1.2)"``. A sparsity where the claim that the two
    are within 1.5 points (``named["lap_mag_level_<s>"]``) held is counted as level, in
    neither list."""
    below, above = [], []
    for s, gap in mean_gaps(results, LAP, NORMALISED_MP).items():
        level = named.get(f"lap_mag_level_{s:g}")
        if (level is not None and level.held) or gap == 0:
            continue
        side = below if gap < 0 else above
        side.append((s, abs(gap)))

    def text(items: list[tuple[float, float]]) -> str:
        return _join(
            [
                f"{100 * s:.0f} % (by {g:.1f} points)"
                if i == 0
                else f"{100 * s:.0f} % (by {g:.1f})"
                for i, (s, g) in enumerate(items)
            ]
        )

    return {"below": text(below), "above": text(above)}


def accuracy_figure(results: Results) -> Figure:
    """Test accuracy against weights kept for every method, right after one-shot pruning
    and after retraining; mean ± sample sd over seeds."""
    sparsities = results.settings["sparsities"]
    kept = 100 * (1 - np.array(sparsities))
    dense = results.values("acc_dense", method=results.settings["methods"][0]).mean()
    fig = Figure(figsize=(12, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, key, title in zip(
        axes,
        ("acc_pruned", "acc_retrained"),
        ("one-shot, no retraining", "after retraining"),
        strict=True,
    ):
        for method in results.settings["methods"]:
            stats = [results.stat(key, method=method, sparsity=s) for s in sparsities]
            mean, sd = np.array(stats).T
            ax.errorbar(
                kept,
                100 * mean,
                yerr=100 * sd,
                marker=MARKERS.get(method, "o"),
                ms=4,
                capsize=2,
                color=get_method(method).colour,
                ls=LINESTYLES.get(method, "-"),
                label=label(method),
            )
        ax.axhline(100 * dense, color="k", lw=0.8, ls="--", label="dense")
        ax.set_xscale("log")
        ax.set_xticks(kept, [f"{k:g}" for k in kept])
        ax.minorticks_off()
        ax.invert_xaxis()
        ax.set_xlabel("weights kept (%)")
        ax.set_title(title)
    axes[0].set_ylabel("test accuracy (%)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right center", fontsize=8)
    return fig


def cost_figure(results: Results) -> Figure:
    """Median wall time (log scale) and peak memory added (linear scale) of one pruning
    call, per method, each bar labelled with its value."""
    methods = results.settings["methods"]
    costs = [cost(results, m) for m in methods]
    fig = Figure(figsize=(11, 3.4), layout="tight")
    axes = fig.subplots(1, 2, sharey=True)
    colors = [get_method(m).colour for m in methods]
    names = [label(m) for m in methods]
    seconds = [c["seconds"] for c in costs]
    hatches = [HATCHES.get(m, "") for m in methods]
    axes[0].barh(names, seconds, color=colors, hatch=hatches)
    axes[0].set_xscale("log")
    axes[0].set_xlim(min(seconds) / 2, max(seconds) * 20)
    axes[0].set_xlabel("time to prune (s, log scale)")
    memory = [0.0 if np.isnan(c["peak_mb"]) else c["peak_mb"] for c in costs]
    axes[1].barh(names, memory, color=colors, hatch=hatches)
    axes[1].set_xlim(0, max(max(memory), 1) * 1.3)
    axes[1].set_xlabel("peak memory added (MB)")
    for i, (t, m, c) in enumerate(zip(seconds, memory, costs, strict=True)):
        axes[0].text(t * 1.15, i, f"{t:.2g} s", va="center", fontsize=8)
        text = "not measured" if np.isnan(c["peak_mb"]) else ("< 1 MB" if m < 1 else f"{m:.0f} MB")
        axes[1].text(m + max(memory) * 0.02, i, text, va="center", fontsize=8)
    axes[0].invert_yaxis()
    return fig


def figures(results: Results) -> dict[str, Figure]:
    """The chapter's two plots: accuracy and cost."""
    return {"accuracy": accuracy_figure(results), "cost": cost_figure(results)}


def table(results: Results) -> str:
    """Per method: test accuracy (%, mean over seeds) at each sparsity as ``one-shot →
    retrained``, and the median time and peak memory of pruning."""
    sparsities = results.settings["sparsities"]
    rows = []
    for m in results.settings["methods"]:
        cells = [
            f"{100 * mean_accuracy(results, m, s):.1f} → "
            f"{100 * mean_accuracy(results, m, s, 'acc_retrained'):.1f}"
            for s in sparsities
        ]
        c = cost(results, m)
        memory = "< 1" if c["peak_mb"] < 1 else f"{c['peak_mb']:.0f}"
        if c["peak_mb"] != c["peak_mb"]:
            memory = "not measured"
        rows.append(
            [f"{label(m)} (ch. {get_method(m).chapter})", *cells, f"{c['seconds']:.2g}", memory]
        )
    header = ["method", *[f"{s:.0%}" for s in sparsities], "time (s)", "memory (MB)"]
    return markdown_table(header, rows)


# ------------------------------------------------------------------ claims


def _per_seed(
    results: Results, method: str, sparsity: float, key: str = "acc_pruned"
) -> np.ndarray:
    """``key`` of ``method`` at ``sparsity``, one entry per seed (in seed order)."""
    return results.values(key, method=method, sparsity=sparsity)


def _cbs_paper(sparsity: float, a: str = "CBS", b: str = "WF") -> str:
    """What the CBS paper reports for ``a`` and ``b`` on MLPNet at ``sparsity`` (one-shot,
    MNIST, 10,000 gradients; chapter 4's :func:`~minipruner.book.chapters.obs.paper_pair`), if it
    reports both."""
    pair = paper_pair(a, b, sparsity)
    return f"{pair}, CBS paper, MNIST" if pair else ""


def _fair_sparsity(results: Results, sparsity: float) -> float:
    """The smallest listed sparsity at or above what neuron pruning achieved when asked for
    ``sparsity`` (largest over seeds), where global magnitude pruning removes at least as many
    weights."""
    achieved = _per_seed(results, NEURONS, sparsity, "achieved_sparsity").max()
    listed = [t for t in results.settings["sparsities"] if t >= achieved - 1e-9]
    return min(listed) if listed else max(results.settings["sparsities"])


def named_claims(results: Results) -> dict[str, Claim]:
    """The chapter's claims by short name (see :func:`claims`), with their calibrated power;
    which are asserted is computed (:func:`minipruner.book.calibration.apply`)."""
    measured = _measured_claims(results)
    judged = calibration.apply(results, list(measured.values()), VERSION)
    return dict(zip(measured, judged, strict=True))


def _measured_claims(results: Results) -> dict[str, Claim]:
    sparsities = results.settings["sparsities"]
    methods = results.settings["methods"]
    mag = MAG
    second = (WF, CBS)
    out: dict[str, Claim] = {}

    def acc(method: str, s: float, key: str = "acc_pruned") -> np.ndarray:
        return _per_seed(results, method, s, key)

    def smallest(a: str, b: str, ss: list[float], key: str = "acc_pruned") -> np.ndarray:
        """Per seed, the smallest accuracy lead of ``a`` over ``b`` over ``ss``."""
        return np.min([acc(a, s, key) - acc(b, s, key) for s in ss], 0)

    def best_other(s: float, exclude: tuple[str, ...], key: str = "acc_pruned") -> np.ndarray:
        """Per seed, the best accuracy among the methods not in ``exclude``."""
        return np.max([acc(m, s, key) for m in methods if m not in exclude], 0)

    def beats(key: str, statement: str, a: Any, b: Any = None, margin: float = 0.0, **kw):
        out[key] = exceeds(statement, a, b, margin, scale=100, **kw)

    def level(key: str, statement: str, a: Any, b: Any, margin: float, **kw):
        out[key] = within(statement, a, b, margin, scale=100, **kw)

    def pct(ss: list[float]) -> str:
        return f"{min(ss):.0%}" if len(ss) == 1 else f"{min(ss):.0%} to {max(ss):.0%}"

    from80 = [s for s in sparsities if s >= 0.8]
    from90 = [s for s in sparsities if s >= 0.9]
    to95 = [s for s in sparsities if s <= 0.95]
    # 1. without retraining, the second-order methods lead
    for s in from80:
        lead = np.max([acc(m, s) for m in second], 0) - best_other(s, second)
        beats(
            f"second_lead_{s:g}",
            f"at {s:.0%} without retraining, the better of WoodFisher and CBS beats every "
            "other method (per seed)",
            lead,
        )
    beats(
        "wf_first_order",
        f"at {pct(from90)} without retraining, WoodFisher beats every method but CBS "
        "(smallest lead over these sparsities)",
        np.min([acc(WF, s) - best_other(s, second) for s in from90], 0),
    )
    # 2. global beats layer-wise magnitude pruning
    if 0.8 in sparsities:
        beats(
            "global_layer_0.8",
            "at 80% without retraining, global magnitude pruning beats layer-wise magnitude "
            "pruning",
            acc(mag, 0.8),
            acc(LAYER_MAG, 0.8),
        )
    beats(
        f"global_layer_from_{min(from90):g}",
        f"at {pct(from90)} without retraining, global magnitude pruning beats layer-wise "
        "magnitude pruning by more than 10 points (smallest lead)",
        smallest(mag, LAYER_MAG, from90),
        margin=10,
    )
    # 3. retraining erases most differences
    shortfall = np.min(
        [acc(mag, s, "acc_retrained") - best_other(s, (mag,), "acc_retrained") for s in to95], 0
    )
    for margin in (1, 2):
        beats(
            f"retrained_level_{margin}",
            f"after retraining, global magnitude pruning is less than {margin} point"
            f"{'s' if margin > 1 else ''} below the best other method at {pct(to95)} "
            "(per seed, largest shortfall)",
            shortfall,
            margin=-margin,
        )
    # 4. the second-order methods cost orders of magnitude more
    cheap = results.select(method=mag)
    cheap_t = np.array([r["prune_seconds"] for r in cheap])
    for m in second:
        t = np.array([r["prune_seconds"] for r in results.select(method=m)])
        out[f"time_{label(m)}"] = exceeds(  # short names as before: time_WoodFisher, time_CBS
            f"{label(m)} takes more than 100 times as long as global magnitude pruning "
            "(per seed and sparsity)",
            np.log10(t / cheap_t),
            margin=2,
            unit="log10(time ratio)",
            over=TIMING,  # this machine's clock: reported, never asserted
        )
    if all(r["prune_peak_mb"] is not None for r in results.records):
        for m in second:
            out[f"memory_{label(m)}"] = exceeds(
                f"{label(m)} adds more than 100 MB of memory (per seed and sparsity)",
                [r["prune_peak_mb"] for r in results.select(method=m)],
                margin=100,
                unit="MB",
            )
        out["memory_magnitude"] = exceeds(
            "global magnitude pruning adds less than 1 MB of memory (per seed and sparsity)",
            [1 - r["prune_peak_mb"] for r in cheap],
            margin=0,
            unit="MB (1 MB minus the peak)",
        )
    # 5. at-initialisation criteria on a trained network
    beats(
        "SNIP_below_from_0.8",
        f"at {pct(from80)} without retraining, SNIP (scoring the trained network) is below "
        "global magnitude pruning (smallest gap)",
        smallest(mag, SNIP, from80),
    )
    from95 = [s for s in sparsities if s >= 0.95]
    beats(
        f"SNIP_below_from_{min(from95):g}",
        f"at {pct(from95)} without retraining, SNIP (scoring the trained network) is below "
        "global magnitude pruning (smallest gap)",
        smallest(mag, SNIP, from95),
    )
    beats(
        "GraSP_below",
        f"at {pct(to95)} without retraining, GraSP (scoring the trained network) is below "
        "global magnitude pruning (mean gap over these sparsities)",
        np.mean([acc(mag, s) - acc(GRASP, s) for s in to95], 0),
    )
    beats(
        "GraSP_far_below",
        f"at {pct(to95)} without retraining, GraSP is more than 20 points below global "
        "magnitude pruning (smallest gap)",
        smallest(mag, GRASP, to95),
        margin=20,
    )
    for s in sparsities:
        if s > max(to95):
            beats(
                f"GraSP_far_below_{s:g}",
                f"at {s:.0%} without retraining, GraSP is more than 20 points below global "
                "magnitude pruning",
                acc(mag, s),
                acc(GRASP, s),
                margin=20,
            )
    # 6. whole neurons cost more than single weights
    for key, when, margin in (
        ("acc_pruned", "without retraining", 10),
        ("acc_retrained", "after retraining", 5),
    ):
        beats(
            f"neurons_{key}",
            f"at {pct(from80)} {when}, neuron pruning is more than {margin} points below global "
            "magnitude pruning at the next listed sparsity at or above the one it achieved "
            "(smallest gap)",
            np.min(
                [acc(mag, _fair_sparsity(results, s), key) - acc(NEURONS, s, key) for s in from80],
                0,
            ),
            margin=margin,
        )
    # 7. cheap criteria against the second-order ones, and CBS against WoodFisher
    for s in from90:
        beats(
            f"wf_mag_{s:g}",
            f"WoodFisher is more than 2 points ahead of global magnitude pruning at {s:.0%} "
            "without retraining",
            acc(WF, s),
            acc(mag, s),
            margin=2,
            paper=_cbs_paper(s, "WF", "MP"),
        )
    for s in sparsities:
        if s <= 0.9:
            level(
                f"cbs_wf_level_{s:g}",
                f"CBS is within 1 point of WoodFisher at {s:.0%} without retraining",
                acc(CBS, s),
                acc(WF, s),
                1,
                paper=_cbs_paper(s),
            )
        else:
            beats(
                f"cbs_wf_{s:g}",
                f"CBS beats WoodFisher at {s:.0%} without retraining",
                acc(CBS, s),
                acc(WF, s),
                paper=_cbs_paper(s),
            )
    # LAP against magnitude pruning on the same footing: both normalised per layer before the
    # global threshold, as the LAP paper's code does for its global experiments (LAP: squared
    # score over its L2 norm, i.e. L / ||L||_4; magnitude: |w| / ||W||_F)
    norm = NORMALISED_MP
    for s in sparsities:
        if s <= 0.8:
            level(
                f"lap_mag_level_{s:g}",
                f"global LAP is within 1.5 points of normalised global magnitude pruning at "
                f"{s:.0%} without retraining",
                acc(LAP, s),
                acc(norm, s),
                1.5,
            )
        else:
            beats(
                f"lap_mag_{s:g}",
                f"global LAP beats normalised global magnitude pruning at {s:.0%} without "
                "retraining (the LAP paper's direction)",
                acc(LAP, s),
                acc(norm, s),
            )
    for s in sparsities:
        level(
            f"norm_mag_level_{s:g}",
            f"normalised global magnitude pruning is within 1.5 points of plain global "
            f"magnitude pruning at {s:.0%} without retraining",
            acc(norm, s),
            acc(mag, s),
            1.5,
        )
    # 9. chapter 7's layer-wise methods, every layer pruned to the same fraction
    if all(m in methods for m in LAYERWISE):
        low = min(sparsities)
        for a, b, name, short in (
            (SPARSEGPT, LAYER_MAG, "layer-wise magnitude pruning", "sgpt_layer"),
            (WANDA, LAYER_MAG, "layer-wise magnitude pruning", "wanda_layer"),
            (SPARSEGPT, WANDA, "Wanda", "sgpt_wanda"),
        ):
            beats(
                f"{short}_{low:g}",
                f"at {low:.0%} without retraining, {label(a)} beats {name} (every layer pruned "
                f"to {low:.0%} by both)",
                acc(a, low),
                acc(b, low),
            )
        beats(
            f"global_layerwise_from_{min(from80):g}",
            f"at {pct(from80)} without retraining, global magnitude pruning beats the better of "
            "Wanda and SparseGPT by more than 10 points (smallest lead)",
            np.min([acc(mag, s) - np.maximum(acc(WANDA, s), acc(SPARSEGPT, s)) for s in from80], 0),
            margin=10,
        )
        fast = np.array([r["prune_seconds"] for r in results.select(method=SPARSEGPT)])
        slow = np.array([r["prune_seconds"] for r in results.select(method=WF)])
        out["time_SparseGPT"] = exceeds(
            "WoodFisher takes more than 10 times as long as SparseGPT (per seed and sparsity)",
            np.log10(slow / fast),
            margin=1,
            unit="log10(time ratio)",
            over=TIMING,  # this machine's clock: reported, never asserted
        )
    return out


def claims(results: Results) -> list[Claim]:
    """The chapter's measured claims, each judged over seeds (:mod:`minipruner.book.claims`;
    methods share each seed's trained network, so accuracies are paired by seed, in points):
    which methods lead without retraining, global against layer-wise magnitude pruning,
    global magnitude pruning against the best method after retraining, the cost of the
    second-order methods (time ratio to global magnitude pruning per configuration, memory
    added), SNIP and GraSP on a trained network, neuron pruning against magnitude pruning
    that removes at least as many weights, and WoodFisher, CBS and LAP against global
    magnitude pruning, and chapter 7's layer-wise methods (SparseGPT and Wanda against
    layer-wise magnitude pruning and each other at the lowest sparsity, global magnitude
    pruning against both from 80 %, WoodFisher's time against SparseGPT's). Claims over
    several sparsities use, per seed, the smallest lead over them. Which claims are asserted
    is computed from the chapter's calibration (at the quick scale only: the full scale may
    run on a GPU)."""
    return list(named_claims(results).values())
