"""Each chapter's explorer, described once (controls, what a state computes, how it is drawn)
and shown by :func:`minipruner.book.widgets.explorer`: live in a Jupyter kernel, with controls
the static page cannot offer, and precomputed on the site.

Every ``*_explorer`` function returns the explorer; the matching ``*_state`` function is
what one state computes (the numbers the figure draws), so that tests and readers can call it
directly. Whatever is expensive is read from the chapter's stored results where the state is
one the chapter ran, and computed (and cached per state) only where it is new.

Why one module of this length (about 600 lines): one explorer per chapter, each a short
description (controls, a state function, a drawing) on the same few helpers; splitting them
per chapter would scatter those helpers.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import Dataset

from ..core.masks import apply_masks, masks_from_scores, prunable
from ..core.train import evaluate
from ..experiments.records import Results
from ..methods.magnitude import brute_force_masks, frobenius_distortion, magnitude_scores
from .widgets import Explorer, LiveExplorer, dropdown, explorer, slider, subplots

Progress = Callable[..., None]


def _percent(x: float) -> str:
    return f"{100 * x:.1f} %"


def fine_sparsities(low: float, high: float, step: float) -> list[float]:
    """Sparsities from ``low`` to ``high`` (inclusive) in steps of ``step``, rounded to
    six decimals so that equal values compare equal."""
    n = round((high - low) / step)
    return [round(low + i * step, 6) for i in range(n + 1)]


# ------------------------------------------------------------------------------ chapter 1


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
        experiment="sweep", method="global", sparsity=sparsity
    ):
        where = dict(experiment="sweep", method="global", sparsity=sparsity)
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


# ------------------------------------------------------------------------------ chapter 2


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
    from ..methods.lookahead import lookahead_scores

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


# ------------------------------------------------------------------------------ chapter 3


def init_pruning_state(
    settings: Mapping[str, Any],
    method: str,
    sparsity: float,
    temperature: float,
    seed: int,
    results: Results | None = None,
    arch: str | None = None,
) -> dict[str, Any]:
    """One method's mask at initialisation at ``sparsity``, on the initial network of
    ``seed`` (chapter 3's :func:`~minipruner.book.chapters.init_pruning.measure_masks`): kept
    weights per layer, empty layers and the gradient flow kept. GraSP and its sign variants
    are scored at ``temperature``; the other methods ignore it. Read from ``results`` where
    the chapter measured this state (and, where it trained it, with the test accuracies of
    its seeds), computed now otherwise."""
    from .chapters import init_pruning as chapter

    arch = arch or chapter.arch_names(dict(settings))[0]
    if "grasp" not in method and method not in chapter.SIGN_VARIANTS:
        temperature = settings["temperature"]
    stored = (
        results is not None
        and temperature == settings["temperature"]
        and bool(results.select(experiment="masks", method=method, sparsity=sparsity, seed=seed))
    )
    if stored:
        record = dict(chapter.mask_record(results, method, sparsity, seed))
    else:
        config = {"arch": arch, "seed": seed, "method": method, "sparsity": sparsity}
        record = chapter.measure_masks(config, {**settings, "temperature": temperature})
    record["stored"] = stored
    record["accuracy"] = (
        chapter.accuracies(results, method, sparsity, arch=arch)
        if stored and chapter.is_trained(results, method, sparsity, arch)
        else None
    )
    return record


def _draw_init_pruning(
    record: dict[str, Any], method: str, sparsity: float, temperature: float, seed: int
) -> Figure:
    from .chapters.init_pruning import FLOOR, kind_labels

    kept, sizes = np.array(record["kept"]), np.array(record["sizes"])
    density = kept / sizes
    fig, ax = subplots(figsize=(8, 3.2))
    shown = np.maximum(100 * density, FLOOR)
    ax.bar(range(len(density)), shown, color=np.where(kept == 0, "red", "tab:blue"))
    for i, (k, n) in enumerate(zip(kept, sizes, strict=True)):
        ax.text(i, shown[i] * 1.15, f"{k}/{n}", ha="center", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylim(FLOOR / 2, 300)
    ax.set_xticks(range(len(density)), kind_labels(record["kinds"]), rotation=90, fontsize=7)
    ax.set_ylabel("weights kept in the layer (%)")
    title = f"{method} at {sparsity:.1%}, seed {seed}"
    if "grasp" in method or "Hg" in method:
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
        "method": dropdown(list(methods)),
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


# ------------------------------------------------------------------------------ chapter 4

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
    of the empirical Fisher: each method's test accuracy and the weights CBS-S keeps that MP
    prunes and prunes that MP keeps (flat indices). Read from ``results`` where the chapter
    ran this state (accuracies: mean over its seeds; swaps: ``seed``'s), computed now for
    ``seed`` otherwise (:func:`~minipruner.book.chapters.obs.one_shot`): the gradients and the
    eigendecomposition of their Gram matrix once per network, after which a new damping
    costs no factorisation (:class:`minipruner.methods.obs.FisherSpectrum`), and CBS-S's search,
    which reads no damping, once per sparsity."""
    from .chapters import obs as chapter

    base = settings["networks"]["mlpnet"]["damp"]
    rows = (
        results.select(experiment="oneshot", network="mlpnet", sparsity=sparsity)
        if results is not None and damping == base["damp"]
        else []
    )
    if rows and any(r["seed"] == seed for r in rows):
        (record,) = [r for r in rows if r["seed"] == seed]
        accuracy = {m: float(np.mean([r["accuracy"][m] for r in rows])) for m in chapter.METHODS}
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
    from .chapters.obs import METHODS

    kept = np.array(state["cbs"]["kept_not_mp"], dtype=int)
    pruned = np.array(state["cbs"]["pruned_not_mp"], dtype=int)
    n1 = first_layer[0] * first_layer[1]
    diff = np.zeros(n1)
    diff[kept[kept < n1]] = 1
    diff[pruned[pruned < n1]] = -1
    fig, axes = subplots(1, 2, figsize=(12, 3), gridspec_kw={"width_ratios": [1, 2.5]})
    axes[0].bar(
        list(METHODS),
        [100 * state["accuracy"][m] for m in METHODS],
        color=["0.5", "k", "tab:blue", "tab:blue", "tab:red", "tab:red"],
    )
    axes[0].axhline(100 * state["acc_dense"], color="0.6", lw=1, ls="--")
    axes[0].tick_params(axis="x", labelsize=7)
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
        from .chapters import obs as chapter

        chapter.warm_up(dict(settings), "mlpnet", seed)
    return shown


# ------------------------------------------------------------------------------ chapter 5


def structured_state(
    runs: Mapping[tuple[str, int], Sequence[Mapping[str, Any]]],
    methods: Sequence[str],
    removed: float,
    seed: int,
) -> dict[str, Any]:
    """The stored snapshot of each method's pruning run of ``seed`` nearest to the
    fraction ``removed`` of interior channels removed (its step, widths per block,
    parameters and test error), and each run's whole trajectory (fraction, error)."""
    out = {}
    for m in methods:
        records = runs[m, seed]
        i = int(np.argmin([abs(r["fraction"] - removed) for r in records]))
        out[m] = {
            "snapshot": dict(records[i]),
            "fractions": [r["fraction"] for r in records],
            "errors": [r["error"] for r in records],
        }
    return out


def _draw_structured(
    state: dict[str, Any],
    removed: float,
    seed: int,
    blocks: Sequence[str],
    dense_widths: Mapping[int, Sequence[int]],
) -> Figure:
    colors = {"fisher": "tab:red", "l1": "tab:green"}
    methods = list(state)
    fig, (left, right) = subplots(1, 2, figsize=(9, 3.3), gridspec_kw={"width_ratios": [1.2, 1]})
    xs = np.arange(len(blocks))
    left.bar(xs, dense_widths[seed], width=0.8, color="none", edgecolor="0.6", label="dense")
    for j, m in enumerate(methods):
        snap = state[m]["snapshot"]
        left.bar(
            xs + (j - 0.5) * 0.38,
            snap["widths"],
            width=0.38,
            color=colors.get(m, f"C{j}"),
            label=f"{m}: {snap['parameters']:,} params",
        )
    left.set_xticks(xs, blocks)
    left.set_ylabel("interior channels kept")
    left.legend(fontsize=7, loc="upper left")
    for j, m in enumerate(methods):
        fr = [100 * f for f in state[m]["fractions"]]
        color = colors.get(m, f"C{j}")
        right.plot(fr, state[m]["errors"], color=color, marker=".", label=m)
        snap = state[m]["snapshot"]
        right.plot(100 * snap["fraction"], snap["error"], "o", color=color, ms=9)
    right.axvline(100 * removed, color="0.7", lw=1)
    right.set_yscale("log")
    right.set_yticks([1, 2, 5, 10, 20, 50], ["1", "2", "5", "10", "20", "50"])
    right.set_xlabel("interior channels removed (%)")
    right.set_ylabel("test error right after removal (%)")
    right.legend(fontsize=7)
    step = state[methods[0]]["snapshot"]["step"]
    fig.suptitle(f"seed {seed}, step {step} of the pruning run", fontsize=10)
    fig.tight_layout()
    return fig


def structured_explorer(
    runs: Mapping[tuple[str, int], Sequence[Mapping[str, Any]]],
    methods: Sequence[str],
    seeds: Sequence[int],
    blocks: Sequence[str],
    dense_widths: Mapping[int, Sequence[int]],
    caption: str | None = None,
    mode: str | None = None,
) -> Explorer | LiveExplorer:
    """Chapter 5's explorer: scrub the stored pruning runs (``runs[method, seed]``: the
    records of every removal) by the fraction of interior channels removed; the static
    page shows the first of ``seeds``, live mode any of them. Drawn from
    :func:`structured_state`."""
    fractions = [round(r["fraction"], 6) for r in runs[methods[0], seeds[0]]]
    controls = {
        "removed": slider(fractions, start=fractions[-1], fmt=lambda f: f"{100 * f:.0f} %"),
        "seed": dropdown(list(seeds), grid=(), start=seeds[0]),
    }

    def compute(removed: float, seed: int) -> dict[str, Any]:
        return structured_state(runs, methods, removed, seed)

    return explorer(
        controls,
        lambda state, removed, seed: _draw_structured(state, removed, seed, blocks, dense_widths),
        compute=compute,
        caption=caption,
        dpi=70,
        mode=mode,
    )
