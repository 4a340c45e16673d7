"""Chapter 1's experiments: global vs layer-wise magnitude pruning, and distortion vs loss.

Two experiments:

- ``sweep``: train the network (cached), prune it once to each sparsity with global or
  layer-wise magnitude pruning, measure test accuracy, retrain with the mask fixed, measure
  again; one configuration per (seed, method, sparsity);
- ``distortion``: prune one layer at a time (magnitude or random mask) and record the
  relative Frobenius distortion ``||W - M⊙W||_F / ||W||_F`` beside the training-loss
  increase it causes; one configuration per layer.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from ...core.experiment import prune_and_measure
from ...core.masks import apply_masks, masks_from_scores, prunable
from ...core.models import get_model
from ...core.scale import by_scale, shifted_seeds
from ...core.scale import seed_offset as checked_offset
from ...core.train import evaluate
from ...experiments.protocol import training
from ...experiments.records import Results
from ...experiments.tables import markdown_table, mean_sd_cell
from ...methods import get_method, make_pruner
from ...methods.init_pruning import random_scores
from ...methods.magnitude import frobenius_distortion
from .. import calibration
from ..claims import Claim, exceeds, within
from . import load_data, network_args, rank_correlation, trained_network

VERSION = 2  # 2: random scores from NumPy, no longer aligned with the initial weights
GRID = ("seeds", "sparsities")  # enumerate configurations only
TITLE = "Magnitude pruning minimises a layer's distortion"
EXPLORER = "magnitude_explorer"  # its explorer in minipruner.book.explorers
HEADLINES = (
    ("Right after pruning at 98.0%", "more accurate"),
    ("After retraining at 99.0%", "more accurate"),
    ("rank correlation above 0.9",),
)
"""The claims (words of their statements) the README's summary table shows for this chapter."""
GLOBAL = "magnitude-global"
LAYER = "magnitude-layer"
METHODS = (GLOBAL, LAYER)
"""The page's two methods, as ids of :data:`minipruner.methods.METHODS` (results are keyed by
id; pages print :attr:`minipruner.methods.Method.label`)."""


def settings(scale: str, seed_offset: int | None = None) -> dict[str, Any]:
    """The chapter's settings at ``scale``: LeNet-300-100 on mnist-5k (quick) or the
    paper's FCN on MNIST with Adam (full)."""
    offset = checked_offset(seed_offset)  # added to every seed; None: $MINIPRUNER_SEED_OFFSET
    return {
        "seeds": shifted_seeds([0, 1, 2, 3, 4], offset),
        "seed_offset": offset,
        "sparsities": [0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995],
        "layer_sparsities": [0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.98],
        "dataset": by_scale("mnist-5k", "mnist", scale),
        "model": by_scale("lenet300100", "fcn", scale),
        "scale": scale,
        "train": by_scale(
            dict(epochs=15, lr=0.05, batch_size=64, schedule="cosine"),
            dict(optimizer="adam", lr=1.2e-3, batch_size=60, iterations=50_000),
            scale,
        ),
        "retrain": by_scale(
            dict(epochs=2, lr=0.01, batch_size=64),
            dict(optimizer="adam", lr=1.2e-3, batch_size=60, iterations=10_000),
            scale,
        ),
    }


def configurations(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """One ``sweep`` configuration per (seed, method, sparsity), one ``distortion``
    configuration per (seed, prunable layer)."""
    sweep = [
        {"experiment": "sweep", "seed": seed, "method": method, "sparsity": s}
        for seed in settings["seeds"]
        for method in METHODS
        for s in settings["sparsities"]
    ]
    layers = list(prunable(get_model(settings["model"])))
    distortion = [
        {"experiment": "distortion", "seed": seed, "layer": name}
        for seed in settings["seeds"]
        for name in layers
    ]
    return sweep + distortion


def model(settings: dict[str, Any], seed: int | None = None) -> torch.nn.Module:
    """The chapter's trained network for ``seed`` (trained once, then loaded from the cache)."""
    seed = settings["seeds"][0] if seed is None else seed  # the first seed by default
    return trained_network(settings, settings["scale"], seed)


def trained_networks(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The trained network of every seed (what every configuration of that seed prunes)."""
    return [network_args(settings, settings["scale"], seed) for seed in settings["seeds"]]


def config_trainings(settings: dict[str, Any], config: dict[str, Any]) -> list[dict[str, Any]]:
    """The full-scale cost of ``config``
    (:func:`~minipruner.experiments.protocol.config_trainings`): the retraining of the pruned
    network with ``settings["retrain"]``; none for the distortion experiment, which trains
    nothing."""
    if config["experiment"] == "distortion":
        return []
    return [training(settings["model"], settings["dataset"], settings["retrain"])]


def run(config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration (see the module docstring) and return its measurements."""
    train_data, test_data = load_data(settings["dataset"], settings["scale"])
    if config["experiment"] == "sweep":
        pruned = prune_and_measure(
            model(settings, config["seed"]),
            make_pruner(config["method"]),
            config["sparsity"],
            test_data,
            train_data,
            settings["retrain"],
            seed=config["seed"],
        )
        return pruned.record
    seed = config["seed"]
    net0 = model(settings, seed)
    base_loss = evaluate(net0, train_data).loss
    weight = prunable(net0)[config["layer"]]
    scores = {"magnitude": weight.abs(), "random": random_scores(net0, seed=seed)[config["layer"]]}
    rows = []
    for kind, score in scores.items():
        for s in settings["layer_sparsities"]:
            mask = masks_from_scores({config["layer"]: score}, s, scope="layer")
            net = copy.deepcopy(net0)
            apply_masks(net, mask)
            relative = frobenius_distortion(weight, mask[config["layer"]]) / weight.norm()
            loss_increase = evaluate(net, train_data).loss - base_loss
            rows.append(
                {
                    "kind": kind,
                    "sparsity": s,
                    "distortion": relative.item(),
                    "loss_increase": loss_increase,
                }
            )
    return {"rows": rows}


def correlations(results: Results, seed: int | None = None) -> dict[str, float]:
    """Per layer of one seed's network (the first seed's by default): the rank correlation
    of distortion and loss increase over all its rows (both mask kinds, every sparsity)."""
    seed = results.settings["seeds"][0] if seed is None else seed
    out = {}
    for r in results.select(experiment="distortion", seed=seed):
        out[r["layer"]] = rank_correlation(
            [x["distortion"] for x in r["rows"]], [x["loss_increase"] for x in r["rows"]]
        )
    return out


def _sweep(results: Results, key: str, method: str, sparsity: float) -> np.ndarray:
    """``key`` of one method at one sparsity, one entry per seed, in seed order."""
    return results.values(key, experiment="sweep", method=method, sparsity=sparsity)


def claims(results: Results) -> list[Claim]:
    """The chapter's claims (:mod:`minipruner.book.claims`), each judged over the seeds.

    Accuracies are in points and paired by seed (both methods prune the same trained
    network): global against layer-wise magnitude pruning right after pruning and after
    retraining, and global pruning against the dense network it came from. The layer-density
    claim takes, per seed, the smallest ratio of the kept fractions of consecutive layers
    (over every sparsity); it is above 1 when at every sparsity the first layer keeps the
    smallest fraction and the output layer the largest. The distortion claims take, per seed,
    the smallest rank correlation of distortion and loss increase over the layers, and the
    smallest margin by which a random mask raises the training loss more than the magnitude
    mask of the same layer and sparsity. Which claims are asserted is computed from the
    chapter's calibration (:func:`minipruner.book.calibration.apply`).
    """
    sparsities = results.settings["sparsities"]
    dense = _sweep(results, "acc_dense", GLOBAL, sparsities[0])
    found = []
    # (measurement, when, from which sparsity it is claimed)
    for key, when, start in (
        ("acc_pruned", "Right after pruning", 0.7),
        ("acc_retrained", "After retraining", 0.9),
    ):
        for s in (s for s in sparsities if s >= start):
            found.append(
                exceeds(
                    f"{when} at {s:.1%} sparsity, global magnitude pruning is more accurate "
                    "than layer-wise",
                    _sweep(results, key, GLOBAL, s),
                    _sweep(results, key, LAYER, s),
                    scale=100,
                )
            )
    found.append(
        within(
            f"Right after pruning at {sparsities[0]:.1%} sparsity, global and layer-wise "
            "magnitude pruning are within 1 point of each other",
            _sweep(results, "acc_pruned", GLOBAL, sparsities[0]),
            _sweep(results, "acc_pruned", LAYER, sparsities[0]),
            margin=1,
            scale=100,
        )
    )
    for s in (s for s in sparsities if s <= 0.9):
        found.append(
            within(
                f"After retraining at {s:.1%} sparsity, global and layer-wise magnitude "
                "pruning are within 1 point of each other",
                _sweep(results, "acc_retrained", GLOBAL, s),
                _sweep(results, "acc_retrained", LAYER, s),
                margin=1,
                scale=100,
            )
        )
    for key, when, checks in (
        ("acc_pruned", "without retraining", [(0.7, 1), (0.8, 1), (0.8, 2)]),
        ("acc_retrained", "after retraining", [(0.8, 1), (0.9, 1), (0.9, 2)]),
    ):
        for s, points in checks:
            found.append(
                exceeds(
                    f"Global magnitude pruning to {s:.0%} sparsity costs less than {points} "
                    f"point{'s' if points > 1 else ''} of the dense accuracy {when}",
                    _sweep(results, key, GLOBAL, s),
                    dense,
                    margin=-points,
                    scale=100,
                )
            )
    ratios = []
    for seed in results.settings["seeds"]:
        rows = [
            list(r["density"].values())
            for r in results.select(experiment="sweep", method=GLOBAL, seed=seed)
        ]
        ratios.append(min(b / a for row in rows for a, b in itertools.pairwise(row)))
    found.append(
        exceeds(
            "Global magnitude pruning keeps the smallest fraction in the first layer and the "
            "largest in the output layer, at every sparsity (effect: the smallest ratio of "
            "the kept fractions of consecutive layers)",
            ratios,
            margin=1,
            unit="×",
        )
    )
    seeds = results.settings["seeds"]
    found.append(
        exceeds(
            "Within each layer, relative distortion and training-loss increase have a rank "
            "correlation above 0.9 (effect: per seed, the smallest over the layers)",
            [min(correlations(results, seed).values()) for seed in seeds],
            margin=0.9,
            unit="ρ",
        )
    )
    gaps = []
    for seed in seeds:
        per_seed = []
        for r in results.select(experiment="distortion", seed=seed):
            by_kind = {
                kind: {x["sparsity"]: x["loss_increase"] for x in r["rows"] if x["kind"] == kind}
                for kind in ("magnitude", "random")
            }
            per_seed += [by_kind["random"][s] - by_kind["magnitude"][s] for s in by_kind["random"]]
        gaps.append(min(per_seed))
    found.append(
        exceeds(
            "In every layer and at every sparsity, the magnitude mask raises the training loss "
            "less than a random mask (effect: per seed, the smallest difference)",
            gaps,
            scale=1000,
            unit="millinats",
        )
    )
    return calibration.apply(results, found, VERSION)


def accuracy_figure(results: Results) -> Figure:
    """Test accuracy against weights kept, right after pruning and after retraining."""
    sparsities = results.settings["sparsities"]
    density = 100 * (1 - np.array(sparsities))
    dense = results.values("acc_dense", experiment="sweep", method=GLOBAL).mean()
    fig = Figure(figsize=(10, 3.5), layout="tight")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, key, title in zip(
        axes,
        ["acc_pruned", "acc_retrained"],
        ["right after pruning", "after retraining"],
        strict=True,
    ):
        for method in METHODS:
            entry = get_method(method)
            stats = [
                results.stat(key, experiment="sweep", method=method, sparsity=s) for s in sparsities
            ]
            mean, sd = np.array(stats).T
            ax.errorbar(
                density,
                100 * mean,
                yerr=100 * sd,
                marker="o",
                capsize=3,
                color=entry.colour,
                label=entry.label,
            )
        ax.axhline(100 * dense, color="gray", ls="--", lw=1, label="dense")
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("weights kept (%)")
        ax.set_title(title)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend()
    return fig


def layer_density_figure(results: Results) -> Figure:
    """Per-layer fraction kept by global magnitude pruning (seed 0) against the overall one."""
    sparsities = results.settings["sparsities"]
    density = 100 * (1 - np.array(sparsities))
    rows = [
        results.select(
            experiment="sweep", method=GLOBAL, seed=results.settings["seeds"][0], sparsity=s
        )[0]
        for s in sparsities
    ]
    fig = Figure(figsize=(5, 3.5), layout="tight")
    ax = fig.subplots()
    for name in rows[0]["density"]:
        ax.plot(density, [100 * r["density"][name] for r in rows], marker="o", label=name)
    ax.plot(density, density, "k--", lw=1, label="layer-wise (every layer)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("weights kept overall (%)")
    ax.set_ylabel("weights kept in the layer (%)")
    ax.legend(fontsize=8)
    return fig


def distortion_figure(results: Results) -> Figure:
    """Per layer: training-loss increase against relative distortion, magnitude vs random."""
    layers = results.select(experiment="distortion", seed=results.settings["seeds"][0])
    corr = correlations(results)
    fig = Figure(figsize=(4 * len(layers), 3.2), layout="tight")
    axes = fig.subplots(1, len(layers), sharey=True, squeeze=False)[0]
    for ax, r in zip(axes, layers, strict=True):
        for kind, marker in (("magnitude", "o"), ("random", "x")):
            pts = np.array(
                [(x["distortion"], x["loss_increase"]) for x in r["rows"] if x["kind"] == kind]
            )
            ax.plot(pts[:, 0], pts[:, 1], marker=marker, ls="-", lw=0.8, label=f"{kind} mask")
        ax.set_title(f"{r['layer']}  (rank corr. {corr[r['layer']]:.2f})")
        ax.set_xlabel("relative Frobenius distortion")
        ax.set_yscale("symlog", linthresh=1e-3)
    axes[0].set_ylabel("training-loss increase")
    axes[0].legend()
    return fig


def figures(results: Results) -> dict[str, Figure]:
    """The chapter's three plots."""
    return {
        "accuracy": accuracy_figure(results),
        "layer_density": layer_density_figure(results),
        "distortion": distortion_figure(results),
    }


def table(results: Results) -> str:
    """Test accuracy (%, mean ± sample sd over seeds) per sparsity, before and after retraining."""
    rows = []
    for s in results.settings["sparsities"]:
        cells = [
            mean_sd_cell(results.values(key, experiment="sweep", method=m, sparsity=s))
            for m in METHODS
            for key in ("acc_pruned", "acc_retrained")
        ]
        rows.append([f"{s:.1%}", *cells])
    whens = ("pruned", "retrained")
    header = ["sparsity", *(f"{get_method(m).label}, {w}" for m in METHODS for w in whens)]
    return markdown_table(header, rows)
