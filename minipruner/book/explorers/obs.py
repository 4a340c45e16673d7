"""Chapter 4's explorer: the one-shot comparison of MP, WoodFisher and CBS at any damping."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ...experiments.records import Results
from ...methods import get_method
from ..chapters import obs as chapter
from ..widgets import Explorer, LiveExplorer, explorer, slider, subplots
from .common import Progress, fine_sparsities

DAMPINGS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def obs_state(
    settings: Mapping[str, Any],
    sparsity: float,
    damping: float,
    seed: int,
    results: Results | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Chapter 4's one-shot comparison on MLPNet at ``sparsity`` with absolute ``damping``
    of the empirical Fisher: each method's test accuracy (by id) and the weights CBS-S keeps that MP
    prunes and prunes that MP keeps (flat indices). Read from ``results`` where the chapter
    ran this state (accuracies: mean over its seeds; swaps: ``seed``'s), computed now for
    ``seed`` otherwise (:func:`~minipruner.book.chapters.obs.one_shot`): the gradients and the
    eigendecomposition of their Gram matrix once per network, after which a new damping
    costs no factorisation (:class:`minipruner.methods.obs.FisherSpectrum`), and CBS-S's search,
    which reads no damping, once per sparsity."""
    base = settings["networks"]["mlpnet"]["damp"]
    rows = (
        results.select(experiment="oneshot", network="mlpnet", sparsity=sparsity)
        if results is not None and damping == base["damp"]
        else []
    )
    if rows and any(r["seed"] == seed for r in rows):
        (record,) = [r for r in rows if r["seed"] == seed]
        methods = settings["methods"]  # ids
        accuracy = {m: float(np.mean([r["accuracy"][m] for r in rows])) for m in methods}
        dense = float(np.mean([r["acc_dense"] for r in rows]))
        return {"accuracy": accuracy, "acc_dense": dense, "cbs": record["cbs"], "seeds": len(rows)}
    net = dict(settings["networks"]["mlpnet"], damp=dict(base, damp=damping))
    changed = {**settings, "networks": {**settings["networks"], "mlpnet": net}}
    if progress is not None:
        progress(0.1, "per-example gradients, the Fisher and WoodFisher's saliencies")
    # The gradients and their eigendecomposition once per network; then each damping costs
    # no factorisation, and CBS-S's search (which reads no damping) once per sparsity.
    chapter.prepared(changed, "mlpnet", seed, spectrum=True)
    if progress is not None:
        progress(0.6, "CBS-S's swap search, each method's update and test accuracy")
    config = {"experiment": "oneshot", "network": "mlpnet", "seed": seed, "sparsity": sparsity}
    record = chapter.one_shot(config, changed, spectrum=True)
    return {
        "accuracy": record["accuracy"],
        "acc_dense": record["acc_dense"],
        "cbs": record["cbs"],
        "seeds": 1,
    }


def _draw_obs(
    state: dict[str, Any], sparsity: float, damping: float, first_layer: tuple[int, int]
) -> Figure:
    kept = np.array(state["cbs"]["kept_not_mp"], dtype=int)
    pruned = np.array(state["cbs"]["pruned_not_mp"], dtype=int)
    n1 = first_layer[0] * first_layer[1]
    diff = np.zeros(n1)
    diff[kept[kept < n1]] = 1
    diff[pruned[pruned < n1]] = -1
    fig, axes = subplots(1, 2, figsize=(12, 3), gridspec_kw={"width_ratios": [1, 2.5]})
    methods = list(state["accuracy"])  # ids, in the settings' order
    axes[0].bar(
        [get_method(m).label for m in methods],
        [100 * state["accuracy"][m] for m in methods],
        color=[get_method(m).colour for m in methods],
    )
    axes[0].axhline(100 * state["acc_dense"], color="0.6", lw=1, ls="--")
    axes[0].tick_params(axis="x", labelsize=7)
    for tick in axes[0].get_xticklabels():  # the table's labels, some long
        tick.set(rotation=25, ha="right")
    axes[0].set_ylim(0, 100)
    seeds = "mean of seeds" if state["seeds"] > 1 else "one seed, computed now"
    axes[0].set_title(
        f"test accuracy (%) at {sparsity:.0%}, damping {damping:g} ({seeds})", fontsize=8
    )
    axes[1].imshow(
        diff.reshape(first_layer),
        cmap="bwr",
        vmin=-1,
        vmax=1,
        aspect="auto",
        interpolation="nearest",
    )
    axes[1].set_title(
        f"fc1: {len(kept)} weights kept by CBS-S instead of MP (all layers)", fontsize=9
    )
    axes[1].set_xlabel("input pixel")
    axes[1].set_ylabel("hidden unit")
    fig.tight_layout()
    return fig


def obs_explorer(
    settings: Mapping[str, Any],
    sparsities: Sequence[float],
    results: Results | None = None,
    seed: int | None = None,
    first_layer: tuple[int, int] = (40, 784),
    caption: str | None = None,
    mode: str | None = None,
) -> Explorer | LiveExplorer:
    """Chapter 4's explorer: each method's one-shot accuracy and CBS-S's swaps against MP
    at a sparsity (static page: ``sparsities`` at the chapter's damping; live: also any
    sparsity from 50 % to 99 % and any damping), drawn from :func:`obs_state`."""
    seed = settings["seeds"][0] if seed is None else seed
    base = settings["networks"]["mlpnet"]["damp"]["damp"]
    controls = {
        "sparsity": slider(
            fine_sparsities(0.5, 0.99, 0.01),
            grid=list(sparsities),
            start=sparsities[0],
            fmt=lambda s: f"{100 * s:.0f} %",
        ),
        "damping": slider(sorted(set(DAMPINGS) | {base}), grid=(), start=base, fmt="{:g}".format),
    }
    shown = explorer(
        controls,
        lambda state, sparsity, damping: _draw_obs(state, sparsity, damping, first_layer),
        compute=functools.partial(obs_state, dict(settings), seed=seed, results=results),
        caption=caption,
        mode=mode,
    )
    if isinstance(shown, LiveExplorer):  # what every damping shares, computed meanwhile
        chapter.warm_up(dict(settings), "mlpnet", seed)
    return shown
