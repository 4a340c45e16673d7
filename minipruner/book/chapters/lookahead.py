"""Chapter 2's experiments: lookahead pruning (LAP) and its variants against magnitude pruning.

One experiment, repeated for each network of the scale (the FCN on ``mnist-5k`` at the quick
scale; the FCN on MNIST and Conv-6 on CIFAR-10 at the full scale): train the network
(cached), prune it **once** to each of the paper's levels ``t`` (layer-wise ratios
``1 - (1 - r)^t``) with each of MP, LAP, LFP, LBP and LAP-act, measure test accuracy, and
for the (method, level) pairs the settings name, retrain with the mask fixed and measure
again. One configuration per (experiment, seed, method, level). Each also records, from the
masks it made, the fraction of kept weights that are disconnected (their input unit receives
nothing, or their output unit feeds nothing); the LAP configurations record, per layer, the
fraction of LAP's kept weights that MP would not keep.

Why one module of this length (about 600 lines): a reader maps chapter 2 to this module and
to :mod:`minipruner.methods.lookahead` (the methods); it holds the chapter's experiments and what
its page shows from them, which read the same accessors.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from torch import Tensor, nn

from ...core.data import class_balanced_batch
from ...core.experiment import prune_and_measure
from ...core.masks import Pruner, apply_masks, fed_units, masks_from_scores
from ...core.scale import by_scale, shifted_seeds
from ...core.scale import seed_offset as checked_offset
from ...core.train import evaluate
from ...experiments.protocol import training
from ...experiments.records import Results
from ...experiments.tables import markdown_table, mean_sd_cell, sample_sd
from ...methods import get_method, make_pruner
from ...methods.lookahead import activation_rates, lookahead_scores, paper_ratios
from ...methods.magnitude import magnitude_scores
from .. import calibration
from ..claims import Claim, exceeds, within
from . import load_data, network_args, trained_network

VERSION = 1
GRID = ("seeds", "levels", "methods")  # enumerate configurations only
TITLE = "Lookahead pruning"
EXPLORER = "lookahead_explorer"  # its explorer in minipruner.book.explorers
HEADLINES = (
    ("Right after pruning to 3.21 %", "LAP is more accurate"),
    ("After retraining at 0.43 %", "LAP is more accurate"),
)
"""The claims (words of their statements) the README's summary table shows for this chapter."""
PAPER_OUTPERFORMS = 'the abstract: LAP "consistently outperforms" MP (its Table 1 not checked here)'
"""What the paper says on "LAP beats MP" that this book could trace: the abstract of Park et
al. 2020 (arXiv 2002.04809). Its tables could not be read here (the stored copies of the paper
give its opening sections only, and the official repository holds no results), so no number
or ordering of them is attached to a claim. The official code (``main.py``) retrains after
every pruning step and logs test accuracy before and after retraining; which of the two the
paper's tables report is not checked, so the claims measured right after pruning carry no
paper statement."""
PAPER_HIGH_SPARSITY = 'the abstract: "particularly in the high-sparsity regime"'
"""The abstract's words on where LAP's lead is largest (see :data:`PAPER_OUTPERFORMS`)."""
MP, LAP, LFP, LBP, LAP_ACT = "magnitude-layer", "lap", "lap-forward", "lap-backward", "lap-act"
METHODS = (MP, LAP, LFP, LBP, LAP_ACT)
"""The page's methods, as ids of :data:`minipruner.methods.METHODS` (results are keyed by id;
pages print :attr:`minipruner.methods.Method.label` and draw its colour). The settings'
``"methods"`` is in :data:`GRID`: adding a method there computes only its configurations."""
MARKERS = {MP: "o", LAP: "s", LFP: "^", LBP: "v", LAP_ACT: "D"}
"""Each method's marker in the error figure (its colour is the method table's)."""


def label(method: str) -> str:
    """What the page prints for ``method``: its label in the method table, or ``method`` itself
    for what is not a method (``"dense"``, ``"LAP within LAP-act's units"``)."""
    try:
        return get_method(method).label
    except ValueError:  # not an id of the method table
        return method


def settings(scale: str, seed_offset: int | None = None) -> dict[str, Any]:
    """The chapter's settings at ``scale``: the FCN on mnist-5k with a short schedule (quick),
    or the paper's FCN on MNIST and Conv-6 on CIFAR-10 schedules (full). ``ratios`` are the
    per-step pruning ratios of (convolutions, linear layers, the output layer)."""
    offset = checked_offset(seed_offset)  # added to every seed; None: $MINIPRUNER_SEED_OFFSET
    return {
        "seeds": shifted_seeds([0, 1, 2], offset),
        "seed_offset": offset,
        "levels": [4, 5, 6, 7, 8, 9, 10],
        "methods": list(METHODS),
        "rate_examples_per_class": 100,  # class-balanced batch that measures LAP-act's rates
        "scale": scale,
        "experiments": by_scale(
            {
                "FCN / mnist-5k": dict(
                    model="fcn",
                    dataset="mnist-5k",
                    train=dict(optimizer="adam", lr=1.2e-3, batch_size=60, epochs=10),
                    retrain=dict(optimizer="adam", lr=1.2e-3, batch_size=60, epochs=3),
                    retrain_methods=[MP, LAP],
                    retrain_levels=[7, 8, 9, 10],
                    ratios=[0.5, 0.5, 0.25],
                )
            },
            {
                "FCN / MNIST": dict(
                    model="fcn",
                    dataset="mnist",
                    train=dict(optimizer="adam", lr=1.2e-3, batch_size=60, iterations=50_000),
                    retrain=dict(optimizer="adam", lr=1.2e-3, batch_size=60, iterations=50_000),
                    retrain_methods=None,  # all of them
                    retrain_levels=[4, 5, 6, 7, 8, 9, 10],
                    ratios=[0.5, 0.5, 0.25],
                ),
                "Conv-6 / CIFAR-10": dict(
                    model="conv6",
                    dataset="cifar10",
                    train=dict(optimizer="adam", lr=3e-4, batch_size=60, iterations=30_000),
                    retrain=dict(optimizer="adam", lr=3e-4, batch_size=60, iterations=20_000),
                    retrain_methods=None,
                    retrain_levels=[4, 5, 6, 7, 8, 9, 10],
                    ratios=[0.15, 0.2, 0.1],
                ),
            },
            scale,
        ),
    }


def configurations(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """One configuration per (experiment, seed, method, level); ``retrain`` says whether the
    experiment's settings retrain that method at that level. Then one ``units_level``
    configuration per seed of the first experiment: :func:`lap_act_units` at the first
    level (section 2.8)."""
    configs = []
    for name, exp in settings["experiments"].items():
        retrained = exp["retrain_methods"] or settings["methods"]
        for seed in settings["seeds"]:
            for method in settings["methods"]:
                for t in settings["levels"]:
                    retrain = method in retrained and t in exp["retrain_levels"]
                    configs.append(
                        {
                            "experiment": name,
                            "seed": seed,
                            "method": method,
                            "level": t,
                            "retrain": retrain,
                        }
                    )
    first = next(iter(settings["experiments"]))
    level = settings["levels"][0]
    configs += [  # section 2.8: what LAP-act removes, on the first experiment's networks
        {"experiment": first, "seed": seed, "units_level": level} for seed in settings["seeds"]
    ]
    return configs


@functools.lru_cache(maxsize=4)
def _rate_batch(dataset: str, scale: str, per_class: int) -> Tensor:
    return class_balanced_batch(load_data(dataset, scale)[0], per_class=per_class)[0]


def model(settings: dict[str, Any], experiment: str, seed: int | None = None) -> nn.Module:
    """The trained network of ``experiment`` for ``seed`` (trained once, then loaded from
    the cache)."""
    seed = settings["seeds"][0] if seed is None else seed  # the first seed by default
    return trained_network(settings["experiments"][experiment], settings["scale"], seed)


def trained_networks(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The trained network of every experiment and seed (what its configurations prune)."""
    return [
        network_args(exp, settings["scale"], seed)
        for exp in settings["experiments"].values()
        for seed in settings["seeds"]
    ]


def config_trainings(settings: dict[str, Any], config: dict[str, Any]) -> list[dict[str, Any]]:
    """The full-scale cost of ``config``
    (:func:`~minipruner.experiments.protocol.config_trainings`): the retraining of its experiment's
    pruned network with that experiment's ``retrain``; none for a configuration that does not
    retrain, nor for the ``units_level`` ones (no training)."""
    if "units_level" in config or not config["retrain"]:
        return []
    exp = settings["experiments"][config["experiment"]]
    return [training(exp["model"], exp["dataset"], exp["retrain"])]


def level_ratios(
    model: nn.Module, t: int, conv_ratio: float, linear_ratio: float, last_ratio: float
) -> dict[str, float]:
    """The paper's per-layer sparsities after t steps, ``1 - (1 - r)^t`` with ``r`` by layer
    type: :func:`minipruner.methods.lookahead.paper_ratios` with the settings' three ratios."""
    return paper_ratios(model, t, linear_ratio, last_ratio, conv_ratio=conv_ratio)


def make_pruners(
    ratios: list[float], rate_batch: Tensor | None
) -> dict[str, Callable[[nn.Module, int], dict[str, Tensor]]]:
    """The five methods (:data:`METHODS`, entries of :mod:`minipruner.methods`) by id, as
    ``(model, t) -> masks`` at the paper's level ``t``: each method's pruner called with the
    per-layer ratios :func:`level_ratios` of ``t``; ``rate_batch`` is the batch of inputs on
    which LAP-act measures activation rates."""
    batch = None if rate_batch is None else (rate_batch, None)

    def at_level(pruner: Pruner) -> Callable[[nn.Module, int], dict[str, Tensor]]:
        return lambda m, t: pruner(m, level_ratios(m, t, *ratios), batch)

    return {i: at_level(make_pruner(i)) for i in METHODS}


def disconnected_fraction(masks: Mapping[str, Tensor]) -> float:
    """Fraction of kept weights (all but the first and last layer) whose input unit receives
    no kept weight or whose output unit feeds no kept weight.

    ``masks`` are keep-masks in forward order. For convolutions a unit is a channel; a linear
    layer after a flattened convolution reads ``positions`` inputs per channel.
    """
    keep = [m.bool() for m in masks.values()]
    dead = total = 0
    for i in range(1, len(keep) - 1):
        fed = fed_units(keep[i - 1])  # unit k of layer i's input receives something
        if keep[i].shape[1] != len(fed):  # linear layer after a flattened conv
            fed = fed.repeat_interleave(keep[i].shape[1] // len(fed))
        read = keep[i + 1].transpose(0, 1).flatten(1).any(dim=1)  # unit j of its output is read
        if keep[i].shape[0] != len(read):
            read = read.reshape(keep[i].shape[0], -1).any(dim=1)
        extra = (1,) * (keep[i].dim() - 2)
        alive = keep[i] & fed.view(1, -1, *extra) & read.view(-1, 1, *extra)
        dead += (keep[i] & ~alive).sum().item()
        total += keep[i].sum().item()
    return dead / total


def lap_only_fraction(model: nn.Module, t: int, ratios: list[float]) -> dict[str, float]:
    """Per layer: the fraction of the weights LAP keeps at level ``t`` that MP does not keep
    (both keep the same number of weights in every layer)."""
    r = level_ratios(model, t, *ratios)
    mp_keep = masks_from_scores(magnitude_scores(model), r, scope="layer")
    lap_keep = masks_from_scores(lookahead_scores(model), r, scope="layer")
    return {n: ((lap_keep[n] & ~mp_keep[n]).sum() / lap_keep[n].sum()).item() for n in r}


def lap_act_units(
    settings: dict[str, Any], experiment: str, seed: int, level: int
) -> dict[str, dict[str, Any]]:
    """What LAP-act removes at level ``t``, against LAP, on the trained network of ``seed``.

    ``"survival"``: per method (``"dense"``, ``LAP``, ``LAP_ACT``) and hidden layer,
    ``(alive, units, rate)``: ``alive`` counts the layer's output units that keep at least
    one incoming weight, ``units`` is the layer width and ``rate`` the mean activation rate
    ``p_u = P[ReLU output of unit u > 0]`` of the alive units, measured on the dense network
    with the batch LAP-act uses.

    ``"accuracy"``: test accuracy right after pruning with LAP, with LAP-act, and with LAP
    restricted to the units LAP-act keeps alive (LAP scores of the weights into the other
    units set to 0, the same number of weights kept per layer), which tests whether losing
    those units is what costs LAP-act its accuracy. ``"masks"``: the three keep-masks.
    """
    exp = settings["experiments"][experiment]
    rate_batch = _rate_batch(exp["dataset"], settings["scale"], settings["rate_examples_per_class"])
    _, test_data = load_data(exp["dataset"], settings["scale"])
    net = model(settings, experiment, seed)
    rates = activation_rates(net, rate_batch)
    pruners = make_pruners(exp["ratios"], rate_batch)
    masks = {m: pruners[m](copy.deepcopy(net), level) for m in (LAP, LAP_ACT)}  # they mask
    hidden = list(masks[LAP])[:-1]  # their model, so each gets a copy
    survival = {"dense": {n: (len(p), len(p), p.mean().item()) for n, p in rates.items()}}
    for method, keep in masks.items():
        survival[method] = {}
        for name in hidden:
            units = fed_units(keep[name])
            rate = rates[name][units].mean().item()
            survival[method][name] = (int(units.sum()), len(units), rate)
    restricted = lookahead_scores(net)
    for name in hidden:
        restricted[name] = restricted[name] * fed_units(masks[LAP_ACT][name]).view(-1, 1)
    masks["LAP within LAP-act's units"] = masks_from_scores(
        restricted, level_ratios(net, level, *exp["ratios"]), scope="layer"
    )
    accuracy = {}
    for method, keep in masks.items():
        pruned = copy.deepcopy(net)
        apply_masks(pruned, keep)
        accuracy[method] = evaluate(pruned, test_data).accuracy
    return {"survival": survival, "accuracy": accuracy, "masks": masks}


def unit_survival_table(survival: Mapping[str, Mapping[str, tuple[int, int, float]]]) -> str:
    """``lap_act_units(...)["survival"]`` (:func:`lap_act_units`) as a table: per hidden
    layer, alive units / width and their mean activation rate, one column pair per method."""
    methods = list(survival)
    layers = list(survival[methods[0]])
    header = ["layer"] + [f"{label(m)} {col}" for m in methods for col in ("alive units", "mean p")]
    rows = [
        [layer]
        + [
            cell
            for m in methods
            for cell in (
                f"{survival[m][layer][0]} / {survival[m][layer][1]}",
                f"{survival[m][layer][2]:.2f}",
            )
        ]
        for layer in layers
    ]
    return markdown_table(header, rows)


def lap_act_accuracy_table(units: Mapping[int, Mapping[str, Any]]) -> str:
    """Test accuracy (%) right after pruning, per method of :func:`lap_act_units`: one column
    per seed of ``units`` (``{seed: lap_act_units(...)}``), then mean ± sample sd over seeds."""
    seeds = list(units)
    methods = list(units[seeds[0]]["accuracy"])
    rows = []
    for method in methods:
        values = [units[seed]["accuracy"][method] for seed in seeds]
        rows.append([label(method), *(f"{100 * v:.1f}" for v in values), mean_sd_cell(values)])
    return markdown_table(["method", *(f"seed {s}" for s in seeds), "mean ± sample sd"], rows)


def run(config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration (see the module docstring) and return its measurements."""
    if "units_level" in config:
        units = lap_act_units(settings, config["experiment"], config["seed"], config["units_level"])
        return {"survival": units["survival"], "accuracy": units["accuracy"]}
    exp = settings["experiments"][config["experiment"]]
    scale, method = settings["scale"], config["method"]
    train_data, test_data = load_data(exp["dataset"], scale)
    rate_batch = _rate_batch(exp["dataset"], scale, settings["rate_examples_per_class"])
    net = model(settings, config["experiment"], config["seed"])
    pruned = prune_and_measure(
        net,
        make_pruner(method),
        level_ratios(net, config["level"], *exp["ratios"]),
        test_data,
        train_data if config["retrain"] else None,
        exp["retrain"] if config["retrain"] else None,
        batch=(rate_batch, None),
        seed=config["seed"],
    )
    result = pruned.record
    result["disconnected"] = disconnected_fraction(pruned.masks)
    if method == LAP:
        result["lap_only"] = lap_only_fraction(net, config["level"], exp["ratios"])
    return result


def experiments(results: Results) -> list[str]:
    """The names of the experiments (networks and datasets) of ``results``, in order."""
    return list(results.settings["experiments"])


def remaining(results: Results, experiment: str) -> dict[int, float]:
    """Per level ``t``: the percentage of the network's weights that pruning leaves."""
    return {
        t: 100 * (1 - results.select(experiment=experiment, level=t)[0]["achieved_sparsity"])
        for t in results.settings["levels"]
    }


def accuracies(
    results: Results, experiment: str, method: str, level: int, key: str = "acc_pruned"
) -> np.ndarray:
    """``key`` (``acc_pruned`` or ``acc_retrained``) over seeds, one entry per seed; empty
    where that method was not retrained at that level."""
    rows = results.select(experiment=experiment, method=method, level=level)
    return np.array([r[key] for r in rows if key in r], dtype=float)


def dense_accuracy(results: Results, experiment: str) -> np.ndarray:
    """The trained (unpruned) network's test accuracy, one entry per seed."""
    level = results.settings["levels"][0]
    return results.values("acc_dense", experiment=experiment, method=MP, level=level)


def disconnected(results: Results, experiment: str, method: str) -> dict[int, float]:
    """Per level: the mean over seeds of the fraction of kept hidden-layer weights that are
    disconnected (see :func:`disconnected_fraction`)."""
    return {
        t: float(
            results.values("disconnected", experiment=experiment, method=method, level=t).mean()
        )
        for t in results.settings["levels"]
    }


def claims(results: Results) -> list[Claim]:
    """The chapter's claims on its first experiment (:mod:`minipruner.book.claims`), each judged
    over the seeds.

    Accuracies are in points and paired by seed (every method prunes the same trained
    network; LAP's lead after retraining is ``LAP - MP`` per seed, so comparing leads is
    paired too). "No method above 20 %" takes per seed the highest accuracy of any method
    at any level from 0.84 % of the weights on; "MP leaves more disconnected" takes per seed
    the smallest difference (in points of the kept weights) over the levels it names. The
    spread of LAP-act at 6.36 % is one number (a ratio of sample sds over seeds), so there
    is nothing to judge it by (``n = 1``; :func:`calibrated_spreads` gives its value on every
    seed set of the calibration). Only the claims after retraining carry what the paper
    says (:data:`PAPER_OUTPERFORMS`). The claims on what LAP-act removes
    (:func:`unit_claims`, section 2.8) follow, from the ``units_level`` records. Which claims
    are asserted is computed from the chapter's calibration
    (:func:`minipruner.book.calibration.apply`).
    """
    exp = experiments(results)[0]
    survive = remaining(results, exp)
    levels = results.settings["levels"]
    first = levels[0]
    acc = functools.partial(accuracies, results, exp)
    found = []
    for method in (LAP, LFP, LBP, LAP_ACT):
        found.append(
            exceeds(
                f"Right after pruning to {survive[first + 1]:.2f} % of the weights, "
                f"{label(method)} is more accurate than MP",
                acc(method, first + 1),
                acc(MP, first + 1),
                scale=100,
            )
        )
    sparse = [t for t in levels if survive[t] < 1]
    highest = np.max([[acc(m, t) for t in sparse] for m in results.settings["methods"]], (0, 1))
    found.append(
        exceeds(
            f"From {survive[sparse[0]]:.2f} % of the weights on, no method is above 20 % "
            "accurate before retraining (chance: 10 %; effect: 20 % minus the highest accuracy "
            "of any method at any of these levels, per seed)",
            np.full(len(highest), 0.2),
            highest,
            scale=100,
        )
    )
    retrained = [t for t in sparse if len(acc(LAP, t, "acc_retrained"))]
    lead = {t: acc(LAP, t, "acc_retrained") - acc(MP, t, "acc_retrained") for t in retrained}
    for t in retrained:
        found.append(
            exceeds(
                f"After retraining at {survive[t]:.2f} % of the weights, LAP is more accurate "
                "than MP",
                acc(LAP, t, "acc_retrained"),
                acc(MP, t, "acc_retrained"),
                scale=100,
                paper=PAPER_OUTPERFORMS,
            )
        )
    base = retrained[0]
    for t in retrained[1:]:
        found.append(
            exceeds(
                f"LAP's lead over MP after retraining is larger at {survive[t]:.2f} % than at "
                f"{survive[base]:.2f} % of the weights",
                lead[t],
                lead[base],
                scale=100,
                paper=PAPER_HIGH_SPARSITY,
            )
        )
    for t in retrained[2:]:
        found.append(
            exceeds(
                f"LAP's lead over MP after retraining is smaller at {survive[t]:.2f} % than at "
                f"{survive[retrained[1]]:.2f} % of the weights (it levels off)",
                lead[retrained[1]],
                lead[t],
                scale=100,
            )
        )
    last = retrained[-1]
    found.append(
        exceeds(
            f"After retraining at {survive[last]:.2f} % of the weights, MP is below 11 % "
            "(at chance) (effect: 11 % minus MP's accuracy)",
            np.full(len(lead[last]), 0.11),
            acc(MP, last, "acc_retrained"),
            scale=100,
        )
    )
    dead = {
        m: {t: results.values("disconnected", experiment=exp, method=m, level=t) for t in levels}
        for m in (MP, LAP)
    }
    for group in ([sparse[0] - 1], sparse):
        where = (
            f"at {survive[group[0]]:.2f} %"
            if len(group) == 1
            else f"at every level from {survive[group[0]]:.2f} % on"
        )
        found.append(
            exceeds(
                f"MP leaves a larger share of its kept hidden-layer weights disconnected than "
                f"LAP {where} (effect: the smallest difference, in points of the kept weights)",
                np.min([dead[MP][t] - dead[LAP][t] for t in group], axis=0),
                scale=100,
            )
        )
    for method in (LAP, LFP, LBP):
        found.append(
            within(
                f"Right after pruning to {survive[first]:.2f} % of the weights, "
                f"{label(method)} and MP "
                "are within 2 points of each other",
                acc(method, first),
                acc(MP, first),
                margin=2,
                scale=100,
            )
        )
    found.append(
        exceeds(
            f"Right after pruning to {survive[first]:.2f} % of the weights, LAP-act is less "
            "accurate than MP",
            acc(MP, first),
            acc(LAP_ACT, first),
            scale=100,
        )
    )
    others = max(sample_sd(acc(m, first)) for m in results.settings["methods"] if m != LAP_ACT)
    found.append(
        exceeds(
            f"Right after pruning to {survive[first]:.2f} % of the weights, LAP-act's spread "
            "over seeds is more than twice any other method's (effect: the ratio of sample "
            "sds; one number)",
            [sample_sd(acc(LAP_ACT, first)) / others],
            margin=2,
            unit="×",
        )
    )
    units = {r["seed"]: r for r in results.select(units_level=first)}
    if units:  # section 2.8, stored by the units configurations
        found += unit_claims(units)
    return calibration.apply(results, found, VERSION)


SPREAD_WORDS = ("LAP-act's spread over seeds",)
"""Words of the claim on LAP-act's spread (one number per seed set) in :func:`claims`."""


def calibrated_spreads(cal: Mapping[str, Any] | None = None) -> np.ndarray:
    """LAP-act's spread claim measured on every seed set of the chapter's calibration: per
    calibration run (one seed offset), the sample sd of LAP-act's accuracy over its seeds
    divided by the largest of the other methods', at the first level (``cal``: a calibration
    dict, the committed one by default). The page's own seed set gives one such number; these
    say how often LAP-act is the most spread method."""
    cal = cal if cal is not None else calibration.load("02_lookahead")
    entry = next(c for c in cal["claims"] if all(w in c["statement"] for w in SPREAD_WORDS))
    return np.array([run["sample"][0] for run in entry["runs"]], dtype=float)


def unit_claims(units: Mapping[int, Mapping[str, Any]]) -> list[Claim]:
    """Claims on what LAP-act removes (:func:`lap_act_units`, one entry per seed: ``{seed:
    lap_act_units(...)}``), judged over the seeds like :func:`claims`: per seed, the
    smallest difference over the hidden layers of the alive units and of their mean
    activation rate, and the accuracies of LAP restricted to LAP-act's alive units against
    LAP and LAP-act (paired: one trained network per seed). Part of :func:`claims`, which
    computes which of them are asserted."""
    found = units[next(iter(units))]
    layers = list(found["survival"][LAP])
    survival = [u["survival"] for u in units.values()]
    accuracy = {m: [u["accuracy"][m] for u in units.values()] for m in found["accuracy"]}
    restricted = "LAP within LAP-act's units"
    return [
        exceeds(
            "In every hidden layer LAP-act leaves fewer units alive than LAP (effect: the "
            "smallest difference over the layers)",
            [min(s[LAP][n][0] - s[LAP_ACT][n][0] for n in layers) for s in survival],
            unit="units",
        ),
        exceeds(
            "In every hidden layer the units LAP-act keeps alive are more often active than "
            "LAP's (effect: the smallest difference of the mean rates over the layers)",
            [min(s[LAP_ACT][n][2] - s[LAP][n][2] for n in layers) for s in survival],
            scale=100,
            unit="points of rate",
        ),
        exceeds(
            "LAP restricted to LAP-act's alive units is less than 2 points below LAP",
            accuracy[restricted],
            accuracy[LAP],
            margin=-2,
            scale=100,
        ),
        exceeds(
            "LAP restricted to LAP-act's alive units is more than 5 points above LAP-act",
            accuracy[restricted],
            accuracy[LAP_ACT],
            margin=5,
            scale=100,
        ),
    ]


def _remaining_axis(ax: Any, survive: Mapping[int, float]) -> None:
    """Log x-axis of weights remaining, ticked at the levels, sparsest on the right."""
    ax.set_xscale("log")
    ax.set_xticks(list(survive.values()), [f"{s:.2f}" for s in survive.values()])
    ax.minorticks_off()
    ax.invert_xaxis()
    ax.set_xlabel("weights remaining (%)")


def error_figure(results: Results) -> Figure:
    """Test error against weights remaining, per method (mean ± sample sd over seeds), right after
    pruning and after retraining; one row per experiment."""
    names = experiments(results)
    fig = Figure(figsize=(11, 3.6 * len(names)), layout="tight")
    grid = fig.subplots(len(names), 2, sharey="row", squeeze=False)
    for axes, name in zip(grid, names, strict=True):
        survive = remaining(results, name)
        for ax, key, title in zip(
            axes,
            ["acc_pruned", "acc_retrained"],
            ["right after pruning", "after retraining"],
            strict=True,
        ):
            for method in results.settings["methods"]:
                color, marker = get_method(method).colour, MARKERS[method]
                pts = [(survive[t], accuracies(results, name, method, t, key)) for t in survive]
                pts = [(s, a) for s, a in pts if len(a)]
                if pts:
                    ax.errorbar(
                        [s for s, _ in pts],
                        [100 * (1 - a.mean()) for _, a in pts],
                        yerr=[100 * sample_sd(a) for _, a in pts],
                        color=color,
                        marker=marker,
                        capsize=3,
                        label=label(method),
                    )
            _remaining_axis(ax, survive)
            ax.set_title(f"{name}: {title}")
        axes[0].set_ylabel("test error (%)")
        axes[0].legend()
    return fig


def disagreement_figure(
    results: Results, experiment: str | None = None, seed: int | None = None
) -> Figure:
    """Per layer: the percentage of LAP's kept weights that MP does not keep, against the
    weights remaining (one seed; the first experiment unless ``experiment`` is given)."""
    seed = results.settings["seeds"][0] if seed is None else seed  # the first seed by default
    experiment = experiment or experiments(results)[0]
    survive = remaining(results, experiment)
    rows = [
        results.select(experiment=experiment, method=LAP, seed=seed, level=t)[0]["lap_only"]
        for t in survive
    ]
    fig = Figure(figsize=(6, 3.2), layout="tight")
    ax = fig.subplots()
    for n in rows[0]:
        ax.plot(list(survive.values()), [100 * r[n] for r in rows], marker="o", label=n)
    _remaining_axis(ax, survive)
    ax.set_ylabel("kept by LAP, not by MP (%)")
    ax.set_title(f"{experiment}, seed {seed}", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def figures(results: Results) -> dict[str, Figure]:
    """The chapter's two plots."""
    return {"error": error_figure(results), "disagreement": disagreement_figure(results)}


def disconnected_table(
    results: Results, experiment: str | None = None, methods: tuple[str, ...] = (MP, LAP)
) -> str:
    """Percentage of kept hidden-layer weights that are disconnected (mean over seeds), per
    method and level (the first experiment unless ``experiment`` is given)."""
    experiment = experiment or experiments(results)[0]
    header = [f"{s:.2f} %" for s in remaining(results, experiment).values()]
    rows = [
        [
            label(method),
            *(f"{100 * v:.1f}" for v in disconnected(results, experiment, method).values()),
        ]
        for method in methods
    ]
    return markdown_table(["method", *header], rows)


def table(results: Results) -> str:
    """Test accuracy (%, mean ± sample sd over seeds) per method and level, right after pruning and
    after retraining, one table per experiment, headed by the dense network's accuracy."""
    parts = []
    for name in experiments(results):
        survive = remaining(results, name)
        dense = dense_accuracy(results, name)
        rows = []
        for key, suffix in (("acc_pruned", ""), ("acc_retrained", ", retrained")):
            for method in results.settings["methods"]:
                cells = [accuracies(results, name, method, t, key) for t in survive]
                if any(len(c) for c in cells):
                    rows.append(
                        [
                            label(method) + suffix,
                            *(mean_sd_cell(c) if len(c) else "" for c in cells),
                        ]
                    )
        parts.append(
            f"**{name}**: dense test accuracy {mean_sd_cell(dense)} %; test accuracy (%) at "
            "each fraction of the weights remaining:\n\n"
            + markdown_table(["method", *(f"{s:.2f} %" for s in survive.values())], rows)
        )
    return "\n\n".join(parts)
