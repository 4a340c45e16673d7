"""Chapter 3's experiments: pruning at initialisation with GraSP, SNIP, random and magnitude.

Every method scores the weights of a freshly initialised network once (the network of one
seed, in train mode, data-driven methods on a class-balanced batch of ``per_class`` training
examples per class, GraSP at ``temperature``), and one global threshold keeps the highest
scores. Besides the four methods of :data:`METHODS`, two variants of GraSP's sign are measured
(:data:`SIGN_VARIANTS`): the opposite sign (``-theta * Hg``) and ``|theta * Hg|``. Every method
is named by its id in the method table (:data:`minipruner.methods.METHODS`), which holds its
scorer, label and colour; results are keyed by those ids.

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

A reader maps chapter 3 to this module (the experiments and the 30 claims, a table of rows),
to :mod:`minipruner.book.chapters.init_pruning_page` (what the page shows from stored results
alone: the accessors the claims read, three figures and nine tables) and to
:mod:`minipruner.methods.init_pruning` (the methods).
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
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
from ...methods import get_method
from ...methods.init_pruning import (
    grasp_paper_init,
    layer_collapse,
    shuffle_masks,
    xavier_linear_copy,
)
from .. import calibration
from ..claims import Claim, claims_from, every_seed, exceeds, within
from . import init_pruning_page, load_data
from .init_pruning_page import (
    PAPER,
    PAPER_CIFAR100,
    PAPER_DENSE,
    accuracies,
    active_channels,
    all_methods,
    arch_names,
    densities,
    flow_accuracy_correlation,
    flows,
    kept_weights,
    layer_labels,
    layer_sizes,
    mask_record,
)

VERSION = 2  # 2: random scores from NumPy, no longer aligned with the initial weights
GRID = ("seeds", "sparsities", "methods", "sign_variants")  # enumerate configurations only
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

METHODS = ("grasp", "snip", "random", "magnitude-global")
"""The four methods, as ids of :data:`minipruner.methods.METHODS`, whose scorers this page
calls (magnitude pruning at initialisation is global magnitude pruning)."""
SIGN_VARIANTS = ("grasp-opposite", "grasp-abs")
"""GraSP's scores ``theta * Hg`` with the opposite sign and without their sign (``|theta * Hg|``),
as ids of :data:`minipruner.methods.METHODS`; trained at the sign sparsity only."""

MAGNITUDE, OPPOSITE, ABSOLUTE = "magnitude-global", *SIGN_VARIANTS
"""The ids the claims name besides ``"grasp"``, ``"snip"`` and ``"random"``."""

CORRELATION_SPARSITIES = (0.9, 0.98)
"""Where the claims measure the rank correlation of gradient flow and accuracy, one sparsity
at a time (:func:`correlation_sparsities`)."""

figures = init_pruning_page.figures
"""The chapter's three plots (:func:`.init_pruning_page.figures`)."""
table = init_pruning_page.table
"""The chapter's table of accuracies (:func:`.init_pruning_page.table`)."""


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
def _scores(settings_json: str, arch: str, seed: int, method: str) -> dict[str, Tensor]:
    settings = json.loads(settings_json)
    train_data, _ = data(settings)
    net = init_net(settings, arch, seed)
    grasp_family = method in ("grasp", *settings["sign_variants"])
    if grasp_family and settings.get("grasp_reinit_linear", False):
        net = xavier_linear_copy(net)  # the copy GraSP's code scores; masks go to the original
    entry = get_method(method)
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
    """Scores (higher = keep) of one method (an id of :data:`minipruner.methods.METHODS`: its
    ``scorer``, with ``seed`` and the settings' ``temperature`` where it takes them) on the
    initial network of ``seed``; data-driven methods on a class-balanced batch of
    ``per_class`` examples per class drawn with ``seed``. GraSP and its sign variants score
    the Xavier copy of the network (:func:`~minipruner.methods.init_pruning.xavier_linear_copy`)
    where the settings' ``grasp_reinit_linear`` says so. Each method's scores are computed once
    per process and reused."""
    return _scores(json.dumps(settings, sort_keys=True), arch, seed, method)


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


# ------------------------------------------------------------------------------- claims


def _per_seed(results: Results, fn: Any) -> np.ndarray:
    """``fn(seed)`` for every seed of the settings, in seed order."""
    return np.array([fn(seed) for seed in results.settings["seeds"]], dtype=float)


def _last_conv(results: Results) -> int:
    """Index of the layer before the classifier (the last convolution)."""
    return len(layer_sizes(results)) - 2


def correlation_sparsities(settings: dict[str, Any]) -> list[float]:
    """The trained sparsities at which the chapter claims a rank correlation between gradient
    flow and accuracy, one sparsity at a time: 90 and 98 %, where every seed of the quick
    scale trains at least three masks. (At 99 % SNIP and magnitude pruning empty a layer and
    are not trained, so a seed has two trained masks or fewer: no correlation to measure.)"""
    return [s for s in settings["trained_sparsities"] if s in CORRELATION_SPARSITIES]


def claims(results: Results) -> list[Claim]:
    """The chapter's claims on the first network, each measured once per seed and paired
    across methods (every method prunes the same initial network of a seed): accuracies in
    points at 90, 98 and 99 %, gradient flow kept (percent of the dense network's), whether
    the masks that keep more of it train better (a rank correlation over a seed's trained
    masks at one sparsity at a time, :func:`flow_accuracy_correlation`: pooled over
    sparsities, sparsity would drive both), which layers the masks empty or starve, the
    layer-wise shuffle, GraSP's sign, and the gap to dense against the GraSP paper. Claims
    about every seed (a layer emptied, none emptied) are binomial
    (:func:`minipruner.book.claims.every_seed`). Each row of the table below is one claim
    (:func:`minipruner.book.claims.claims_from`). Which claims are asserted is computed from
    the chapter's calibration (:func:`minipruner.book.calibration.apply`)."""
    cfg = results.settings
    sparsities, others = cfg["sparsities"], ["snip", "random", MAGNITUDE]
    last = _last_conv(results)
    conv_label, size = layer_labels(results)[last], layer_sizes(results)

    def acc(method: str, s: float, shuffled: bool = False) -> np.ndarray:
        return accuracies(results, method, s, shuffled)

    def flow(method: str, s: float) -> np.ndarray:
        return 100 * flows(results, method, s)

    def per_seed(fn: Any) -> np.ndarray:
        return _per_seed(results, fn)

    def kept(method: str, s: float, layer: int) -> np.ndarray:
        return per_seed(lambda seed: kept_weights(results, method, s, seed)[layer])

    def collapsed(method: str, s: float, seed: int) -> bool:
        return mask_record(results, method, s, seed)["collapsed"]

    def no_collapse(method: str, levels: list[float]) -> np.ndarray:
        return per_seed(lambda seed: all(not collapsed(method, s, seed) for s in levels))

    def active_sum(method: str, s: float, which: int) -> np.ndarray:
        return per_seed(lambda seed: active_channels(results, method, s, seed)[which].sum())

    dense = acc("dense", 0.0)
    at_90 = np.array([acc(m, 0.9) for m in ("grasp", "snip", "random")])
    best_other_98 = np.max([acc(m, 0.98) for m in others], axis=0)
    flow_rivals_98 = np.max([flow(m, 0.98) for m in [*others, OPPOSITE]], axis=0)
    first_share_gap = per_seed(
        lambda seed: min(
            100 * (d[0] - d[last])
            for m in ("grasp", "snip")
            for s in sparsities
            for d in [densities(results, m, s, seed)]
        )
    )
    widths = mask_record(results, MAGNITUDE, sparsities[0])["widths"]
    widest = int(np.argmax(size // np.array(widths)))  # largest fan-in
    magnitude_empties = per_seed(
        lambda seed: all(
            mask_record(results, MAGNITUDE, s, seed)["kept"][widest] == 0 for s in sparsities
        )
    )
    rho = {
        s: per_seed(lambda seed, s=s: flow_accuracy_correlation(results, seed, s))
        for s in correlation_sparsities(cfg)
    }
    collapsed_99 = per_seed(lambda seed: all(collapsed(m, 0.99, seed) for m in ("snip", MAGNITUDE)))
    fed = {
        m: per_seed(lambda seed, m=m: mask_record(results, m, 0.98, seed)["active"][-1])
        for m in ("grasp", "random")
    }
    pct, share = "points (% of dense G)", "points of share"
    frankle = "Frankle et al.: no loss under the shuffle"
    c10, c100, gap = PAPER, PAPER_CIFAR100, PAPER_DENSE - PAPER["grasp"][0.98]
    hand = "second-hand copy, §3.10"
    paper_90 = (  # the GraSP paper's VGG-19 rows at 90 % (PAPER_SOURCE)
        f"SNIP {c10['snip'][0.9]:.2f}, GraSP {c10['grasp'][0.9]:.2f} (CIFAR-10); SNIP "
        f"{c100['snip'][0.9]:.2f}, GraSP {c100['grasp'][0.9]:.2f} (CIFAR-100); VGG-19, {hand}"
    )
    paper_c100 = (
        f"VGG-19, CIFAR-100: GraSP {c100['grasp'][0.98]:.2f}, "
        f"SNIP {c100['snip'][0.98]:.2f} ({hand})"
    )
    paper_dense_90 = (
        f"VGG-19, CIFAR-10: dense {PAPER_DENSE:.2f}, SNIP {c10['snip'][0.9]:.2f}, "
        f"GraSP {c10['grasp'][0.9]:.2f} ({hand})"
    )
    paper_dense_98 = (
        f"VGG-19, CIFAR-10: dense {PAPER_DENSE:.2f}, GraSP {c10['grasp'][0.98]:.2f} ({hand})"
    )
    opposite, absolute = OPPOSITE, ABSOLUTE
    rows = [  # (judge, statement, a, b, margin, options): see claims_from
        (exceeds, "98 %: GraSP beats the best of SNIP, random and magnitude (per seed) by more "
            "than 20 points", acc("grasp", 0.98), best_other_98, 20, {"paper": paper_c100}),
        (every_seed, "99 %: SNIP and magnitude pruning both empty a layer, in every seed",
            collapsed_99),
        (exceeds, "99 %: GraSP beats random pruning", acc("grasp", 0.99), acc("random", 0.99)),
        (within, "90 %: GraSP, SNIP and random pruning end within 3 points of each other (per "
            "seed, best minus worst)", at_90.max(0) - at_90.min(0), None, 3, {"paper": paper_90}),
        (within, "90 %: GraSP and SNIP end within 2 points of each other",
            acc("grasp", 0.9), acc("snip", 0.9), 2, {"paper": paper_90}),
        (exceeds, "90 %: SNIP beats GraSP",
            acc("snip", 0.9), acc("grasp", 0.9), {"paper": paper_90}),
        (within, "90 %: the worst of GraSP, SNIP and random pruning ends within 5 points of dense",
            dense - at_90.min(0), None, 5, {"paper": paper_dense_90}),
        (every_seed, f"global magnitude pruning empties {layer_labels(results)[widest]} (the "
            "largest fan-in) at every sparsity, in every seed", magnitude_empties),
        (exceeds, "98 %: GraSP keeps more gradient flow than SNIP, random, magnitude and its "
            "opposite sign (per seed, the best of them)",
            flow("grasp", 0.98), flow_rivals_98, {"unit": pct}),
        (exceeds, "98 %: GraSP keeps more gradient flow than |theta Hg|",
            flow("grasp", 0.98), flow(absolute, 0.98), {"unit": pct}),
        (exceeds, "90 %: random pruning keeps less gradient flow than GraSP and SNIP (per seed, "
            "the lower of the two)",
            np.minimum(flow("grasp", 0.9), flow("snip", 0.9)), flow("random", 0.9), {"unit": pct}),
        *[(exceeds, f"{100 * s:g} %: over the trained masks of a seed, those that keep more "
            "gradient flow train to higher accuracy (rank correlation above 0, ties at average "
            "ranks)", rho[s], None, 0, {"unit": "rank correlation"})
          for s in correlation_sparsities(cfg)],
        (exceeds, "98 %: GraSP beats its opposite sign", acc("grasp", 0.98), acc(opposite, 0.98)),
        (within, "98 %: |theta Hg| ends within 5 points of GraSP",
            acc(absolute, 0.98), acc("grasp", 0.98), 5),
        (exceeds, "98 %: |theta Hg| beats GraSP's opposite sign",
            acc(absolute, 0.98), acc(opposite, 0.98)),
        (every_seed, "GraSP empties no layer at 90-98 %, in every seed",
            no_collapse("grasp", [s for s in sparsities if s <= 0.98])),
        (every_seed, "GraSP empties no layer at 99 %, in every seed", no_collapse("grasp", [0.99])),
        (exceeds, f"98 %: GraSP keeps more than 50 weights more than SNIP in {conv_label}, the "
            "last convolution",
            kept("grasp", 0.98, last), kept("snip", 0.98, last), 50, {"unit": "weights"}),
        (exceeds, f"99 %: GraSP keeps more weights than SNIP in {conv_label}",
            kept("grasp", 0.99, last), kept("snip", 0.99, last), {"unit": "weights"}),
        (exceeds, f"GraSP and SNIP keep a larger share of conv1 than of {conv_label} at every "
            f"sparsity {sparsities[0]:.0%}-{sparsities[-1]:.1%} (per seed, the smallest "
            "difference)", first_share_gap, {"unit": share}),
        (exceeds, "98 %: SNIP keeps a larger share of conv1 than GraSP, by more than 10 points",
            100 * kept("snip", 0.98, 0) / size[0], 100 * kept("grasp", 0.98, 0) / size[0], 10,
            {"unit": share}),
        (exceeds, "98 %: GraSP keeps more than 20 weights more than random pruning in conv1",
            kept("grasp", 0.98, 0), kept("random", 0.98, 0), 20, {"unit": "weights"}),
        (exceeds, "98 %: random pruning leaves some of the 10 output units without an incoming "
            "weight, GraSP feeds them all (fed units, GraSP minus random)",
            fed["grasp"], fed["random"], {"unit": "units"}),
        (exceeds, "98 %: shuffling GraSP's mask within layers costs it less than 3 points",
            acc("grasp", 0.98, shuffled=True), acc("grasp", 0.98), -3, {"paper": frankle}),
        (exceeds, "98 %: shuffling raises GraSP's accuracy",
            acc("grasp", 0.98, shuffled=True), acc("grasp", 0.98)),
        (exceeds, "98 %: shuffling SNIP's mask within layers costs it less than 2 points",
            acc("snip", 0.98, shuffled=True), acc("snip", 0.98), -2, {"paper": frankle}),
        (exceeds, "98 %: GraSP's shuffled masks keep more output channels alive",
            active_sum("grasp", 0.98, 1), active_sum("grasp", 0.98, 0), {"unit": "channels"}),
        (exceeds, "98 %: SNIP's shuffled masks keep more output channels alive",
            active_sum("snip", 0.98, 1), active_sum("snip", 0.98, 0), {"unit": "channels"}),
        (exceeds, f"98 %: GraSP loses more than the paper's {gap:.2f} points to dense",
            dense, acc("grasp", 0.98), round(gap, 2), {"paper": paper_dense_98}),
    ]  # fmt: skip
    return calibration.apply(results, claims_from(rows), VERSION)
