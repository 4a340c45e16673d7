"""Chapter 2's explorer: lookahead scores of one layer against magnitude."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from ...core.masks import masks_from_scores, prunable
from ...methods.lookahead import lookahead_scores
from ...methods.magnitude import magnitude_scores
from ..widgets import Explorer, LiveExplorer, dropdown, explorer, slider, subplots
from .common import fine_sparsities


def _neighbour_norms(model: nn.Module, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Row norms of the previous layer (one per input unit of ``layer``) and column norms
    of the next (one per output unit), ones where there is no neighbour: the two factors of
    the LAP score of a layer without batch norm."""
    weights = prunable(model)
    names = list(weights)
    i = names.index(layer)
    w = weights[layer].detach()
    prev = (
        weights[names[i - 1]].detach().flatten(1).norm(dim=1) if i > 0 else torch.ones(w.shape[1])
    )
    nxt = (
        weights[names[i + 1]].detach().norm(dim=0) if i + 1 < len(names) else torch.ones(w.shape[0])
    )
    return prev, nxt


@functools.lru_cache(maxsize=4)
def _scores(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    return lookahead_scores(model), magnitude_scores(model)


def lookahead_state(model: nn.Module, layer: str, sparsity: float) -> dict[str, Any]:
    """LAP's and MP's keep-masks of one ``layer`` of ``model`` (no batch norm) at the layer
    ``sparsity``, the number of weights each keeps that the other prunes, and the two
    neighbour norms behind LAP's score: of the previous layer's rows (per input unit) and
    of the next layer's columns (per output unit)."""
    lap, mag = _scores(model)
    keep_lap = masks_from_scores({layer: lap[layer]}, sparsity, scope="layer")[layer]
    keep_mp = masks_from_scores({layer: mag[layer]}, sparsity, scope="layer")[layer]
    prev, nxt = _neighbour_norms(model, layer)
    return {
        "keep_lap": keep_lap,
        "keep_mp": keep_mp,
        "lap_only": int((keep_lap & ~keep_mp).sum()),
        "mp_only": int((keep_mp & ~keep_lap).sum()),
        "both": int((keep_mp & keep_lap).sum()),
        "prev_norms": prev,
        "next_norms": nxt,
        "magnitude": mag[layer],
        "lap": lap[layer],
    }


def _draw_lookahead(state: dict[str, Any], layer: str, sparsity: float) -> Figure:
    n = state["magnitude"].numel()
    sample = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:20_000]
    x = state["magnitude"].flatten()[sample]
    y = state["lap"].flatten()[sample] / x.clamp_min(1e-12)
    keep_mp = state["keep_mp"].flatten()[sample]
    keep_lap = state["keep_lap"].flatten()[sample]
    fig, (ax, bx) = subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1.4, 1]})
    ax.scatter(
        x[~keep_mp & ~keep_lap], y[~keep_mp & ~keep_lap], s=1, c="0.85", label="pruned by both"
    )
    for sel, color, label in (
        (keep_mp & keep_lap, "k", "kept by both"),
        (keep_lap & ~keep_mp, "tab:red", "LAP only"),
        (keep_mp & ~keep_lap, "tab:blue", "MP only"),
    ):
        ax.scatter(x[sel], y[sel], s=6, c=color, label=f"{label} ({sel.sum().item()})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("|w|")
    ax.set_ylabel("neighbour norms product")
    ax.set_title(f"{layer}, {100 * (1 - sparsity):.2f} % of the layer kept", fontsize=10)
    ax.legend(fontsize=7, loc="lower left", markerscale=3)
    for norms, color, label in (
        (state["prev_norms"], "tab:purple", "previous layer's rows (input units)"),
        (state["next_norms"], "tab:orange", "next layer's columns (output units)"),
    ):
        bx.plot(np.sort(norms.numpy())[::-1], color=color, label=label)
    bx.set_xlabel("unit, by decreasing norm")
    bx.set_ylabel("neighbour norm")
    bx.set_title(
        f"LAP keeps {state['lap_only']} weights MP prunes (of {state['lap_only'] + state['both']})",
        fontsize=9,
    )
    bx.legend(fontsize=7)
    fig.tight_layout()
    return fig


def lookahead_explorer(
    model: nn.Module,
    layers: Sequence[str],
    sparsities: Sequence[float],
    start: float | None = None,
    caption: str | None = None,
    mode: str | None = None,
) -> Explorer | LiveExplorer:
    """Chapter 2's explorer: LAP's and MP's masks of one of ``layers`` of ``model`` at a layer
    sparsity (static page: ``sparsities``, e.g. the hidden layers' ratios at the chapter's
    levels; live: any from 50 % to 99.9 %), drawn from :func:`lookahead_state`."""
    controls = {
        "layer": dropdown(list(layers)),
        "sparsity": slider(
            fine_sparsities(0.5, 0.999, 0.001),
            grid=list(sparsities),
            start=start if start is not None else sparsities[0],
            fmt=lambda s: f"{100 * (1 - s):.2f} % kept",
        ),
    }
    return explorer(
        controls,
        lambda state, layer, sparsity: _draw_lookahead(state, layer, sparsity),
        compute=functools.partial(lookahead_state, model),
        caption=caption,
        mode=mode,
    )
