"""Chapter 1's explorer: magnitude pruning of one layer against the brute-force optimum."""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import Dataset

from ...core.masks import apply_masks, masks_from_scores, prunable
from ...core.train import evaluate
from ...experiments.records import Results
from ...methods.magnitude import brute_force_masks, frobenius_distortion, magnitude_scores
from ..chapters import magnitude as chapter
from ..widgets import Explorer, LiveExplorer, dropdown, explorer, slider, subplots
from .common import _percent, fine_sparsities

BLOCK = (3, 4)  # the corner of a layer brute-forced live: C(12, k) masks at most 924


def magnitude_state(
    model: nn.Module,
    test_data: Dataset,
    sparsity: float,
    layer: str,
    results: Results | None = None,
) -> dict[str, Any]:
    """Global magnitude pruning of ``model`` at ``sparsity``, seen from ``layer``: the
    threshold, the layer's keep-mask and its Frobenius distortion ``||W - M⊙W||_F`` beside
    the smallest distortion any mask removing as many of its weights can have (the root of
    the sum of its smallest squares); on the ``BLOCK`` corner of the layer, the distortion
    of the same mask beside the brute-force optimum over every mask removing as many of
    the corner's weights (:func:`brute_force_masks`); the test accuracy of the dense and the
    pruned network measured now, and, where ``results`` ran this sparsity, the stored
    accuracies after pruning and after retraining (mean over seeds)."""
    scores = magnitude_scores(model)
    masks = masks_from_scores(scores, sparsity)
    weight = prunable(model)[layer].detach()
    mask = masks[layer]
    removed = int((~mask).sum())
    squares = weight.flatten().square().sort().values
    corner = weight[: BLOCK[0], : BLOCK[1]]
    corner_mask = mask[: BLOCK[0], : BLOCK[1]]
    k = int((~corner_mask).sum())
    best_mask, best = brute_force_masks(corner, k)
    magnitudes = torch.cat([s.flatten() for s in scores.values()]).sort().values
    n_removed = round(sparsity * magnitudes.numel())
    pruned = copy.deepcopy(model)
    apply_masks(pruned, masks)
    state = {
        "threshold": magnitudes[n_removed - 1].item() if n_removed else 0.0,
        "magnitudes": magnitudes.numpy(),
        "mask": mask,
        "kept": mask.float().mean().item(),
        "distortion": frobenius_distortion(weight, mask).item(),
        "optimum": squares[:removed].sum().sqrt().item(),
        "norm": weight.norm().item(),
        "corner": corner,
        "corner_mask": corner_mask,
        "corner_distortion": frobenius_distortion(corner, corner_mask).item(),
        "corner_optimum": best.item(),
        "corner_optimum_mask": best_mask,
        "acc_dense": evaluate(model, test_data).accuracy,
        "acc_pruned": evaluate(pruned, test_data).accuracy,
        "stored": None,
    }
    if results is not None and results.select(
        experiment="sweep", method=chapter.GLOBAL, sparsity=sparsity
    ):
        where = dict(experiment="sweep", method=chapter.GLOBAL, sparsity=sparsity)
        state["stored"] = {
            "dense": results.values("acc_dense", **where).mean(),
            "pruned": results.stat("acc_pruned", **where)[0],
            "retrained": results.stat("acc_retrained", **where)[0],
        }
    return state


def _draw_magnitude(state: dict[str, Any], sparsity: float, layer: str) -> Figure:
    fig, axes = subplots(1, 4, figsize=(15, 3.1), gridspec_kw={"width_ratios": [1.2, 1.4, 0.9, 1]})
    axes[0].hist(np.log10(state["magnitudes"] + 1e-12), bins=80, color="gray")
    if state["threshold"] > 0:
        axes[0].axvline(
            np.log10(state["threshold"]), color="r", label=f"|w| = {state['threshold']:.3g}"
        )
        axes[0].legend(fontsize=8)
    axes[0].set_xlabel("log10 |w|")
    axes[0].set_title(f"{sparsity:.1%} of all weights below the threshold", fontsize=9)
    axes[1].imshow(
        state["mask"].numpy(), cmap="gray_r", aspect="auto", interpolation="nearest", vmin=0
    )
    axes[1].set_title(f"{layer} kept: {state['kept']:.1%}", fontsize=9)
    axes[1].set_xlabel("input unit")
    axes[1].set_ylabel("output unit")
    norm = state["norm"]
    axes[2].bar(
        ["layer:\nthis mask", "layer:\nsmallest", "corner:\nthis mask", "corner:\nbrute force"],
        [
            state["distortion"] / norm,
            state["optimum"] / norm,
            state["corner_distortion"] / norm,
            state["corner_optimum"] / norm,
        ],
        color=["tab:red", "0.4", "tab:red", "0.4"],
    )
    axes[2].tick_params(axis="x", labelsize=7)
    axes[2].set_title("Frobenius distortion / ||W||_F", fontsize=9)
    stored = state["stored"]
    labels = ["dense\n(now)", "pruned\n(now)"]
    values = [100 * state["acc_dense"], 100 * state["acc_pruned"]]
    colors = ["gray", "tab:red"]
    if stored is not None:
        labels.append("retrained\n(stored)")
        values.append(100 * stored["retrained"])
        colors.append("tab:green")
    axes[3].bar(labels, values, color=colors)
    axes[3].tick_params(axis="x", labelsize=7)
    axes[3].set_ylim(0, 100)
    axes[3].set_title("test accuracy (%)", fontsize=9)
    fig.tight_layout()
    return fig


def magnitude_explorer(
    model: nn.Module,
    test_data: Dataset,
    sparsities: Sequence[float],
    results: Results | None = None,
    layer: str | None = None,
    start: float | None = None,
    caption: str | None = None,
    mode: str | None = None,
) -> Explorer | LiveExplorer:
    """Chapter 1's explorer: global magnitude pruning of ``model`` at a chosen sparsity
    (static page: ``sparsities``; live: any from 10 % to 99.9 %) seen from one layer
    (static: ``layer``, by default the second; live: any prunable layer), drawn from
    :func:`magnitude_state`."""
    layers = list(prunable(model))
    layer = layer or layers[min(1, len(layers) - 1)]
    controls = {
        "sparsity": slider(
            fine_sparsities(0.1, 0.99, 0.01) + [0.995, 0.999],
            grid=list(sparsities),
            start=start if start is not None else sparsities[0],
            fmt=_percent,
        ),
        "layer": dropdown(layers, grid=(), start=layer),
    }
    return explorer(
        controls,
        lambda state, sparsity, layer: _draw_magnitude(state, sparsity, layer),
        compute=functools.partial(magnitude_state, model, test_data, results=results),
        caption=caption,
        mode=mode,
    )
