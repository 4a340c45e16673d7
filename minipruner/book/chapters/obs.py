"""Chapter 4's experiments: one-shot OBS, WoodFisher and CBS pruning without retraining.

Two experiments, each a kind of configuration:

- ``damping``: the damping trap. For each seed, two MLPNets trained on the same digits, one
  briefly (the paper's kind of fit: it does not fit every training example) and one long
  enough to memorise them; for each, its training accuracy and loss, the Fisher's mean
  diagonal ``tr(F)/d``, and how often WoodFisher's mask (WF-S) agrees with magnitude
  pruning's at one sparsity under the paper's absolute damping ``1e-3``;
- ``oneshot``: the CBS paper's one-shot experiment. Per (network, seed, sparsity): factorise
  the damped Fisher of the trained network's per-example gradients (cached across
  sparsities), compute the masks and weights of MP, MP+U, WF-S, WF, CBS-S and CBS, and
  measure each pruned network's test accuracy, beside the record of CBS-S's search (the
  released search, :func:`minipruner.methods.cbs.cbs_select`).

Results are keyed by method id (:data:`METHODS`, entries of :data:`minipruner.methods.METHODS`:
``accuracy[id]``); pages print each method's table label and draw its table colour. The
method ids are not in :data:`GRID`: one ``oneshot`` configuration computes all six methods,
because they share everything costly. The per-example gradients, the damped Fisher's
factorisation and WoodFisher's saliencies are computed once per (network, seed) and CBS-S's
search once per sparsity, and the six methods are three selections paired with updates on
them (CBS-S and CBS share one search; the record of the search compares its set with
magnitude pruning's). A configuration per method would repeat the gradients, the
factorisation and (for CBS-S and CBS) the search, the longest step, in every worker process
that runs one of them (the Ray executor spreads configurations over processes; this module
caches one Fisher per process), and would leave the dense accuracy and the search's record
to no method. So
adding a method to :data:`METHODS` changes the settings and recomputes the one-shot
configurations, as the paper's comparison of all methods on one Fisher wants.

The short names of :data:`SHORT` (``"MP"``, ``"WF"``, ``"CBS"``, ...) are not ids: they
are the names by which the CBS paper's table (:data:`PAPER`, :func:`paper_pair`) and this
chapter's claims name the methods, and stay as they are.

A reader maps chapter 4 to this module (the experiments and the claims), to
:mod:`minipruner.book.chapters.obs_page` (what the page shows from stored results alone: the
accessors the claims read, the CBS paper's numbers, two figures and three tables) and to
:mod:`minipruner.methods.obs` (the methods).
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ...core.data import class_balanced_batch
from ...core.masks import keep_mask, prunable
from ...core.scale import by_scale, shifted_seeds
from ...core.scale import seed_offset as checked_offset
from ...core.train import evaluate
from ...experiments.records import Results
from ...methods import get_method, obs
from .. import calibration
from ..claims import Claim, exceeds, within
from . import load_data, network_args, obs_page, trained_network
from .obs_page import PAPER, PAPER_DENSE, SHORT, accuracies

VERSION = 3  # 3: the released CBS search, all training digits, a network not memorised
GRID = ("seeds", "sparsities")  # enumerate configurations only
TITLE = "Second-order pruning: OBS, WoodFisher and the Combinatorial Brain Surgeon"
EXPLORER = "obs_explorer"  # its explorer in minipruner.book.explorers
HEADLINES = (("WF beats MP at 90%",), ("CBS beats WF at 95%",), ("CBS-S beats MP at 90%",))
"""The claims (words of their statements) the README's summary table shows for this chapter."""
METHODS = ("magnitude-global", "mp+u", "wf-s", "wf", "cbs-s", "cbs")
"""The chapter's methods, ids of :data:`minipruner.methods.METHODS` (the settings'
``"methods"``; results are keyed by them). Each is one selection and one update
(:attr:`minipruner.methods.Method.obs_steps`), which this page composes on flat vectors
shared by all six; pages print :attr:`~minipruner.methods.Method.label` and draw
:attr:`~minipruner.methods.Method.colour`."""
figures = obs_page.figures
"""The chapter's plots (:func:`.obs_page.figures`)."""
table = obs_page.table
"""The chapter's table of one-shot accuracies (:func:`.obs_page.table`)."""
# What else the page reads from stored results (:mod:`.obs_page`), where the notebook, the tests
# and the explorer read it: chapter.<name>.
NAMES, MARKERS = obs_page.NAMES, obs_page.MARKERS
dense_accuracies = obs_page.dense_accuracies
networks = obs_page.networks
label = obs_page.label
paper_accuracy = obs_page.paper_accuracy
accuracy_figure = obs_page.accuracy_figure
search_figure = obs_page.search_figure
damping_table = obs_page.damping_table
search_table = obs_page.search_table
# MLPNet's training in the damping trap: briefly (the paper's kind of fit) and long.
FITS = {
    "brief": dict(epochs=5, lr=0.01, momentum=0.9, batch_size=64),
    "long": dict(epochs=30, lr=0.05, momentum=0.9, batch_size=64),
}


def settings(scale: str, seed_offset: int | None = None) -> dict[str, Any]:
    """The chapter's settings at ``scale``.

    Quick: MLPNet on mnist-5k trained briefly (5 epochs at learning rate 0.01: it fits
    about 95 % of its 4,000 training digits, as the paper's network fits MNIST, instead of
    memorising them), all 4,000 training digits as gradients, the paper's absolute damping
    ``1e-3``, sparsities 90/95/98 % (the paper's), five seeds. Full: MLPNet on MNIST
    (30 epochs) with the paper's 10,000 gradients and damping ``1e-3``, and ResNet-20 on
    CIFAR-10 with a per-layer block Fisher, five sparsities. CBS-S runs the released search
    with the release's MLPNet window, patience, starts and iterations, but a relative swap
    threshold (gain > ``epsilon * f``) where the release's is absolute (gain >= ``1e-4``), and
    the other departures :func:`minipruner.methods.cbs.cbs_select` lists; its start is picked by the
    loss on (at most 5,000 of) the gradient examples and its iterate by the loss on the whole
    training set."""
    offset = checked_offset(seed_offset)  # added to every seed; None: $MINIPRUNER_SEED_OFFSET
    mlpnet = {
        "model": "mlpnet",
        "dataset": by_scale("mnist-5k", "mnist", scale),
        "train": by_scale(FITS["brief"], FITS["long"], scale),
        "per_class": by_scale(400, 1000, scale),  # gradients: quick, all 4,000 digits
        "damp": dict(damp=1e-3, relative=False),
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
        "seeds": shifted_seeds([0, 1, 2, 3, 4], offset),
        "seed_offset": offset,
        "sparsities": by_scale([0.9, 0.95, 0.98], [0.5, 0.7, 0.9, 0.95, 0.98], scale),
        "methods": list(METHODS),
        "networks": by_scale({"mlpnet": mlpnet}, {"mlpnet": mlpnet, "resnet20": resnet20}, scale),
        # CBS-S: the released search; rho, tau, n_starts, patience and max_iter as in the
        # release's MLPNet runs, epsilon as a relative threshold (the release's 1e-4 is
        # absolute; see cbs_select)
        "cbs": dict(n_starts=50, rho=10, tau=20, epsilon=1e-4, patience=5, max_iter=100),
        "start_examples": 5000,  # the start is picked on at most this many gradient examples
        # the damping trap: WF-S against MP at this sparsity, brief vs long training
        "damping_trap": dict(sparsity=0.9, damp=1e-3, per_class=100, fits=FITS),
        "scale": scale,
    }


def configurations(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """One ``damping`` configuration per seed (MLPNet) and one ``oneshot`` configuration per
    (network, seed, sparsity); ordered so that consecutive configurations share a seed's
    Fisher."""
    configs: list[dict[str, Any]] = []
    for network in settings["networks"]:
        for seed in settings["seeds"]:
            if network == "mlpnet":
                configs.append({"experiment": "damping", "network": network, "seed": seed})
            configs += [
                {"experiment": "oneshot", "network": network, "seed": seed, "sparsity": s}
                for s in settings["sparsities"]
            ]
    return configs


def model(settings: dict[str, Any], network: str = "mlpnet", seed: int | None = None) -> nn.Module:
    """The chapter's trained ``network`` for ``seed`` (trained once, then loaded from the
    cache)."""
    seed = settings["seeds"][0] if seed is None else seed  # the first seed by default
    return trained_network(settings["networks"][network], settings["scale"], seed)


def trained_networks(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Every network and seed's trained network, and MLPNet under each fit of the damping
    trap (brief and long training)."""
    scale, out = settings["scale"], []
    for name, net in settings["networks"].items():
        for seed in settings["seeds"]:
            out.append(network_args(net, scale, seed))
            if name == "mlpnet":
                fits = settings["damping_trap"]["fits"].values()
                out += [network_args({**net, "train": fit}, scale, seed) for fit in fits]
    return out


def config_trainings(settings: dict[str, Any], config: dict[str, Any]) -> list[dict[str, Any]]:
    """The full-scale cost of ``config``
    (:func:`~minipruner.experiments.protocol.config_trainings`): none counted. One-shot pruning and
    the damping trap train nothing; their Fisher matrices and CBS searches are not trainings, so
    the estimate is a lower bound here."""
    return []


@dataclass
class Prepared:
    """What every sparsity of one (network, seed) shares: the trained model, its flat
    weights ``w``, the per-example gradients ``G`` (float64), the damped Fisher operator,
    WoodFisher's single-weight saliencies, the examples that pick CBS-S's start (at most
    ``start_examples`` of the gradient examples) and the training set that picks its
    iterate."""

    model: nn.Module
    w: torch.Tensor
    grads: torch.Tensor
    fisher: obs.DampedFisher | obs.BlockDampedFisher
    saliency: torch.Tensor
    start_data: torch.utils.data.TensorDataset
    train_data: torch.utils.data.Dataset


def gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example gradients (float64, ``N x d``) of the loss on ``(x, y)``."""
    device = next(model.parameters()).device
    return obs.per_sample_grads(model, x.to(device), y.to(device)).double()


@dataclass
class _Examples:
    # What does not depend on the damping: the network, its weights and gradients.
    model: nn.Module
    w: torch.Tensor
    grads: torch.Tensor
    start_data: torch.utils.data.TensorDataset
    train_data: torch.utils.data.Dataset


@functools.lru_cache(maxsize=1)
def _examples(network_json: str, scale: str, seed: int, start_examples: int) -> _Examples:
    net = json.loads(network_json)
    network = trained_network(net, scale, seed)
    train_data, _ = load_data(net["dataset"], scale)
    x, y = class_balanced_batch(train_data, net["per_class"], seed=seed)
    G = gradients(network, x, y)
    w = obs.flatten_weights(prunable(network)).double()
    pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    pick = pick[:start_examples].sort().values  # every example when there are fewer
    start = torch.utils.data.TensorDataset(x[pick], y[pick])
    return _Examples(network, w, G, start, train_data)


@functools.lru_cache(maxsize=1)
def _spectrum(network_json: str, scale: str, seed: int, start_examples: int) -> obs.FisherSpectrum:
    return obs.FisherSpectrum(_examples(network_json, scale, seed, start_examples).grads)


def _undamped(settings: dict[str, Any], network: str, seed: int) -> tuple[tuple, dict]:
    # The cache key of what does not depend on the damping, and the damping.
    net = dict(settings["networks"][network])
    damp = net.pop("damp")
    return (
        json.dumps(net, sort_keys=True),
        settings["scale"],
        seed,
        settings["start_examples"],
    ), damp


@functools.lru_cache(maxsize=1)
def _prepared(key: tuple, damp_json: str, spectrum: bool) -> Prepared:
    e, damp = _examples(*key), json.loads(damp_json)
    if json.loads(key[0])["blocks"] is not None:
        fisher = obs.BlockDampedFisher(
            e.grads, damp["damp"], obs.layer_blocks(e.model), relative=damp["relative"]
        )
    elif spectrum:
        fisher = _spectrum(*key).at(**damp)
    else:
        fisher = obs.DampedFisher(e.grads, **damp)
    saliency = obs.single_weight_saliency(e.w, fisher)
    return Prepared(e.model, e.w, e.grads, fisher, saliency, e.start_data, e.train_data)


def prepared(
    settings: dict[str, Any], network: str, seed: int, *, spectrum: bool = False
) -> Prepared:
    """The Fisher and friends of one trained (network, seed), computed once per process and
    shared by every sparsity (see :class:`Prepared`). The network and its gradients are
    kept across dampings; with ``spectrum`` the damped Fisher comes from one
    eigendecomposition of the gradients' Gram matrix
    (:class:`minipruner.methods.obs.FisherSpectrum`), so that a new damping costs no factorisation
    (the live explorer); without it, from a Cholesky factorisation per damping (the chapter's
    stored runs)."""
    key, damp = _undamped(settings, network, seed)
    with _PREPARING:  # one at a time: the live explorer may be warming up in a thread
        return _prepared(key, json.dumps(damp, sort_keys=True), spectrum)


_PREPARING = threading.Lock()


def warm_up(settings: dict[str, Any], network: str, seed: int) -> threading.Thread:
    """Start computing, in a background thread, what every damping of one trained (network,
    seed) shares: its gradients and their eigendecomposition (:func:`prepared` with
    ``spectrum``). The live explorer calls it when it opens, so that its first change of
    damping costs seconds, as every later one does, instead of the minute the
    eigendecomposition takes; a change made before it finishes waits for it. Returns the
    (daemon) thread."""
    thread = threading.Thread(
        target=prepared, args=(settings, network, seed), kwargs={"spectrum": True}, daemon=True
    )
    thread.start()
    return thread


def swap_search(
    p: Prepared | _Examples, sparsity: float, settings: dict[str, Any], seed: int
) -> obs.CBSSearchResult:
    """CBS-S's selection at ``sparsity``: the released search (:func:`obs.cbs_select`) on the
    Fisher's gradients, its start picked by the loss of the pruned network (without update)
    on ``p.start_data``, its iterate by that loss on the whole training set."""
    n_prune = round(sparsity * p.w.numel())
    return obs.cbs_select(
        p.w,
        p.grads,
        n_prune,
        loss_fn=obs.masked_loss(p.model, p.w, p.start_data),
        select_loss_fn=obs.masked_loss(p.model, p.w, p.train_data),
        seed=seed,
        return_history=True,
        **settings["cbs"],
    )


@functools.lru_cache(maxsize=32)
def _search(key: tuple, sparsity: float, cbs: str) -> obs.CBSSearchResult:
    # CBS-S's search reads the weights and gradients, never the damping: one per sparsity,
    # shared by every damping the live explorer tries.
    return swap_search(_examples(*key), sparsity, {"cbs": json.loads(cbs)}, key[2])


def damping_trap(config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """For each training of the trap (``fits``): how well the trained network fits its
    training set (accuracy and mean loss over all of it), the Fisher's mean diagonal
    ``tr(F)/d = (1/(N d)) sum_n ||g_n||^2`` on ``per_class`` examples per class, and the
    fraction of weights on which WF-S's mask agrees with MP's at the trap's sparsity under
    the absolute damping ``damp``."""
    trap = settings["damping_trap"]
    net = settings["networks"][config["network"]]
    train_data, _ = load_data(net["dataset"], settings["scale"])
    x, y = class_balanced_batch(train_data, trap["per_class"], seed=config["seed"])
    out = {}
    for name, fit in trap["fits"].items():
        network = trained_network({**net, "train": fit}, settings["scale"], config["seed"])
        G = gradients(network, x, y)
        w = obs.flatten_weights(prunable(network)).double()
        mp_keep = obs.select("magnitude", w, trap["sparsity"])
        wf_keep = obs.select("woodfisher", w, trap["sparsity"], obs.DampedFisher(G, trap["damp"]))
        fitted = evaluate(network, train_data)
        out[name] = {
            "train_accuracy": fitted.accuracy,
            "train_loss": fitted.loss,
            "mean_diag": (G.square().sum(0) / len(G)).mean().item(),
            "agree": (wf_keep == mp_keep).float().mean().item(),
        }
    return {"fits": out, "n_gradients": len(x), "n_weights": int(w.numel())}


def one_shot(
    config: dict[str, Any], settings: dict[str, Any], *, spectrum: bool = False
) -> dict[str, Any]:
    """Every method at one sparsity for one trained network, without retraining: the test
    accuracy of each pruned network (``accuracy[method]``) and of the dense one, and the
    record of CBS-S's search (its starts' losses and objectives, the start searched from, the
    objective and training loss of every iterate, the iterate chosen, why it stopped, the
    swaps per iteration) and where its set differs from MP's (flat weight indices). With
    ``spectrum`` the damped Fisher comes from :class:`minipruner.methods.obs.FisherSpectrum` (see
    :func:`prepared`): the live explorer's route to a new damping."""
    seed, s = config["seed"], config["sparsity"]
    p = prepared(settings, config["network"], seed, spectrum=spectrum)
    _, test_data = load_data(settings["networks"][config["network"]]["dataset"], settings["scale"])
    w, fisher = p.w, p.fisher
    key, _ = _undamped(settings, config["network"], seed)
    search = _search(key, s, json.dumps(settings["cbs"], sort_keys=True))
    keep = {  # each selection once; the methods pair them with updates (Method.steps)
        "magnitude": obs.select("magnitude", w, s),
        "woodfisher": keep_mask(p.saliency, s),  # = obs.select("woodfisher", ...), reused
        "cbs": search.keep,
    }
    weights, masks = {}, {}
    for method in settings["methods"]:  # ids
        selection, kind = get_method(method).obs_steps
        masks[method] = keep[selection]
        weights[method] = obs.update(kind, w, fisher, keep[selection])
    accuracy = {
        m: evaluate(obs.pruned_copy(p.model, weights[m], masks[m]), test_data).accuracy
        for m in settings["methods"]
    }
    return {
        "accuracy": accuracy,
        "acc_dense": evaluate(p.model, test_data).accuracy,
        "n_weights": w.numel(),
        "n_pruned": int((~keep["magnitude"]).sum()),
        "n_gradients": len(p.grads),
        "damp": fisher.damp,
        "cbs": {
            "objectives": list(search.objectives),
            "losses": list(search.losses),
            "chosen": search.chosen,
            "stop": search.stop,
            "start_index": search.start_index,
            "start_losses": list(search.start_losses),
            "start_objectives": list(search.start_objectives),
            "swaps_per_iteration": [len(batch) for batch in search.swaps],
            "mp_loss": evaluate(obs.pruned_copy(p.model, w, keep["magnitude"]), p.train_data).loss,
            "kept_not_mp": (keep["cbs"] & ~keep["magnitude"]).nonzero().squeeze(1).tolist(),
            "pruned_not_mp": (~keep["cbs"] & keep["magnitude"]).nonzero().squeeze(1).tolist(),
        },
    }


def run(config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration (see the module docstring) and return its measurements."""
    experiments = {"damping": damping_trap, "oneshot": one_shot}
    return experiments[config["experiment"]](config, settings)


# ------------------------------------------------------------------ claims


def paper_pair(a: str, b: str, sparsity: float) -> str:
    """What the CBS paper reports for ``a`` and ``b`` (the paper's names, e.g. ``"WF"``, as
    in :data:`PAPER`; not ids) at ``sparsity`` (MLPNet), if both."""
    pa, pb = PAPER.get(a, {}).get(sparsity), PAPER.get(b, {}).get(sparsity)
    if pa is None or pb is None:
        return ""
    return f"{a} {pa:.1f} vs {b} {pb:.1f} ({pa - pb:+.1f})"


def named_claims(results: Results) -> dict[str, Claim]:
    """The chapter's claims by short name (see :func:`claims`), with their calibrated power;
    which are asserted is computed (:func:`minipruner.book.calibration.apply`)."""
    measured = _measured_claims(results)
    judged = calibration.apply(results, list(measured.values()), VERSION)
    return dict(zip(measured, judged, strict=True))


def _measured_claims(results: Results) -> dict[str, Claim]:
    trap = results.settings["damping_trap"]
    damp, trap_s = trap["damp"], trap["sparsity"]
    traps = results.select(experiment="damping")
    out: dict[str, Claim] = {}
    if traps:

        def fits(name: str, key: str) -> np.ndarray:
            return np.array([r["fits"][name][key] for r in traps])

        out["trap_long_fit"] = exceeds(
            "the damping trap: long training fits more than 99 % of the training set",
            fits("long", "train_accuracy"),
            margin=99,
            scale=100,
            unit="% (training accuracy)",
        )
        out["trap_brief_fit"] = exceeds(
            "brief training fits less than 97 % of the training set (the paper's network: "
            f"{PAPER_DENSE:g} % on MNIST's test set)",
            97 - 100 * fits("brief", "train_accuracy"),
            unit="points below 97 %",
        )
        out["trap_long_diag"] = exceeds(
            f"after long training, tr(F)/d is below the absolute damping {damp:g}",
            np.log10(damp / fits("long", "mean_diag")),
            unit=f"log10({damp:g} / (tr(F)/d))",
        )
        out["trap_brief_diag"] = exceeds(
            f"after brief training, tr(F)/d is above the absolute damping {damp:g}",
            np.log10(fits("brief", "mean_diag") / damp),
            unit=f"log10((tr(F)/d) / {damp:g})",
        )
        out["trap_long_agree"] = exceeds(
            f"after long training, WF-S's mask at {trap_s:.0%} agrees with MP's on more than "
            "99.9 % of the weights",
            fits("long", "agree"),
            margin=99.9,
            scale=100,
            unit="% of weights",
        )
        out["trap_agree"] = exceeds(
            f"WF-S's mask at {trap_s:.0%} departs from MP's on more weights after brief "
            "training than after long training",
            fits("long", "agree"),
            fits("brief", "agree"),
            scale=100,
            unit="points (% of weights)",
        )

    def acc(method: str, s: float) -> np.ndarray:
        return accuracies(results, method, s) / 100  # claims scale to points themselves

    def beats(key: str, a: str, b: str, s: float, **kw: Any) -> None:
        # a, b: ids; statements and the paper's numbers name them by SHORT
        out[key] = exceeds(
            kw.pop("statement", f"{SHORT[a]} beats {SHORT[b]} at {s:.0%}"),
            acc(a, s),
            acc(b, s),
            scale=100,
            paper=paper_pair(SHORT[a], SHORT[b], s),
            **kw,
        )

    mag = "magnitude-global"
    high = [s for s in (0.9, 0.95, 0.98) if s in results.settings["sparsities"]]
    for s in high:
        beats(f"wf_mp_{s:g}", "wf", mag, s)
        beats(f"mpu_mp_{s:g}", "mp+u", mag, s)
        beats(f"cbs_wf_{s:g}", "cbs", "wf", s)
        beats(f"cbs_mpu_{s:g}", "cbs", "mp+u", s)
        beats(f"cbss_mp_{s:g}", "cbs-s", mag, s)
        beats(f"cbs_cbss_{s:g}", "cbs", "cbs-s", s)
        out[f"wfs_mp_{s:g}"] = within(
            f"{SHORT['wf-s']} is within 1.5 points of {SHORT[mag]} at {s:.0%}",
            acc("wf-s", s),
            acc(mag, s),
            1.5,
            scale=100,
        )
    # Not a claim: "CBS-S's set has a lower training loss than MP's" holds by construction
    # (the search starts from candidates that include MP's set and keeps the lowest loss).
    return out


def claims(results: Results) -> list[Claim]:
    """The chapter's measured claims (MLPNet, one-shot), each judged over seeds
    (:mod:`minipruner.book.claims`; accuracies paired by seed, in points): the damping trap
    (how each training fits, tr(F)/d against the absolute damping, WF-S's agreement with
    MP); at each of 90/95/98 %, the paper's ordering (CBS > WF > MP), the updates (WF and
    MP+U against MP, CBS against CBS-S and MP+U), the selections (CBS-S against MP, WF-S
    level with MP). Which claims are asserted is computed from the chapter's calibration."""
    return list(named_claims(results).values())
