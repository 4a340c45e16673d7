"""What chapter 4's page shows from its stored results: accessors, figures and tables.

:mod:`minipruner.book.chapters.obs` runs the chapter's experiments and states its claims; this
module reads what they stored (a :class:`~minipruner.experiments.records.Results`): the accessors
the claims and the page share (each method's one-shot accuracies, the dense accuracies, the
networks), the CBS paper's MLPNet numbers beside this page's, the two figures (accuracy against
sparsity, CBS-S's search) and the tables (accuracies, the damping trap, CBS-S's search). Nothing
here builds, trains or prunes a network. The results name each method by its id in
:data:`minipruner.methods.METHODS`; figures and tables show its ``label`` and draw its
``colour``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ...experiments.records import Results
from ...experiments.tables import markdown_table, mean_sd_cell, sample_sd
from ...methods import get_method

SHORT = {
    "magnitude-global": "MP",
    "mp+u": "MP+U",
    "wf-s": "WF-S",
    "wf": "WF",
    "cbs-s": "CBS-S",
    "cbs": "CBS",
}
"""Each method's short name in the claims' statements and in the CBS paper's table
(:data:`PAPER`): the paper's MP, WF, CBS and CBS-S, and this chapter's MP+U and WF-S for the
other two (selection, update) pairs. Names, not ids: the claims keep their wording."""
NAMES = {"mlpnet": "MLPNet", "resnet20": "ResNet-20"}
# Yu et al. 2022, MLPNet on MNIST, one-shot, test accuracy (%); dense 93.97. Keyed by the
# paper's names (SHORT maps the chapter's ids to them).
PAPER = {
    "MP": {0.9: 90.30, 0.95: 83.64, 0.98: 32.25},
    "WF": {0.9: 91.69, 0.95: 85.54, 0.98: 38.26},
    "CBS": {0.9: 93.14, 0.95: 88.92, 0.98: 55.45},
    "CBS-S": {0.98: 66.64},
}
PAPER_DENSE = 93.97
MARKERS = {
    "magnitude-global": "o--",
    "mp+u": "o-",
    "wf-s": "s--",
    "wf": "s-",
    "cbs-s": "^--",
    "cbs": "^-",
}
"""Marker and line of each method in the accuracy figure (dashed: no update); its colour is
the method table's."""


# ------------------------------------------------------------------- reading the results


def accuracies(
    results: Results, method: str, sparsity: float, network: str = "mlpnet"
) -> np.ndarray:
    """Test accuracy (%) of ``method`` (an id of :data:`METHODS`) at ``sparsity``, one entry per
    seed (in seed order)."""
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


def label(method: str) -> str:
    """What the page prints for ``method`` (an id of :data:`METHODS`): its table label."""
    return get_method(method).label


def paper_accuracy(method: str, sparsity: float) -> float | None:
    """The CBS paper's MLPNet accuracy (%) for ``method`` (an id) at ``sparsity``, if it
    reports one (:data:`PAPER`, by the paper's name :data:`SHORT`)."""
    return PAPER.get(SHORT.get(method, ""), {}).get(sparsity)


def accuracy_figure(results: Results, network: str = "mlpnet") -> Figure:
    """Test accuracy against sparsity for every method (mean ± sample sd over seeds), one-shot
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
            fmt=MARKERS.get(m, "o-"),
            color=get_method(m).colour,
            capsize=3,
            label=label(m),
        )
    if network == "mlpnet":  # the paper's MP, WF and CBS
        for m in ("magnitude-global", "wf", "cbs"):
            paper = PAPER[SHORT[m]]
            ax.plot(
                [100 * s for s in paper],
                list(paper.values()),
                "x",
                color=get_method(m).colour,
                ms=9,
                mew=2,
                label=f"{label(m)} (paper's {SHORT[m]})",
            )
    ax.set_xlabel("sparsity (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{NAMES.get(network, network)}, one-shot, no retraining ({results.scale} scale)")
    ax.legend(fontsize=7, ncol=2)
    return fig


def search_figure(results: Results, sparsity: float | None = None) -> Figure:
    """CBS-S's search on every seed at ``sparsity`` (default: the lowest of the settings):
    its objective ``f`` relative to its start's (left, log scale) and the training loss of
    the pruned network without update (right) per iterate; the iterate chosen circled."""
    sparsity = results.settings["sparsities"][0] if sparsity is None else sparsity
    rows = results.select(experiment="oneshot", network="mlpnet", sparsity=sparsity)
    fig = Figure(figsize=(9, 3.3), layout="tight")
    left, right = fig.subplots(1, 2)
    for r in rows:
        c = r["cbs"]
        t = np.arange(len(c["objectives"]))
        f = np.array(c["objectives"]) / c["objectives"][0]
        (line,) = left.plot(t, f, "-", lw=1, label=f"seed {r['seed']}")
        right.plot(t, c["losses"], "-", lw=1, color=line.get_color())
        k = c["chosen"]
        left.plot(k, f[k], "o", mfc="none", color=line.get_color())
        right.plot(k, c["losses"][k], "o", mfc="none", color=line.get_color())
    left.set_yscale("log")
    left.set_xlabel("search iteration")
    left.set_ylabel("f / f at the start")
    right.set_xlabel("search iteration")
    right.set_ylabel("training loss, no update")
    left.legend(fontsize=7)
    fig.suptitle(f"CBS-S's search at {sparsity:.0%} (circles: the iterate chosen)", fontsize=9)
    return fig


def figures(results: Results) -> dict[str, Figure]:
    """The chapter's plots: accuracy against sparsity per network, and CBS-S's search."""
    out = {}
    for network in networks(results):
        name = "accuracy" if network == "mlpnet" else f"accuracy_{network}"
        out[name] = accuracy_figure(results, network)
    if results.select(experiment="oneshot", network="mlpnet"):
        out["search"] = search_figure(results)
    return out


def damping_table(results: Results) -> str:
    """The damping trap per seed and training: training accuracy and loss, ``tr(F)/d``,
    how many times the absolute damping is it, and how often WF-S's mask agrees with MP's."""
    trap = results.settings["damping_trap"]
    rows = [
        [
            r["seed"],
            f"{name} ({trap['fits'][name]['epochs']} epochs)",
            f"{100 * fit['train_accuracy']:.2f}",
            f"{fit['train_loss']:.1e}",
            f"{fit['mean_diag']:.1e}",
            f"{trap['damp'] / fit['mean_diag']:,.2g}",
            f"{100 * fit['agree']:.2f}",
        ]
        for r in results.select(experiment="damping")
        for name, fit in r["fits"].items()
    ]
    header = [
        "seed",
        "training",
        "training accuracy (%)",
        "training loss",
        "tr(F)/d",
        f"{trap['damp']:g} / (tr(F)/d)",
        f"WF-S = MP at {trap['sparsity']:.0%} (% of weights)",
    ]
    return markdown_table(header, rows)


def search_table(results: Results, network: str = "mlpnet") -> str:
    """CBS-S's search per sparsity, over seeds (mean ± sample sd): how often the start searched
    from was magnitude pruning, the search iterations made and the iterate chosen, the
    swaps up to it, and the chosen set's objective ``f`` and training loss (no update)
    relative to magnitude pruning's."""

    def stat(values: list[float], digits: int = 1) -> str:
        return mean_sd_cell(values, percent=False, digits=digits)

    rows = []
    for s in results.settings["sparsities"]:
        cbs = [r["cbs"] for r in results.select(experiment="oneshot", network=network, sparsity=s)]
        rows.append(
            [
                f"{s:.0%}",
                f"{sum(c['start_index'] == 0 for c in cbs)} of {len(cbs)}",
                stat([len(c["objectives"]) - 1 for c in cbs]),
                stat([c["chosen"] for c in cbs]),
                stat([sum(c["swaps_per_iteration"][: c["chosen"]]) for c in cbs], 0),
                stat([c["objectives"][c["chosen"]] / c["start_objectives"][0] for c in cbs], 2),
                stat([c["losses"][c["chosen"]] / c["mp_loss"] for c in cbs], 2),
            ]
        )
    header = [
        "sparsity",
        "start: magnitude",
        "iterations",
        "iterate chosen",
        "swaps to it",
        "f / f of MP",
        "loss / loss of MP",
    ]
    return markdown_table(header, rows)


def table(results: Results, network: str | None = None) -> str:
    """Test accuracy (%, mean ± sample sd over seeds) per network, sparsity and method, one-shot
    without retraining; the CBS paper's MLPNet numbers in brackets. ``network``: only that
    one (default: all)."""
    methods = results.settings["methods"]
    rows = []
    for net in [network] if network is not None else networks(results):
        for s in results.settings["sparsities"]:
            cells = []
            for m in methods:
                a = accuracies(results, m, s, net)
                paper = paper_accuracy(m, s) if net == "mlpnet" else None
                cells.append(mean_sd_cell(a, percent=False) + (f" [{paper:.1f}]" if paper else ""))
            rows.append([NAMES.get(net, net), f"{s:.0%}", *cells])
    return markdown_table(["network", "sparsity", *[label(m) for m in methods]], rows)
