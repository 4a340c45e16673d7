"""Chapter 3's experiments: pruning at initialisation with GraSP, SNIP, random and magnitude.

Every method scores the weights of a freshly initialised network once (the network of one
seed, in train mode, data-driven methods on a class-balanced batch of ``per_class`` training
examples per class, GraSP at ``temperature``), and one global threshold keeps the highest
scores. Besides the four methods of :data:`minipruner.methods.init_pruning.METHODS`, two variants of
GraSP's sign are measured: the opposite sign (``-theta * Hg``) and ``|theta * Hg|``.

Two experiments:

- ``masks``: measure a mask without training it, on the first network of the settings: the
  weights it keeps in each layer, the layers it empties, the output channels it keeps alive
  (as chosen and after the layer-wise shuffle), and the gradient flow ``G = |g|^2`` it keeps
  (``G`` after pruning over ``G`` before, at temperature 1, on a class-balanced batch that is
  not the scoring batch); one configuration per (seed, method, sparsity);
- ``train``: prune the initial network (sparsity 0: the dense network), optionally shuffle
  each layer's mask, train the survivors with the mask fixed and measure test accuracy; one
  configuration per (network, seed, method, sparsity, shuffled). A mask that empties a layer
  of a plain chain (no skip connections) disconnects the network, which then predicts one
  class for every input: it is recorded at chance accuracy without spending a training run.

Why one module of this length: a reader maps chapter 3 to this module and to
:mod:`minipruner.methods.init_pruning` (the methods). Besides the two experiments it holds what the
page shows from stored results alone (three figures, nine tables and 30 claims); they read
the same few accessors, which is why they are not split across files.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.figure import Figure
from torch import Tensor, nn
from torch.utils.data import Dataset

from ...core.data import class_balanced_batch, dataset_labels
from ...core.masks import (
    apply_masks,
    fed_units,
    masks_from_scores,
    prunable_modules,
    weight_parameter,
)
from ...core.models import VGG, get_model
from ...core.scale import by_scale, shifted_seeds
from ...core.scale import seed_offset as checked_offset
from ...core.train import default_device, evaluate, seed_everything, train
from ...experiments.protocol import training
from ...experiments.records import Results
from ...experiments.tables import markdown_table, mean_sd_cell, sample_sd
from ...methods import get_method
from ...methods.init_pruning import (
    METHODS,
    grasp_paper_init,
    layer_collapse,
    shuffle_masks,
    xavier_linear_copy,
)
from .. import calibration
from ..claims import Claim, every_seed, exceeds, spearman, within
from . import load_data

VERSION = 2  # 2: random scores from NumPy, no longer aligned with the initial weights
GRID = ("seeds", "sparsities")  # enumerate configurations only
TITLE = "Pruning at initialisation: keep the gradient flowing"
EXPLORER = "init_pruning_explorer"  # its explorer in minipruner.book.explorers
HEADLINES = (
    ("98 %: GraSP beats the best of SNIP",),
    ("90 %: GraSP and SNIP end within 2 points",),
    ("98 %: GraSP loses more than the paper's",),
)
"""The claims (words of their statements) the README's summary table shows for this chapter."""

QUICK_CFG = [16, "M", 16, "M", 32, 32, "M", 64, 64]
"""VGG-6 of the quick scale: six 3x3 convolutions, BatchNorm, max-pools, global pooling."""

METHOD_IDS = {"grasp": "grasp", "snip": "snip", "random": "random", "magnitude": "magnitude-global"}
"""The four methods (:data:`minipruner.methods.init_pruning.METHODS`) as ids of
:data:`minipruner.methods.METHODS`, whose scorers this page calls (magnitude pruning at
initialisation is global magnitude pruning)."""
SIGN_VARIANTS = {"grasp, opposite sign": torch.neg, "|theta Hg|": torch.abs}
"""GraSP's scores ``theta * Hg`` transformed: the opposite sign, and the absolute value."""

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

CORRELATION_SPARSITIES = (0.9, 0.98)
"""Where the claims measure the rank correlation of gradient flow and accuracy, one sparsity
at a time (:func:`correlation_sparsities`)."""

FLOOR = 3e-4
"""Where an empty layer is drawn on a logarithmic density axis (%)."""


def settings(scale: str, seed_offset: int | None = None) -> dict[str, Any]:
    """The chapter's settings at ``scale``: VGG-6 on mnist-5k for 3 epochs (quick), or the
    GraSP paper's VGG-19 and ResNet-32 (twice the width) on CIFAR-10 for 160 epochs (full).

    Every network is a dict ``{"name", "model", "kwargs", "plain_chain"}``: ``model`` is a
    name for :func:`minipruner.core.models.get_model`, or ``"vgg"`` for ``VGG(**kwargs)``;
    ``plain_chain`` says that an empty layer disconnects it (no skip connections).
    """
    offset = checked_offset(seed_offset)  # added to every seed; None: $MINIPRUNER_SEED_OFFSET
    sparsities = [0.9, 0.95, 0.98, 0.99, 0.995]
    return {
        "seeds": shifted_seeds([0, 1, 2], offset),
        "seed_offset": offset,
        "sparsities": sparsities,
        "methods": list(METHODS),
        "sign_variants": list(SIGN_VARIANTS),
        "dataset": by_scale("mnist-5k", "cifar10", scale),
        "networks": by_scale(
            [
                {
                    "name": "vgg6",
                    "model": "vgg",
                    "kwargs": {"cfg": QUICK_CFG, "in_channels": 1, "input_shape": [1, 28, 28]},
                    "plain_chain": True,
                }
            ],
            [
                {"name": "vgg19", "model": "vgg19", "kwargs": {}, "plain_chain": True},
                {
                    "name": "resnet32x2",
                    "model": "resnet32",
                    "kwargs": {"width": 2},
                    "plain_chain": False,
                },
            ],
            scale,
        ),
        "per_class": 10,  # scoring batch: examples per class, drawn with the seed
        "temperature": 200.0,  # GraSP's softmax temperature
        "flow_batch_seed": 100,  # gradient-flow batch: drawn with flow_batch_seed + seed
        "trained_sparsities": by_scale([0.9, 0.98, 0.99], sparsities, scale),
        "shuffle_methods": ["grasp", "snip"],
        "shuffle_sparsities": by_scale([0.98], [0.9, 0.95, 0.98], scale),
        "sign_sparsity": 0.98,
        # full: the GraSP code's initialisation (grasp_paper_init), and GraSP scored on a copy
        # whose linear layers are re-drawn Xavier-normal (its reinit=True); quick: PyTorch's
        # default initialisation, scored as it is
        "init": by_scale("pytorch", "grasp", scale),
        "grasp_reinit_linear": by_scale(False, True, scale),
        "scale": scale,
        "train": by_scale(
            {"vgg6": dict(epochs=3, lr=0.1, nesterov=True, schedule="onecycle", batch_size=128)},
            {
                arch: dict(
                    epochs=160,
                    lr=0.1,
                    momentum=0.9,
                    batch_size=128,
                    schedule="multistep",
                    milestones=[80, 120],
                    gamma=0.1,
                    weight_decay=wd,
                    pipeline="device",  # the training set on the GPU, augmented there
                )
                for arch, wd in [("vgg19", 5e-4), ("resnet32x2", 1e-4)]
            },
            scale,
        ),
    }


def arch_names(settings: dict[str, Any]) -> list[str]:
    """The names of the chapter's networks; the first one is the one every figure shows."""
    return [net["name"] for net in settings["networks"]]


def all_methods(settings: dict[str, Any]) -> list[str]:
    """The four methods followed by GraSP's two sign variants."""
    return settings["methods"] + settings["sign_variants"]


def configurations(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Per network and seed: one ``masks`` configuration per (method or sign variant,
    sparsity) on the first network, then one ``train`` configuration per network trained:
    dense, each method at each trained sparsity, the layer-wise shuffle of GraSP and SNIP,
    and GraSP's sign variants at the sign sparsity. Ordered so that one seed's scores are
    computed once and reused."""
    first = arch_names(settings)[0]
    configs = []
    for arch in arch_names(settings):
        for seed in settings["seeds"]:
            if arch == first:
                configs += [
                    {"experiment": "masks", "arch": arch, "seed": seed, "method": m, "sparsity": s}
                    for m in all_methods(settings)
                    for s in settings["sparsities"]
                ]
            trained = [("dense", 0.0, False)]
            trained += [
                (m, s, False) for m in settings["methods"] for s in settings["trained_sparsities"]
            ]
            trained += [
                (m, s, True)
                for m in settings["shuffle_methods"]
                for s in settings["shuffle_sparsities"]
            ]
            trained += [(m, settings["sign_sparsity"], False) for m in settings["sign_variants"]]
            configs += [
                {
                    "experiment": "train",
                    "arch": arch,
                    "seed": seed,
                    "method": m,
                    "sparsity": s,
                    "shuffled": shuffled,
                }
                for m, s, shuffled in trained
            ]
    return configs


# ------------------------------------------------------------------ networks, data, masks


def data(settings: dict[str, Any]) -> tuple[Dataset, Dataset]:
    """The chapter's ``(train, test)`` datasets (loaded once per process)."""
    return load_data(settings["dataset"], settings["scale"])


def network(settings: dict[str, Any], arch: str) -> dict[str, Any]:
    """The settings of the network called ``arch``."""
    (spec,) = [net for net in settings["networks"] if net["name"] == arch]
    return spec


def config_trainings(settings: dict[str, Any], config: dict[str, Any]) -> list[dict[str, Any]]:
    """The full-scale cost of ``config``
    (:func:`~minipruner.experiments.protocol.config_trainings`): the training of its pruned network
    ``arch`` with ``settings["train"][arch]`` (counted also where a layer is emptied and the
    network is recorded untrained: an upper bound); none for the mask measurements."""
    if config["experiment"] == "masks":
        return []
    spec = network(settings, config["arch"])
    train = settings["train"][config["arch"]]
    return [training(spec["model"], settings["dataset"], train, model_kwargs=spec["kwargs"])]


def init_net(settings: dict[str, Any], arch: str, seed: int) -> nn.Module:
    """A freshly initialised network ``arch`` (train mode, as GraSP scores it): seeded with
    ``seed``, so the same for every method and sparsity of one seed; with the GraSP code's
    initialisation (:func:`~minipruner.methods.init_pruning.grasp_paper_init`) where the settings'
    ``init`` is ``"grasp"`` (the full scale)."""
    spec = network(settings, arch)
    kwargs = dict(spec["kwargs"])
    if "input_shape" in kwargs:
        kwargs["input_shape"] = tuple(kwargs["input_shape"])
    seed_everything(seed)
    net = VGG(**kwargs) if spec["model"] == "vgg" else get_model(spec["model"], **kwargs)
    if settings.get("init", "pytorch") == "grasp":
        grasp_paper_init(net)
    return net.train()


@functools.lru_cache(maxsize=8)
def _base_scores(settings_json: str, arch: str, seed: int, method: str) -> dict[str, Tensor]:
    settings = json.loads(settings_json)
    train_data, _ = data(settings)
    net = init_net(settings, arch, seed)
    if method == "grasp" and settings.get("grasp_reinit_linear", False):
        net = xavier_linear_copy(net)  # the copy GraSP's code scores; masks go to the original
    entry = get_method(METHOD_IDS[method])
    batch = None
    if entry.needs == "labelled batch":  # the GraSP paper's 10 examples per class
        batch = class_balanced_batch(train_data, settings["per_class"], seed)
    options = {"seed": seed, "temperature": settings["temperature"]}
    scores = entry.scorer(
        net.to(default_device()),  # GraSP on VGG-19 wants a GPU
        batch,
        **{k: v for k, v in options.items() if k in entry.options},
    )
    return {name: s.cpu() for name, s in scores.items()}


def scores_at_init(
    settings: dict[str, Any], arch: str, seed: int, method: str
) -> dict[str, Tensor]:
    """Scores (higher = keep) of one method or GraSP sign variant on the initial network of
    ``seed``; each method's scores are computed once per process and reused."""
    base = "grasp" if method in SIGN_VARIANTS else method
    scores = _base_scores(json.dumps(settings, sort_keys=True), arch, seed, base)
    transform = SIGN_VARIANTS.get(method)
    return {name: transform(s) for name, s in scores.items()} if transform else scores


def masks_at_init(
    settings: dict[str, Any], arch: str, seed: int, method: str, sparsity: float
) -> dict[str, Tensor]:
    """Keep-masks of one method at ``sparsity``: one global threshold over all layers."""
    return masks_from_scores(scores_at_init(settings, arch, seed, method), sparsity, "global")


def gradient_flow(net: nn.Module, x: Tensor, y: Tensor) -> float:
    """G = |g|^2 over the kept prunable weights, at temperature 1, in the net's mode. (For a
    masked layer the gradient with respect to weight_orig is already zero where the mask
    removes.)"""
    weights = [weight_parameter(m) for m in prunable_modules(net).values()]
    grads = torch.autograd.grad(F.cross_entropy(net(x), y), weights)
    return sum(gw.pow(2).sum() for gw in grads).item()


def _flow_batch(settings: dict[str, Any], seed: int) -> tuple[Tensor, Tensor]:
    train_data, _ = data(settings)
    return class_balanced_batch(
        train_data, settings["per_class"], seed=settings["flow_batch_seed"] + seed
    )


@functools.lru_cache(maxsize=8)
def _dense_flow(settings_json: str, arch: str, seed: int) -> float:
    settings = json.loads(settings_json)
    return gradient_flow(init_net(settings, arch, seed), *_flow_batch(settings, seed))


def count_active_channels(masks: dict[str, Tensor]) -> list[int]:
    """Output channels (or units) of each layer with at least one kept incoming weight."""
    return [int(fed_units(m).sum()) for m in masks.values()]


def chance(test_data: Dataset) -> float:
    """The accuracy of a network that predicts one class for every input, ``1 / C``; raises
    ``ValueError`` unless every class has equally many test examples (then it is exact)."""
    counts = dataset_labels(test_data).bincount()
    if not (counts == counts[0]).all():
        raise ValueError(f"unequal class counts {counts.tolist()}: chance is not 1/C")
    return 1 / len(counts)


# ------------------------------------------------------------------------ the experiments


def measure_masks(config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """One mask, measured without training: per layer (in forward order) its kind, size,
    width, kept weights and active output channels (as chosen and shuffled within layers),
    the empty layers, and the fraction of the dense network's gradient flow it keeps."""
    arch, seed = config["arch"], config["seed"]
    masks = masks_at_init(settings, arch, seed, config["method"], config["sparsity"])
    net = init_net(settings, arch, seed)
    modules = prunable_modules(net)
    apply_masks(net, masks)
    flow = gradient_flow(net, *_flow_batch(settings, seed))
    return {
        "layers": list(masks),
        "kinds": ["fc" if isinstance(m, nn.Linear) else "conv" for m in modules.values()],
        "sizes": [m.numel() for m in masks.values()],
        "widths": [m.shape[0] for m in masks.values()],
        "kept": [int(m.sum()) for m in masks.values()],
        "collapsed": layer_collapse(masks),
        "active": count_active_channels(masks),
        "active_shuffled": count_active_channels(shuffle_masks(masks, seed)),
        "flow": flow / _dense_flow(json.dumps(settings, sort_keys=True), arch, seed),
    }


def train_pruned(config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Test accuracy after pruning at init (sparsity 0: dense), shuffling each layer's mask
    if ``shuffled``, and training with the mask fixed; a plain chain with an empty layer is
    recorded at chance accuracy, untrained."""
    arch, seed, method, sparsity = (config[k] for k in ("arch", "seed", "method", "sparsity"))
    train_data, test_data = data(settings)
    out = {"chance": chance(test_data), "test_examples": len(test_data), "collapsed": []}
    masks = None
    if sparsity > 0:
        masks = masks_at_init(settings, arch, seed, method, sparsity)
        if config["shuffled"]:
            masks = shuffle_masks(masks, seed)
        out["collapsed"] = layer_collapse(masks)
        if out["collapsed"] and network(settings, arch)["plain_chain"]:
            return {**out, "accuracy": out["chance"], "trained": False}
    net = init_net(settings, arch, seed)
    if masks is not None:
        apply_masks(net, masks)
    desc = f"{method} {sparsity}"
    train(net, train_data, seed=seed, quiet=True, desc=desc, **settings["train"][arch])
    pipeline = settings["train"][arch].get("pipeline", "loader")  # full scale: on the device
    accuracy = evaluate(net, test_data, pipeline=pipeline).accuracy
    return {**out, "accuracy": accuracy, "trained": True}


def run(config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration (see the module docstring) and return its measurements."""
    if config["experiment"] == "masks":
        return measure_masks(config, settings)
    return train_pruned(config, settings)


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
    """Per (method, sparsity): how many seeds' masks empty at least one layer."""
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
            ax.errorbar(kept, mean, yerr=sd, marker=marker, capsize=3, label=method)
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
    for i, method in enumerate(all_methods(results.settings)):
        color = f"C{i}"
        values = np.array([flows(results, method, s) for s in sparsities])
        ax.plot(kept, values.mean(1), marker="o", color=color, label=method)
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
        ax.set_title(method)
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
    return markdown_table(["network", "sparsity", *methods], rows)


def flow_table(results: Results) -> str:
    """Gradient flow kept, G after / G before pruning (mean over seeds), per method and
    sparsity."""
    sparsities = results.settings["sparsities"]
    rows = [
        [method, *[f"{flows(results, method, s).mean():.4f}" for s in sparsities]]
        for method in all_methods(results.settings)
    ]
    return markdown_table(["method", *[f"{s:.1%}" for s in sparsities]], rows)


def collapse_table(results: Results) -> str:
    """Per method and sparsity: the seeds whose mask empties at least one layer."""
    sparsities = results.settings["sparsities"]
    n = len(results.settings["seeds"])
    counts = collapse_counts(results)
    rows = [
        [method, *[f"{counts[method, s]} of {n}" for s in sparsities]]
        for method in all_methods(results.settings)
    ]
    header = ["seeds with an empty layer", *[f"{s:.1%}" for s in sparsities]]
    return markdown_table(header, rows)


def last_conv_table(results: Results) -> str:
    """Weights kept in the layer before the classifier (the last convolution), per method
    and sparsity, one number per seed."""
    sparsities = results.settings["sparsities"]
    seeds = results.settings["seeds"]
    label, size = layer_labels(results)[-2], layer_sizes(results)[-2]
    rows = [
        [
            method,
            *[
                " / ".join(str(kept_weights(results, method, s, seed)[-2]) for seed in seeds)
                for s in sparsities
            ],
        ]
        for method in results.settings["methods"]
    ]
    seed_list = ", ".join(map(str, seeds))
    header = [f"kept in {label} (of {size:,}), seeds {seed_list}"]
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
            rows.append([method, f"{s:.0%}", _pct(chosen), _pct(shuffled), change])
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
        for label, counts in zip(
            ["as chosen", "shuffled"], active_channels(results, method, s, seed), strict=True
        ):
            cells = [f"{a}/{w}" for a, w in zip(counts, widths, strict=True)]
            rows.append([f"{method} at {s:.0%}", label, *cells])
    return markdown_table(["mask", "weights", *layer_labels(results)], rows)


def sign_table(results: Results) -> str:
    """GraSP and its sign variants at the sign sparsity: test accuracy (%, mean ± sample sd over
    seeds) and gradient flow kept (mean over seeds)."""
    s = results.settings["sign_sparsity"]
    rows = [
        [
            method,
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


# ------------------------------------------------------------------------------- claims


def _per_seed(results: Results, fn: Any) -> np.ndarray:
    """``fn(seed)`` for every seed of the settings, in seed order."""
    return np.array([fn(seed) for seed in results.settings["seeds"]], dtype=float)


def _last_conv(results: Results) -> int:
    """Index of the layer before the classifier (the last convolution)."""
    return len(layer_sizes(results)) - 2


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


def correlation_sparsities(settings: dict[str, Any]) -> list[float]:
    """The trained sparsities at which the chapter claims a rank correlation between gradient
    flow and accuracy, one sparsity at a time: 90 and 98 %, where every seed of the quick
    scale trains at least three masks. (At 99 % SNIP and magnitude pruning empty a layer and
    are not trained, so a seed has two trained masks or fewer: no correlation to measure.)"""
    return [s for s in settings["trained_sparsities"] if s in CORRELATION_SPARSITIES]


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


def claims(results: Results) -> list[Claim]:
    """The chapter's claims on the first network, each measured once per seed and paired
    across methods (every method prunes the same initial network of a seed): accuracies in
    points at 90, 98 and 99 %, gradient flow kept (percent of the dense network's), whether
    the masks that keep more of it train better (a rank correlation over a seed's trained
    masks at one sparsity at a time, :func:`flow_accuracy_correlation`: pooled over
    sparsities, sparsity would drive both), which layers the masks empty or starve, the
    layer-wise shuffle, GraSP's sign, and the gap to dense against the GraSP paper. Claims
    about every seed (a layer emptied, none emptied) are binomial
    (:func:`minipruner.book.claims.every_seed`). Which claims are asserted is computed from the
    chapter's calibration (:func:`minipruner.book.calibration.apply`)."""
    cfg = results.settings
    sparsities, others = cfg["sparsities"], ["snip", "random", "magnitude"]
    last = _last_conv(results)
    conv_label = layer_labels(results)[last]

    def acc(method: str, s: float, shuffled: bool = False) -> np.ndarray:
        return accuracies(results, method, s, shuffled)

    def flow(method: str, s: float) -> np.ndarray:
        return 100 * flows(results, method, s)

    def kept(method: str, s: float, layer: int) -> np.ndarray:
        return _per_seed(results, lambda seed: kept_weights(results, method, s, seed)[layer])

    def no_collapse(method: str, levels: list[float]) -> np.ndarray:
        return _per_seed(
            results,
            lambda seed: all(
                not mask_record(results, method, s, seed)["collapsed"] for s in levels
            ),
        )

    def active_sum(method: str, s: float, which: int) -> np.ndarray:
        return _per_seed(
            results, lambda seed: active_channels(results, method, s, seed)[which].sum()
        )

    dense = acc("dense", 0.0)
    at_90 = np.array([acc(m, 0.9) for m in ("grasp", "snip", "random")])
    best_other_98 = np.max([acc(m, 0.98) for m in others], axis=0)
    flow_rivals_98 = np.max([flow(m, 0.98) for m in [*others, "grasp, opposite sign"]], axis=0)
    first_share_gap = _per_seed(
        results,
        lambda seed: min(
            100 * (d[0] - d[last])
            for m in ("grasp", "snip")
            for s in sparsities
            for d in [densities(results, m, s, seed)]
        ),
    )
    widths = mask_record(results, "magnitude", sparsities[0])["widths"]
    widest = int(np.argmax(layer_sizes(results) // np.array(widths)))  # largest fan-in
    magnitude_empties = _per_seed(
        results,
        lambda seed: all(
            mask_record(results, "magnitude", s, seed)["kept"][widest] == 0 for s in sparsities
        ),
    )
    rho = {
        s: _per_seed(results, lambda seed, s=s: flow_accuracy_correlation(results, seed, s))
        for s in correlation_sparsities(cfg)
    }
    collapsed_99 = _per_seed(
        results,
        lambda seed: all(
            mask_record(results, m, 0.99, seed)["collapsed"] for m in ("snip", "magnitude")
        ),
    )
    outputs_fed = {
        m: _per_seed(results, lambda seed, m=m: mask_record(results, m, 0.98, seed)["active"][-1])
        for m in ("grasp", "random")
    }
    pct = "points (% of dense G)"
    paper_90 = (  # the GraSP paper's VGG-19 rows at 90 % (PAPER_SOURCE)
        f"SNIP {PAPER['snip'][0.9]:.2f}, GraSP {PAPER['grasp'][0.9]:.2f} (CIFAR-10); SNIP "
        f"{PAPER_CIFAR100['snip'][0.9]:.2f}, GraSP {PAPER_CIFAR100['grasp'][0.9]:.2f} (CIFAR-100); "
        "VGG-19, second-hand copy, §3.10"
    )
    found = [
        exceeds(
            "98 %: GraSP beats the best of SNIP, random and magnitude (per seed) by more than "
            "20 points",
            acc("grasp", 0.98),
            best_other_98,
            20,
            paper=f"VGG-19, CIFAR-100: GraSP {PAPER_CIFAR100['grasp'][0.98]:.2f}, SNIP "
            f"{PAPER_CIFAR100['snip'][0.98]:.2f} (second-hand copy, §3.10)",
        ),
        every_seed(
            "99 %: SNIP and magnitude pruning both empty a layer, in every seed", collapsed_99
        ),
        exceeds(
            "99 %: GraSP beats random pruning",
            acc("grasp", 0.99),
            acc("random", 0.99),
        ),
        within(
            "90 %: GraSP, SNIP and random pruning end within 3 points of each other (per seed, "
            "best minus worst)",
            at_90.max(0) - at_90.min(0),
            margin=3,
            paper=paper_90,
        ),
        within(
            "90 %: GraSP and SNIP end within 2 points of each other",
            acc("grasp", 0.9),
            acc("snip", 0.9),
            margin=2,
            paper=paper_90,
        ),
        exceeds(
            "90 %: SNIP beats GraSP",
            acc("snip", 0.9),
            acc("grasp", 0.9),
            paper=paper_90,
        ),
        within(
            "90 %: the worst of GraSP, SNIP and random pruning ends within 5 points of dense",
            dense - at_90.min(0),
            margin=5,
            paper=f"VGG-19, CIFAR-10: dense {PAPER_DENSE:.2f}, SNIP {PAPER['snip'][0.9]:.2f}, "
            f"GraSP {PAPER['grasp'][0.9]:.2f} (second-hand copy, §3.10)",
        ),
        every_seed(
            f"global magnitude pruning empties {layer_labels(results)[widest]} (the largest "
            "fan-in) at every sparsity, in every seed",
            magnitude_empties,
        ),
        exceeds(
            "98 %: GraSP keeps more gradient flow than SNIP, random, magnitude and its opposite "
            "sign (per seed, the best of them)",
            flow("grasp", 0.98),
            flow_rivals_98,
            unit=pct,
        ),
        exceeds(
            "98 %: GraSP keeps more gradient flow than |theta Hg|",
            flow("grasp", 0.98),
            flow("|theta Hg|", 0.98),
            unit=pct,
        ),
        exceeds(
            "90 %: random pruning keeps less gradient flow than GraSP and SNIP (per seed, the "
            "lower of the two)",
            np.minimum(flow("grasp", 0.9), flow("snip", 0.9)),
            flow("random", 0.9),
            unit=pct,
        ),
        *[
            exceeds(
                f"{100 * s:g} %: over the trained masks of a seed, those that keep more gradient "
                "flow train to higher accuracy (rank correlation above 0, ties at average "
                "ranks)",
                rho[s],
                margin=0,
                unit="rank correlation",
            )
            for s in correlation_sparsities(cfg)
        ],
        exceeds(
            "98 %: GraSP beats its opposite sign",
            acc("grasp", 0.98),
            acc("grasp, opposite sign", 0.98),
        ),
        within(
            "98 %: |theta Hg| ends within 5 points of GraSP",
            acc("|theta Hg|", 0.98),
            acc("grasp", 0.98),
            margin=5,
        ),
        exceeds(
            "98 %: |theta Hg| beats GraSP's opposite sign",
            acc("|theta Hg|", 0.98),
            acc("grasp, opposite sign", 0.98),
        ),
        every_seed(
            "GraSP empties no layer at 90-98 %, in every seed",
            no_collapse("grasp", [s for s in sparsities if s <= 0.98]),
        ),
        every_seed("GraSP empties no layer at 99 %, in every seed", no_collapse("grasp", [0.99])),
        exceeds(
            f"98 %: GraSP keeps more than 50 weights more than SNIP in {conv_label}, the last "
            "convolution",
            kept("grasp", 0.98, last),
            kept("snip", 0.98, last),
            50,
            unit="weights",
        ),
        exceeds(
            f"99 %: GraSP keeps more weights than SNIP in {conv_label}",
            kept("grasp", 0.99, last),
            kept("snip", 0.99, last),
            unit="weights",
        ),
        exceeds(
            f"GraSP and SNIP keep a larger share of conv1 than of {conv_label} at every "
            f"sparsity {sparsities[0]:.0%}-{sparsities[-1]:.1%} (per seed, the smallest "
            "difference)",
            first_share_gap,
            unit="points of share",
        ),
        exceeds(
            "98 %: SNIP keeps a larger share of conv1 than GraSP, by more than 10 points",
            100 * kept("snip", 0.98, 0) / layer_sizes(results)[0],
            100 * kept("grasp", 0.98, 0) / layer_sizes(results)[0],
            10,
            unit="points of share",
        ),
        exceeds(
            "98 %: GraSP keeps more than 20 weights more than random pruning in conv1",
            kept("grasp", 0.98, 0),
            kept("random", 0.98, 0),
            20,
            unit="weights",
        ),
        exceeds(
            "98 %: random pruning leaves some of the 10 output units without an incoming "
            "weight, GraSP feeds them all (fed units, GraSP minus random)",
            outputs_fed["grasp"],
            outputs_fed["random"],
            unit="units",
        ),
        exceeds(
            "98 %: shuffling GraSP's mask within layers costs it less than 3 points",
            acc("grasp", 0.98, shuffled=True),
            acc("grasp", 0.98),
            -3,
            paper="Frankle et al.: no loss under the shuffle",
        ),
        exceeds(
            "98 %: shuffling raises GraSP's accuracy",
            acc("grasp", 0.98, shuffled=True),
            acc("grasp", 0.98),
        ),
        exceeds(
            "98 %: shuffling SNIP's mask within layers costs it less than 2 points",
            acc("snip", 0.98, shuffled=True),
            acc("snip", 0.98),
            -2,
            paper="Frankle et al.: no loss under the shuffle",
        ),
        exceeds(
            "98 %: GraSP's shuffled masks keep more output channels alive",
            active_sum("grasp", 0.98, 1),
            active_sum("grasp", 0.98, 0),
            unit="channels",
        ),
        exceeds(
            "98 %: SNIP's shuffled masks keep more output channels alive",
            active_sum("snip", 0.98, 1),
            active_sum("snip", 0.98, 0),
            unit="channels",
        ),
        exceeds(
            f"98 %: GraSP loses more than the paper's {PAPER_DENSE - PAPER['grasp'][0.98]:.2f} "
            "points to dense",
            dense,
            acc("grasp", 0.98),
            round(PAPER_DENSE - PAPER["grasp"][0.98], 2),
            paper=f"VGG-19, CIFAR-10: dense {PAPER_DENSE:.2f}, GraSP {PAPER['grasp'][0.98]:.2f} "
            "(second-hand copy, §3.10)",
        ),
    ]
    return calibration.apply(results, found, VERSION)
