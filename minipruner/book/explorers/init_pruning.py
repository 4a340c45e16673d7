"""Chapter 3's explorer: the masks each score keeps at initialisation, live at any temperature."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ...experiments.records import Results
from ...methods import get_method
from ..chapters import init_pruning as chapter
from ..chapters import init_pruning_page as page
from ..widgets import Explorer, LiveExplorer, dropdown, explorer, slider, subplots
from .common import _percent, fine_sparsities


def init_pruning_state(
    settings: Mapping[str, Any],
    method: str,
    sparsity: float,
    temperature: float,
    seed: int,
    results: Results | None = None,
    arch: str | None = None,
) -> dict[str, Any]:
    """One method's mask (``method`` an id of :data:`minipruner.methods.METHODS`) at
    initialisation at ``sparsity``, on the initial network of
    ``seed`` (chapter 3's :func:`~minipruner.book.chapters.init_pruning.measure_masks`): kept
    weights per layer, empty layers and the gradient flow kept. GraSP and its sign variants
    (the methods that take a ``temperature`` option) are scored at ``temperature``; the other
    methods ignore it. Read from ``results`` where
    the chapter measured this state (and, where it trained it, with the test accuracies of
    its seeds), computed now otherwise."""
    arch = arch or page.arch_names(dict(settings))[0]
    if "temperature" not in get_method(method).options:
        temperature = settings["temperature"]
    stored = (
        results is not None
        and temperature == settings["temperature"]
        and bool(results.select(experiment="masks", method=method, sparsity=sparsity, seed=seed))
    )
    if stored:
        record = dict(page.mask_record(results, method, sparsity, seed))
    else:
        config = {"arch": arch, "seed": seed, "method": method, "sparsity": sparsity}
        record = chapter.measure_masks(config, {**settings, "temperature": temperature})
    record["stored"] = stored
    record["accuracy"] = (
        page.accuracies(results, method, sparsity, arch=arch)
        if stored and page.is_trained(results, method, sparsity, arch)
        else None
    )
    return record


def _draw_init_pruning(
    record: dict[str, Any], method: str, sparsity: float, temperature: float, seed: int
) -> Figure:
    kept, sizes = np.array(record["kept"]), np.array(record["sizes"])
    density = kept / sizes
    fig, ax = subplots(figsize=(8, 3.2))
    shown = np.maximum(100 * density, page.FLOOR)
    colour = get_method(method).colour
    ax.bar(range(len(density)), shown, color=np.where(kept == 0, "red", colour))
    for i, (k, n) in enumerate(zip(kept, sizes, strict=True)):
        ax.text(i, shown[i] * 1.15, f"{k}/{n}", ha="center", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylim(page.FLOOR / 2, 300)
    ax.set_xticks(range(len(density)), page.kind_labels(record["kinds"]), rotation=90, fontsize=7)
    ax.set_ylabel("weights kept in the layer (%)")
    title = f"{get_method(method).label} at {sparsity:.1%}, seed {seed}"
    if "temperature" in get_method(method).options:
        title += f", T = {temperature:g}"
    title += f": G kept {record['flow']:.3g}"
    if record["accuracy"] is not None:
        acc = record["accuracy"]
        title += f"; test accuracy {acc.mean():.1f} ± {acc.std(ddof=1):.1f} %"
    if record["collapsed"]:
        title += "; LAYER COLLAPSE"
    ax.set_title(title + ("" if record["stored"] else " (computed now)"), fontsize=9)
    fig.tight_layout()
    return fig


TEMPERATURES = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 10000.0)


def init_pruning_explorer(
    settings: Mapping[str, Any],
    methods: Sequence[str],
    sparsities: Sequence[float],
    results: Results | None = None,
    start: float | None = None,
    caption: str | None = None,
    mode: str | None = None,
) -> Explorer | LiveExplorer:
    """Chapter 3's explorer: the per-layer density of one method's mask at initialisation
    (static page: ``methods`` × ``sparsities`` on the first seed at the chapter's
    temperature; live also any sparsity from 50 % to 99.9 %, any GraSP temperature and any
    seed's fresh initialisation), drawn from :func:`init_pruning_state`."""
    seeds = list(settings["seeds"])
    temperatures = sorted(set(TEMPERATURES) | {float(settings["temperature"])})
    controls = {
        "method": dropdown(list(methods), fmt=lambda m: get_method(m).label),
        "sparsity": slider(
            fine_sparsities(0.5, 0.99, 0.01) + [0.995, 0.998, 0.999],
            grid=list(sparsities),
            start=start if start is not None else sparsities[0],
            fmt=_percent,
        ),
        "temperature": slider(
            temperatures, grid=(), start=float(settings["temperature"]), fmt="{:g}".format
        ),
        "seed": dropdown(seeds + [max(seeds) + 100], grid=(), start=seeds[0]),
    }
    return explorer(
        controls,
        _draw_init_pruning,
        compute=functools.partial(init_pruning_state, dict(settings), results=results),
        caption=caption,
        mode=mode,
    )
