"""Chapter 7's explorer: one-shot layer-wise pruning of the chapter's TinyGPT, any sparsity,
pattern and method, with its perplexity and each layer's reconstruction error."""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from ...core.masks import prunable
from ...experiments.records import Results
from ...methods.layerwise import calibration_hessians, layer_error, parse_pattern
from ..chapters import language_models as chapter
from ..widgets import Explorer, LiveExplorer, dropdown, explorer, slider, subplots
from .common import _percent, fine_sparsities

PATTERNS = ("unstructured", "2:4", "4:8", "1:4", "2:8")
"""The patterns live mode offers (every TinyGPT layer's width is a multiple of 8)."""
LAYER = "blocks.0.mlp.fc1.weight"
"""The layer whose keep-mask the explorer draws (its top-left corner, ``CORNER``)."""
CORNER = (16, 32)
ERROR_WINDOWS = 32
"""Calibration windows on which each layer's relative output error is measured."""


def language_models_state(
    model: nn.Module,
    settings: Mapping[str, Any],
    method: str,
    pattern: str,
    sparsity: float,
    seed: int | None = None,
    results: Results | None = None,
) -> dict[str, Any]:
    """Prune a copy of ``model`` (the TinyGPT of ``seed``, by default the first) with ``method``
    (one of the chapter's, or ``"obc"``) at ``pattern``: an N:M pattern fixes the sparsity at
    ``1 - N/M`` (``sparsity`` is then ignored), ``"unstructured"`` takes ``sparsity``; calibrated
    as the chapter calibrates (:func:`~minipruner.book.chapters.language_models.prune`).

    Returns the sparsity used, the fraction of weights kept, the test perplexity (read from
    ``results`` where the chapter ran this state for ``seed``, ``measured`` False; measured now
    otherwise), the keep-mask of the ``CORNER`` of ``LAYER``, and each layer's relative output
    error ``||W X - Ŵ X||² / ||W X||²`` (``X``: the layer's inputs in the pruned model on the
    first ``ERROR_WINDOWS`` calibration windows; from ``H = 2 X Xᵀ``,
    :func:`~minipruner.methods.layerwise.layer_error`)."""
    settings = dict(settings)
    if method not in (*settings["methods"], "obc"):
        raise ValueError(f"unknown method {method!r}; valid: {[*settings['methods'], 'obc']}")
    nm = parse_pattern(pattern)
    s = 1 - nm[0] / nm[1] if nm is not None else round(float(sparsity), 6)
    seed = settings["seeds"][0] if seed is None else seed
    pruned = copy.deepcopy(model)
    chapter.prune(pruned, settings, seed, method, pattern, s)
    rows = (
        results.select(experiment="sweep", seed=seed, method=method, pattern=pattern, sparsity=s)
        if results is not None
        else []
    )
    ppl = rows[0]["ppl"] if rows else chapter.test_perplexity(settings, pruned)
    dense, after = prunable(model), prunable(pruned)
    x = chapter.calibration_inputs(settings, seed)[:ERROR_WINDOWS]
    hessians = calibration_hessians(pruned, x)
    errors = []
    for name, w in dense.items():
        h, w = hessians[name], w.detach()
        total = 0.5 * float(torch.einsum("ij,jk,ik->", w.double(), h, w.double()))
        errors.append(layer_error(w, after[name], h) / total)
    kept = sum(int((v != 0).sum()) for v in after.values()) / sum(v.numel() for v in after.values())
    return {
        "sparsity": s,
        "kept": kept,
        "ppl": float(ppl),
        "measured": not rows,
        "mask": (after[LAYER][: CORNER[0], : CORNER[1]] != 0).detach(),
        "layers": list(dense),
        "layer_errors": errors,
    }


def _curves(results: Results | None) -> dict[str, Any] | None:
    # the stored means over seeds: perplexity against unstructured sparsity, per method
    if results is None or not results.select(experiment="sweep"):
        return None
    s = results.settings
    return {
        "sparsities": list(s["sparsities"]),
        "dense": float(chapter.dense_ppl(results).mean()),
        "ppl": {
            m: [float(chapter.ppl(results, m, "unstructured", sp).mean()) for sp in s["sparsities"]]
            for m in s["methods"]
        },
    }


def _draw(
    state: dict[str, Any], method: str, pattern: str, curves: dict[str, Any] | None
) -> Figure:
    fig, axes = subplots(1, 3, figsize=(14, 3.4), gridspec_kw={"width_ratios": [1.1, 1, 1.3]})
    left, middle, right = axes
    if curves is not None:
        xs = 100 * np.array(curves["sparsities"])
        for m, v in curves["ppl"].items():
            left.plot(xs, v, marker=".", color=chapter.COLORS[m], label=chapter.label(m))
        left.axhline(curves["dense"], color="k", ls="--", lw=1, label="dense")
    where = "measured now" if state["measured"] else "stored"
    left.plot(
        100 * state["sparsity"],
        state["ppl"],
        "*",
        ms=14,
        color=chapter.COLORS.get(method, "k"),
        label=f"this state ({where}): {state['ppl']:.2f}",
    )
    left.set_xlabel("weights removed (%)")
    left.set_ylabel("test perplexity")
    left.legend(fontsize=7)
    middle.imshow(state["mask"].numpy(), cmap="gray_r", vmin=0, interpolation="nearest")
    middle.set_title(f"{LAYER[:-7]}: corner of the mask (black = kept)", fontsize=9)
    middle.set_xlabel("input")
    middle.set_ylabel("output")
    names = [n.replace(".weight", "").replace("blocks.", "") for n in state["layers"]]
    right.bar(range(len(names)), state["layer_errors"], color=chapter.COLORS.get(method, "k"))
    right.set_xticks(range(len(names)), names, rotation=60, fontsize=7)
    right.set_ylabel("relative output error")
    right.set_title("||WX - ŴX||² / ||WX||² per layer", fontsize=9)
    fixed = "" if pattern == "unstructured" else f" (fixes {state['sparsity']:.0%})"
    fig.suptitle(
        f"{chapter.label(method)}, {pattern}{fixed}: {100 * state['kept']:.1f} % of the "
        "weights kept",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def language_models_explorer(
    model: nn.Module,
    settings: Mapping[str, Any],
    results: Results | None = None,
    sparsities: Sequence[float] = (0.5, 0.7),
    patterns: Sequence[str] = ("unstructured", "2:4"),
    seed: int | None = None,
    start: Mapping[str, Any] | None = None,
    caption: str | None = None,
    mode: str | None = None,
) -> Explorer | LiveExplorer:
    """Chapter 7's explorer: prune the TinyGPT of ``seed`` with a chosen method (static page: the
    chapter's; live: also OBC), pattern (static: ``patterns``; live: any of :data:`PATTERNS`) and
    unstructured sparsity (static: ``sparsities``; live: 30 % to 90 %), drawn from
    :func:`language_models_state`: the stored curves with this state's perplexity, a corner of
    one layer's mask and every layer's relative output error."""
    settings = dict(settings)
    start = dict(start or {})
    methods = list(settings["methods"])
    controls = {
        "method": dropdown(
            [*methods, "obc"],
            grid=methods,
            start=start.get("method", methods[-1]),
            fmt=chapter.label,
        ),
        "pattern": dropdown(PATTERNS, grid=list(patterns), start=start.get("pattern", patterns[0])),
        "sparsity": slider(
            fine_sparsities(0.3, 0.9, 0.05),
            grid=list(sparsities),
            start=start.get("sparsity", sparsities[0]),
            fmt=_percent,
        ),
    }
    curves = _curves(results)

    @functools.lru_cache(maxsize=64)
    def state(method: str, pattern: str, sparsity: float) -> dict[str, Any]:
        return language_models_state(model, settings, method, pattern, sparsity, seed, results)

    def compute(method: str, pattern: str, sparsity: float) -> dict[str, Any]:
        # an N:M pattern ignores the slider: one state (and one computation) per pattern
        return state(method, pattern, 0.0 if pattern != "unstructured" else sparsity)

    return explorer(
        controls,
        lambda data, method, pattern, sparsity: _draw(data, method, pattern, curves),
        compute=compute,
        caption=caption,
        dpi=70,
        mode=mode,
    )
