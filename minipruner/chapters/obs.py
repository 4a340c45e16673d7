"""Chapter 4's experiments: one-shot OBS, WoodFisher and CBS pruning without retraining.

Three experiments, each a kind of configuration:

- ``damping``: the damping trap. On each seed's trained MLPNet, its training accuracy and
  loss, the Fisher's mean diagonal ``tr(F)/d``, and how often WoodFisher's mask (WF-S)
  agrees with magnitude pruning's at one sparsity, with an absolute damping of ``1e-3`` and
  with a damping relative to ``tr(F)/d``; one configuration per seed;
- ``oneshot``: the CBS paper's one-shot experiment. Per (network, seed, sparsity): factorise
  the damped Fisher of the trained network's per-example gradients (cached across
  sparsities), compute the masks and weights of MP, MP+U, WF-S, WF, CBS-S and CBS, and
  measure each pruned network's test accuracy, beside the CBS-S swap search's history;
- ``swap_trace``: follow one swap search (first seed, one sparsity) and measure, along its
  iterates, its objective on the gradients it searched, the same objective on held-out
  training examples' gradients, and the training loss of the pruned network.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from .. import obs
from ..claims import Claim, exceeds, mark_asserted, within
from ..data import class_balanced_batch
from ..masks import masks_from_scores, prunable
from ..results import Results, markdown_table, sample_sd
from ..scale import by_scale, seed_offset, shifted_seeds
from ..train import evaluate
from . import load_data, trained_network

VERSION = 2  # 2: the damping check runs on every seed and records the training fit
GRID = ("seeds", "sparsities")  # enumerate configurations only
TITLE = "Second-order pruning: OBS, WoodFisher and the Combinatorial Brain Surgeon"
METHODS = ("MP", "MP+U", "WF-S", "WF", "CBS-S", "CBS")
NAMES = {"mlpnet": "MLPNet", "resnet20": "ResNet-20"}
# Yu et al. 2022, MLPNet on MNIST, one-shot, test accuracy (%); dense 93.97.
PAPER = {
    "MP": {0.9: 90.30, 0.95: 83.64, 0.98: 32.25},
    "WF": {0.9: 91.69, 0.95: 85.54, 0.98: 38.26},
    "CBS": {0.9: 93.14, 0.95: 88.92, 0.98: 55.45},
    "CBS-S": {0.98: 66.64},
}
STYLES = {
    "MP": "ko--",
    "MP+U": "ko-",
    "WF-S": "bs--",
    "WF": "bs-",
    "CBS-S": "r^--",
    "CBS": "r^-",
}


def settings(scale: str) -> dict[str, Any]:
    """The chapter's settings at ``scale``: MLPNet on mnist-5k with 1,000 gradients and a
    relative damping of 1e-6, three seeds (quick); MLPNet on MNIST with the paper's 10,000
    gradients and damping 1e-3, and ResNet-20 on CIFAR-10 with a per-layer block Fisher,
    five seeds (full)."""
    mlpnet = {
        "model": "mlpnet",
        "dataset": by_scale("mnist-5k", "mnist", scale),
        "train": dict(epochs=30, lr=0.05, momentum=0.9, batch_size=64),
        "per_class": by_scale(100, 1000, scale),  # gradients: 10 classes x per_class
        "damp": by_scale(dict(damp=1e-6, relative=True), dict(damp=1e-3, relative=False), scale),
        "blocks": None,  # None: the full Fisher; "layer": one block per layer
    }
    resnet20 = {
        "model": "resnet20",
        "dataset": "cifar10",
        "train": dict(
            epochs=160,
            lr=0.1,
            momentum=0.9,
            weight_decay=1e-4,
            batch_size=128,
            schedule="multistep",
            milestones=[80, 120],
        ),
        "per_class": 100,
        "damp": dict(damp=1e-5, relative=False),
        "blocks": "layer",
    }
    return {
        "seeds": shifted_seeds([0, 1, 2, 3, 4]),
        "seed_offset": seed_offset(),
        "sparsities": [0.5, 0.7, 0.9, 0.95, 0.98],
        "methods": list(METHODS),
        "networks": by_scale({"mlpnet": mlpnet}, {"mlpnet": mlpnet, "resnet20": resnet20}, scale),
        # CBS-S's swap search, and the training examples that choose among its iterates
        "cbs": by_scale(dict(max_iters=200), dict(max_iters=1000), scale),
        "cbs_loss_per_class": 100,
        "cbs_loss_every": 10,
        # the damping trap: WF-S against MP at this sparsity, absolute vs relative damping
        "damping_trap": dict(sparsity=0.9, absolute=1e-3, relative=1e-6),
        # the swap search followed in section 4.7 (first seed), at this many iterates
        "swap_trace": dict(sparsity=0.9, points=12),
        "scale": scale,
    }


def configurations(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """One ``damping`` configuration per seed (MLPNet), one ``oneshot`` configuration per
    (network, seed, sparsity), and one ``swap_trace`` configuration (MLPNet, first seed);
    ordered so that consecutive configurations share a seed's Fisher."""
    first = settings["seeds"][0]
    configs: list[dict[str, Any]] = []
    for network in settings["networks"]:
        for seed in settings["seeds"]:
            if network == "mlpnet":
                configs.append({"experiment": "damping", "network": network, "seed": seed})
            configs += [
                {"experiment": "oneshot", "network": network, "seed": seed, "sparsity": s}
                for s in settings["sparsities"]
            ]
            if network == "mlpnet" and seed == first:
                configs.append(
                    {
                        "experiment": "swap_trace",
                        "network": "mlpnet",
                        "seed": seed,
                        "sparsity": settings["swap_trace"]["sparsity"],
                    }
                )
    return configs


def model(settings: dict[str, Any], network: str = "mlpnet", seed: int | None = None) -> nn.Module:
    """The chapter's trained ``network`` for ``seed`` (trained once, then loaded from the
    cache)."""
    seed = settings["seeds"][0] if seed is None else seed  # the first seed by default
    return trained_network(settings["networks"][network], settings["scale"], seed)


def pruned_copy(model: nn.Module, new_w: torch.Tensor, keep: torch.Tensor) -> nn.Module:
    """A copy of ``model`` with flat weights ``new_w`` (zero where not kept) and its masks."""
    net = copy.deepcopy(model)
    obs.set_flat_weights(net, new_w, keep)
    return net


@dataclass
class Prepared:
    """What every sparsity of one (network, seed) shares: the trained model, its flat
    weights ``w``, the per-example gradients ``G`` (float64), the damped Fisher operator,
    WoodFisher's single-weight saliencies, and the training examples that choose among
    CBS-S's iterates."""

    model: nn.Module
    w: torch.Tensor
    grads: torch.Tensor
    fisher: obs.DampedFisher | obs.BlockDampedFisher
    saliency: torch.Tensor
    loss_data: torch.utils.data.TensorDataset


def gradients(
    model: nn.Module, data: torch.utils.data.Dataset, per_class: int, seed: int
) -> torch.Tensor:
    """Per-example gradients (float64, ``N x d``) of ``per_class`` training examples of every
    class, chosen by ``seed``."""
    device = next(model.parameters()).device
    x, y = class_balanced_batch(data, per_class, seed=seed)
    return obs.per_sample_grads(model, x.to(device), y.to(device)).double()


@functools.lru_cache(maxsize=1)
def _prepared(network_json: str, scale: str, seed: int, loss_per_class: int) -> Prepared:
    net = json.loads(network_json)
    network = trained_network(net, scale, seed)
    train_data, _ = load_data(net["dataset"], scale)
    G = gradients(network, train_data, net["per_class"], seed)
    w = obs.flatten_weights(prunable(network)).double()
    damp = net["damp"]
    if net["blocks"] is None:
        fisher = obs.DampedFisher(G, **damp)
    else:
        fisher = obs.BlockDampedFisher(
            G, damp["damp"], obs.layer_blocks(network), relative=damp["relative"]
        )
    saliency = obs.single_weight_saliency(w, fisher)
    loss_x, loss_y = class_balanced_batch(train_data, loss_per_class, seed=seed + 100)
    loss_data = torch.utils.data.TensorDataset(loss_x, loss_y)
    return Prepared(network, w, G, fisher, saliency, loss_data)


def prepared(settings: dict[str, Any], network: str, seed: int) -> Prepared:
    """The Fisher and friends of one trained (network, seed), computed once per process and
    shared by every sparsity (see :class:`Prepared`)."""
    net = json.dumps(settings["networks"][network], sort_keys=True)
    return _prepared(net, settings["scale"], seed, settings["cbs_loss_per_class"])


def swap_search(p: Prepared, sparsity: float, settings: dict[str, Any], seed: int) -> obs.CBSResult:
    """CBS-S's selection at ``sparsity``: the swap search on the Fisher's gradients, its
    iterate chosen by the training loss of the pruned network (without update) on the
    ``cbs_loss_per_class`` examples per class of ``p.loss_data``."""
    n_prune = round(sparsity * p.w.numel())

    def training_loss(keep: torch.Tensor) -> float:
        return evaluate(pruned_copy(p.model, p.w, keep), p.loss_data).loss

    return obs.cbs_select_window(
        p.w,
        p.grads,
        n_prune,
        seed=seed,
        return_history=True,
        loss_every=settings["cbs_loss_every"],
        loss_fn=training_loss,
        **settings["cbs"],
    )


def damping_trap(config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """How well the trained network fits its training set (accuracy and mean loss over all
    of it), the Fisher's mean diagonal ``tr(F)/d = (1/(N d)) sum_n ||g_n||^2``, and the
    fraction of weights on which WF-S's mask agrees with MP's at the trap's sparsity, with
    absolute and with relative damping."""
    p = prepared(settings, config["network"], config["seed"])
    train_data, _ = load_data(settings["networks"][config["network"]]["dataset"], settings["scale"])
    fit = evaluate(p.model, train_data)
    trap = settings["damping_trap"]
    s = trap["sparsity"]
    mean_diag = (p.grads.square().sum(0) / len(p.grads)).mean().item()
    mp_keep = masks_from_scores({"w": p.w.abs()}, s)["w"]
    agree = {}
    for kind, damping in (
        ("absolute", obs.DampedFisher(p.grads, trap["absolute"])),
        ("relative", obs.DampedFisher(p.grads, trap["relative"], relative=True)),
    ):
        saliency = obs.single_weight_saliency(p.w, damping)
        wf_keep = masks_from_scores({"w": saliency}, s)["w"]
        agree[kind] = (wf_keep == mp_keep).float().mean().item()
    return {
        "train_accuracy": fit.accuracy,
        "train_loss": fit.loss,
        "mean_diag": mean_diag,
        "agree_absolute": agree["absolute"],
        "agree_relative": agree["relative"],
        "n_gradients": len(p.grads),
        "n_weights": p.w.numel(),
    }


def one_shot(config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Every method at one sparsity for one trained network, without retraining: the test
    accuracy of each pruned network (``accuracy[method]``) and of the dense one, the CBS-S
    swap search's history (objective per iterate, training loss at the iterates measured,
    the iterate chosen) and where its set differs from MP's (flat weight indices)."""
    seed, s = config["seed"], config["sparsity"]
    p = prepared(settings, config["network"], seed)
    _, test_data = load_data(settings["networks"][config["network"]]["dataset"], settings["scale"])
    w, fisher = p.w, p.fisher
    keep = {
        "MP": masks_from_scores({"w": w.abs()}, s)["w"],
        "WF-S": masks_from_scores({"w": p.saliency}, s)["w"],
    }
    search = swap_search(p, s, settings, seed)
    keep["CBS-S"] = search.keep
    weights = {
        "MP": w,
        "WF-S": w,
        "CBS-S": w,
        "MP+U": w + obs.multi_weight_update(w, fisher, ~keep["MP"]),
        "WF": w + obs.woodfisher_update(w, fisher, ~keep["WF-S"]),
        "CBS": w + obs.multi_weight_update(w, fisher, ~keep["CBS-S"]),
    }
    keep["WF"], keep["CBS"], keep["MP+U"] = keep["WF-S"], keep["CBS-S"], keep["MP"]
    accuracy = {
        m: evaluate(pruned_copy(p.model, weights[m], keep[m]), test_data).accuracy
        for m in settings["methods"]
    }
    iterates = sorted(search.losses)
    return {
        "accuracy": accuracy,
        "acc_dense": evaluate(p.model, test_data).accuracy,
        "n_weights": w.numel(),
        "n_pruned": int((~keep["MP"]).sum()),
        "damp": fisher.damp,
        "cbs": {
            "objectives": list(search.objectives),
            "loss_iterates": iterates,
            "losses": [search.losses[t] for t in iterates],
            "chosen": search.chosen,
            "iterations": search.iterations,
            "start_index": search.start_index,
            "start_objectives": list(search.start_objectives),
            "swaps": [list(pair) for pair in search.swaps],
            "kept_not_mp": (keep["CBS-S"] & ~keep["MP"]).nonzero().squeeze(1).tolist(),
            "pruned_not_mp": (~keep["CBS-S"] & keep["MP"]).nonzero().squeeze(1).tolist(),
        },
    }


def swap_trace(config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Along one CBS-S swap search (the same search as ``one_shot``'s): at ``points`` evenly
    spaced iterates, its objective ``f`` on the searched gradients (``fit``), ``f`` on the
    gradients of other training examples (``held``, chosen by seed + 1) and the training
    loss of the network pruned to that iterate's set, without update (``loss``)."""
    seed, s = config["seed"], config["sparsity"]
    net = settings["networks"][config["network"]]
    p = prepared(settings, config["network"], seed)
    train_data, _ = load_data(net["dataset"], settings["scale"])
    search = swap_search(p, s, settings, seed)
    held_grads = gradients(p.model, train_data, net["per_class"], seed + 1)
    last = len(search.objectives) - 1
    steps = sorted({int(t) for t in np.linspace(0, last, settings["swap_trace"]["points"])})
    return {
        "steps": steps,
        "fit": [search.objectives[t] for t in steps],
        "held": [obs.cbs_objective(p.w, held_grads, search.keep_at(t)) for t in steps],
        "loss": [
            evaluate(pruned_copy(p.model, p.w, search.keep_at(t)), train_data).loss for t in steps
        ],
        "chosen": search.chosen,
        "n_iterates": last + 1,
    }


def run(config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration (see the module docstring) and return its measurements."""
    experiments = {"damping": damping_trap, "oneshot": one_shot, "swap_trace": swap_trace}
    return experiments[config["experiment"]](config, settings)


def accuracies(
    results: Results, method: str, sparsity: float, network: str = "mlpnet"
) -> np.ndarray:
    """Test accuracy (%) of ``method`` at ``sparsity``, one entry per seed (in seed order)."""
    rows = results.select(experiment="oneshot", network=network, sparsity=sparsity)
    if not rows:
        raise KeyError(f"no one-shot result for {network} at sparsity {sparsity}")
    return 100 * np.array([r["accuracy"][method] for r in rows])


def dense_accuracies(results: Results, network: str = "mlpnet") -> np.ndarray:
    """Test accuracy (%) of the dense trained network, one entry per seed."""
    first = results.settings["sparsities"][0]
    rows = results.select(experiment="oneshot", network=network, sparsity=first)
    return 100 * np.array([r["acc_dense"] for r in rows])


def networks(results: Results) -> list[str]:
    """The networks with one-shot results, in the settings' order."""
    return [n for n in results.settings["networks"] if results.select(network=n)]


def accuracy_figure(results: Results, network: str = "mlpnet") -> Figure:
    """Test accuracy against sparsity for every method (mean ± sd over seeds), one-shot
    without retraining, with the CBS paper's numbers for MLPNet."""
    sparsities = results.settings["sparsities"]
    x = [100 * s for s in sparsities]
    fig = Figure(figsize=(6.5, 3.8), layout="tight")
    ax = fig.subplots()
    for m in results.settings["methods"]:
        acc = [accuracies(results, m, s, network) for s in sparsities]
        ax.errorbar(
            x,
            [a.mean() for a in acc],
            yerr=[sample_sd(a) for a in acc],
            fmt=STYLES.get(m, "o-"),
            capsize=3,
            label=m,
        )
    if network == "mlpnet":
        for m, marker in (("MP", "kx"), ("WF", "bx"), ("CBS", "rx")):
            ax.plot(
                [100 * s for s in PAPER[m]],
                list(PAPER[m].values()),
                marker,
                ms=9,
                mew=2,
                label=f"{m} (paper)",
            )
    ax.set_xlabel("sparsity (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{NAMES.get(network, network)}, one-shot, no retraining ({results.scale} scale)")
    ax.legend(fontsize=7, ncol=2)
    return fig


def swap_trace_figure(results: Results) -> Figure:
    """Along the followed swap search: ``f`` on the searched and on held-out gradients (log
    scale, left axis) and the pruned network's training loss (right axis)."""
    (trace,) = results.select(experiment="swap_trace")
    steps = trace["steps"]
    fig = Figure(figsize=(6.5, 3.5), layout="tight")
    ax = fig.subplots()
    ax.plot(steps, trace["fit"], "o-", label="f on the gradients searched")
    ax.plot(steps, trace["held"], "s-", label="f on held-out gradients")
    ax.set_yscale("log")
    ax.set_xlabel("swaps made")
    ax.set_ylabel("objective f")
    ax2 = ax.twinx()
    ax2.plot(steps, trace["loss"], "k^:", label="training loss")
    ax2.set_ylabel("training loss")
    ax.legend(loc="center left", fontsize=8)
    ax2.legend(loc="center right", fontsize=8)
    ax.set_title(
        f"CBS-S swap search, seed {trace['seed']}, {trace['sparsity']:.0%} sparsity", fontsize=9
    )
    return fig


def figures(results: Results) -> dict[str, Figure]:
    """The chapter's plots: accuracy against sparsity per network, and the swap trace."""
    out = {}
    for network in networks(results):
        name = "accuracy" if network == "mlpnet" else f"accuracy_{network}"
        out[name] = accuracy_figure(results, network)
    if results.select(experiment="swap_trace"):
        out["swap_trace"] = swap_trace_figure(results)
    return out


def damping_table(results: Results) -> str:
    """The damping check per seed: training accuracy and loss, ``tr(F)/d``, how many times
    the absolute damping exceeds it, and how often WF-S's mask agrees with MP's with the
    absolute and with the relative damping."""
    absolute = results.settings["damping_trap"]["absolute"]
    relative = results.settings["damping_trap"]["relative"]
    rows = [
        [
            r["seed"],
            f"{100 * r['train_accuracy']:.2f}",
            f"{r['train_loss']:.1e}",
            f"{r['mean_diag']:.1e}",
            f"{absolute / r['mean_diag']:,.0f}",
            f"{100 * r['agree_absolute']:.3f}",
            f"{100 * r['agree_relative']:.3f}",
        ]
        for r in results.select(experiment="damping")
    ]
    header = [
        "seed",
        "training accuracy (%)",
        "training loss",
        "tr(F)/d",
        f"{absolute:g} / (tr(F)/d)",
        f"WF-S = MP, damping {absolute:g} (% of weights)",
        f"WF-S = MP, relative {relative:g} (%)",
    ]
    return markdown_table(header, rows)


def table(results: Results, network: str | None = None) -> str:
    """Test accuracy (%, mean ± sd over seeds) per network, sparsity and method, one-shot
    without retraining; the CBS paper's MLPNet numbers in brackets. ``network``: only that
    one (default: all)."""
    methods = results.settings["methods"]
    rows = []
    for net in [network] if network is not None else networks(results):
        for s in results.settings["sparsities"]:
            cells = []
            for m in methods:
                a = accuracies(results, m, s, net)
                paper = PAPER.get(m, {}).get(s) if net == "mlpnet" else None
                cells.append(
                    f"{a.mean():.1f} ± {sample_sd(a):.1f}" + (f" [{paper:.1f}]" if paper else "")
                )
            rows.append([NAMES.get(net, net), f"{s:.0%}", *cells])
    return markdown_table(["network", "sparsity", *methods], rows)


# ------------------------------------------------------------------ claims


def paper_pair(a: str, b: str, sparsity: float) -> str:
    """What the CBS paper reports for ``a`` and ``b`` at ``sparsity`` (MLPNet), if both."""
    pa, pb = PAPER.get(a, {}).get(sparsity), PAPER.get(b, {}).get(sparsity)
    if pa is None or pb is None:
        return ""
    return f"{a} {pa:.1f} vs {b} {pb:.1f} ({pa - pb:+.1f})"


# The claims asserted at the quick scale: each held at seed offsets 0, 100 and 200 (five
# seeds each, one thread) and at offset 0 with two threads. The others moved between offsets:
# CBS against WF or CBS-S, CBS-S against MP, anything at 98 %, the training loss along the
# search, and tr(F)/d against 1e-3 (its log ratio spreads over orders of magnitude between
# seeds: not distinguishable at offset 200, where 1e-3 was 1.3 to 4 times tr(F)/d in four
# seeds, yet WF-S still agreed with MP on 99.98 % of the weights).
ASSERTED = (
    "trap_fit",
    "trap_absolute",
    "trap_relative",
    "wf_mp_0.9",
    "wf_mp_0.95",
    "mpu_mp_0.9",
    "mpu_mp_0.95",
    "wfs_mp_0.5",
    "wfs_mp_0.7",
    "wfs_mp_0.9",
    "swap_fit",
    "swap_early",
    "mpu_cbs_0.95",
    "wf_cbs_0.98",
)


def named_claims(results: Results) -> dict[str, Claim]:
    """The chapter's claims by short name (see :func:`claims`); those named in
    :data:`ASSERTED` are marked asserted at the quick scale."""
    return mark_asserted(_measured_claims(results), ASSERTED if results.scale == "quick" else ())


def _measured_claims(results: Results) -> dict[str, Claim]:
    absolute = results.settings["damping_trap"]["absolute"]
    relative = results.settings["damping_trap"]["relative"]
    trap_s = results.settings["damping_trap"]["sparsity"]
    traps = results.select(experiment="damping")
    out: dict[str, Claim] = {}
    if traps:
        fit = [r["train_accuracy"] for r in traps]
        diag = np.array([r["mean_diag"] for r in traps])
        out["trap_fit"] = exceeds(
            "the damping trap: each trained network fits more than 99 % of its training set",
            fit,
            margin=99,
            scale=100,
            unit="% (training accuracy)",
        )
        out["trap_diag"] = exceeds(
            f"the damping trap: the Fisher's mean diagonal tr(F)/d is below the paper's "
            f"absolute damping {absolute:g}",
            np.log10(absolute / diag),
            margin=0,
            unit=f"log10({absolute:g} / (tr(F)/d))",
        )
        out["trap_absolute"] = exceeds(
            f"the damping trap: with the absolute damping {absolute:g}, WF-S's mask at "
            f"{trap_s:.0%} agrees with MP's on more than 99.9 % of the weights",
            [r["agree_absolute"] for r in traps],
            margin=99.9,
            scale=100,
            unit="% of weights",
        )
        out["trap_relative"] = exceeds(
            f"with the relative damping {relative:g}, WF-S's mask at {trap_s:.0%} still agrees "
            "with MP's on more than 99.5 % of the weights",
            [r["agree_relative"] for r in traps],
            margin=99.5,
            scale=100,
            unit="% of weights",
        )

    def acc(method: str, s: float) -> np.ndarray:
        return accuracies(results, method, s) / 100  # claims scale to points themselves

    def beats(key: str, a: str, b: str, s: float, margin: float = 0.0, **kw: Any) -> None:
        out[key] = exceeds(
            kw.pop("statement", f"{a} beats {b} at {s:.0%}"),
            acc(a, s),
            acc(b, s),
            margin,
            scale=100,
            paper=kw.pop("paper", paper_pair(a, b, s)),
            **kw,
        )

    sparsities = results.settings["sparsities"]
    high = [s for s in (0.9, 0.95, 0.98) if s in sparsities]
    # second-order updates help
    for s in high:
        beats(f"wf_mp_{s:g}", "WF", "MP", s)
    for s in high:
        beats(f"mpu_mp_{s:g}", "MP+U", "MP", s, statement=f"MP+U beats MP at {s:.0%}")
    for s in high:
        beats(f"cbs_cbss_{s:g}", "CBS", "CBS-S", s)
    # second-order selection does not
    for s in sparsities:
        out[f"wfs_mp_{s:g}"] = within(
            f"WF-S is within 1.5 points of MP at {s:.0%}",
            acc("WF-S", s),
            acc("MP", s),
            1.5,
            scale=100,
        )
    for s in high:
        beats(f"mp_cbss_{s:g}", "MP", "CBS-S", s, statement=f"CBS-S is below MP at {s:.0%}")
    # the swap search overfits a low-rank Fisher (every seed's search at the trace's sparsity)
    trace_s = results.settings["swap_trace"]["sparsity"]
    rows = results.select(experiment="oneshot", network="mlpnet", sparsity=trace_s)
    if rows:
        cbs = [r["cbs"] for r in rows]
        out["swap_fit"] = exceeds(
            f"at {trace_s:.0%}, the swap search lowers its objective f on the gradients it "
            "searched more than ten-fold",
            [np.log10(c["objectives"][0] / c["objectives"][-1]) for c in cbs],
            margin=1,
            unit="log10(f at start / f at end)",
        )
        out["swap_loss"] = exceeds(
            f"at {trace_s:.0%}, the training loss of the pruned network (no update) is higher at "
            "the search's last measured iterate than at its start",
            [c["losses"][-1] for c in cbs],
            [c["losses"][0] for c in cbs],
            unit="(loss)",
        )
        out["swap_early"] = exceeds(
            f"at {trace_s:.0%}, training loss chooses an iterate before the search's last",
            [len(c["objectives"]) - 1 - c["chosen"] for c in cbs],
            unit="iterates",
        )
    for trace in results.select(experiment="swap_trace"):
        out["swap_held"] = exceeds(
            f"along the followed search (seed {trace['seed']}, {trace['sparsity']:.0%}), f on "
            "held-out gradients rises",
            [np.log10(trace["held"][-1] / trace["held"][0])],
            unit="log10(f at end / f at start)",
        )
    # CBS is not ahead of WF here
    for s in high:
        if s == 0.9:
            beats(
                f"wf_cbs_{s:g}",
                "WF",
                "CBS",
                s,
                -1.0,
                statement=f"CBS is not more than 1 point ahead of WF at {s:.0%}",
                paper=paper_pair("WF", "CBS", s),
            )
            out[f"cbs_wf_level_{s:g}"] = within(
                f"CBS is within 1 point of WF at {s:.0%}",
                acc("CBS", s),
                acc("WF", s),
                1.0,
                scale=100,
                paper=paper_pair("CBS", "WF", s),
            )
        else:
            beats(f"wf_cbs_{s:g}", "WF", "CBS", s, statement=f"CBS is below WF at {s:.0%}")
    for s in high:
        beats(f"mpu_cbs_{s:g}", "MP+U", "CBS", s, statement=f"MP+U beats CBS at {s:.0%}")
    return out


def claims(results: Results) -> list[Claim]:
    """The chapter's measured claims (MLPNet, one-shot), each judged over seeds
    (:mod:`minipruner.claims`; accuracies paired by seed, in points): the damping trap on
    every seed's network (training fit, tr(F)/d against the absolute damping, WF-S's
    agreement with MP under both dampings); whether the second-order updates beat MP (WF,
    MP+U) and CBS-S (CBS); whether second-order selection does not (WF-S level with MP,
    CBS-S below MP); the swap search's overfitting at the traced sparsity (objective,
    training loss, the iterate chosen on every seed; held-out objective on the traced seed);
    and CBS against WF and MP+U. ``asserted`` marks the claims that held at every seed
    offset tried."""
    return list(named_claims(results).values())
