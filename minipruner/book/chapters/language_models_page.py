"""What chapter 7's page shows from its stored results: accessors, figures and tables.

:mod:`minipruner.book.chapters.language_models` runs the chapter's experiments and states its
claims; this module reads what they stored (a :class:`~minipruner.experiments.records.Results`):
the levels of the sweep, the accessors the claims and the page share (perplexities of the sweep,
of the dense models and of the comparison-group ablation, the cost experiment's fitted
exponents and seconds per layer), the Wanda README's table beside this page's numbers, the three
figures and the tables. Nothing here builds, trains or prunes a model. The results name each
method by its id in :data:`minipruner.methods.METHODS`; figures and tables show its ``label``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ...experiments.records import Results
from ...experiments.tables import markdown_table
from ...methods import get_method
from ...methods.layerwise import parse_pattern

MAGNITUDE, WANDA, SPARSEGPT = "magnitude-pattern", "wanda", "sparsegpt"
"""The ids (:data:`minipruner.methods.METHODS`) of the page's three methods, as the results key
them; :data:`minipruner.book.chapters.language_models.METHODS` orders them."""
DEFAULT_GROUPS = {MAGNITUDE: "layer", WANDA: "row"}
"""Each method's comparison group for an unstructured mask (as the papers run them: one
threshold per layer for magnitude, per output row for Wanda); ``groups`` runs the other."""

PAPER_TABLE = {
    "source": "locuslab/wanda, README.md (section 'Pruning LLaMA-2'), commit 8e8fc87",
    "metric": "WikiText perplexity",
    "models": ["llama2-7b", "llama2-13b", "llama2-70b"],
    "dense": [5.12, 4.57, 3.12],
    "rows": {
        ("unstructured 50%", MAGNITUDE): [14.89, 6.37, 4.98],
        ("unstructured 50%", SPARSEGPT): [6.51, 5.63, 3.98],
        ("unstructured 50%", WANDA): [6.42, 5.56, 3.98],
        ("4:8", MAGNITUDE): [16.48, 6.76, 5.58],
        ("4:8", SPARSEGPT): [8.12, 6.60, 4.59],
        ("4:8", WANDA): [7.97, 6.55, 4.47],
        ("2:4", MAGNITUDE): [54.59, 8.33, 6.33],
        ("2:4", SPARSEGPT): [10.17, 8.32, 5.40],
        ("2:4", WANDA): [11.02, 8.27, 5.16],
    },
}
"""The papers' own numbers that can be traced: the table of LLaMA-2 perplexities in the Wanda
repository's README (file, repository and commit in ``source``). SparseGPT's README gives
commands, not numbers; the papers' tables are not quoted here (not checked)."""


def levels(settings: dict[str, Any]) -> list[tuple[str, float]]:
    """Every ``(pattern, sparsity)`` the sweep runs: each unstructured sparsity, then each N:M
    pattern at its own sparsity ``1 - N/M``."""
    out = [("unstructured", float(s)) for s in settings["sparsities"]]
    for p in settings["patterns"]:
        n, m = parse_pattern(p)  # type: ignore[misc]
        out.append((p, 1 - n / m))
    return out


def level_name(pattern: str, sparsity: float) -> str:
    """``"50 %"`` for an unstructured sparsity, the pattern (``"2:4"``) otherwise."""
    return f"{100 * sparsity:.0f} %" if pattern == "unstructured" else pattern


def label(method: str) -> str:
    """The method's label in the method table (what the page prints)."""
    return get_method(method).label


# ------------------------------------------------------------------ reading the results


def ppl(results: Results, method: str, pattern: str, sparsity: float) -> np.ndarray:
    """The sweep's perplexity of ``method`` at ``(pattern, sparsity)``, one entry per seed."""
    return results.values(
        "ppl", experiment="sweep", method=method, pattern=pattern, sparsity=sparsity
    )


def dense_ppl(results: Results) -> np.ndarray:
    """The dense models' perplexity, one entry per seed."""
    return results.values("ppl", experiment="dense")


def group_levels(settings: dict[str, Any]) -> list[float]:
    """The sparsities of the comparison-group ablation that the sweep also ran (the method's
    default group comes from the sweep)."""
    return [float(x) for x in settings["group_sparsities"] if x in settings["sparsities"]]


def group_ppl(results: Results, method: str, groups: str, sparsity: float) -> np.ndarray:
    """Perplexity of ``method`` with comparison group ``groups`` at an unstructured
    ``sparsity`` (the method's default group from the sweep, the other from ``groups``)."""
    if groups == DEFAULT_GROUPS[method]:
        return ppl(results, method, "unstructured", sparsity)
    return results.values(
        "ppl", experiment="groups", method=method, groups=groups, sparsity=sparsity
    )


def cost_exponents(results: Results) -> dict[str, np.ndarray]:
    """Per method, per seed: the slope of ``log(seconds)`` against ``log(width)`` fitted over the
    widths the cost experiment ran (how the time per layer grows with the width)."""
    out: dict[str, list[float]] = {}
    for r in results.select(experiment="cost"):
        for method, by_width in r["layer_seconds"].items():
            if len(by_width) < 2:
                continue  # one width: no slope
            d = np.array([float(k) for k in by_width])
            t = np.array(list(by_width.values()))
            out.setdefault(method, []).append(float(np.polyfit(np.log(d), np.log(t), 1)[0]))
    return {m: np.array(v) for m, v in out.items()}


def seconds_per_layer(results: Results, method: str) -> np.ndarray:
    """Per seed: the seconds ``method`` took per layer of the model at the first unstructured
    sparsity of the sweep (50 % on the page; calibration passes included)."""
    first = results.settings["sparsities"][0]
    rows = results.select(experiment="sweep", method=method, pattern="unstructured", sparsity=first)
    return np.array([r["prune_seconds"] / r["layers"] for r in rows])


# ------------------------------------------------------------------ figures and tables

COLORS = {MAGNITUDE: "tab:gray", WANDA: "tab:orange", SPARSEGPT: "tab:blue", "obc": "tab:purple"}


def perplexity_figure(results: Results) -> Figure:
    """Left: perplexity against unstructured sparsity per method (mean ± sd over seeds), the
    dense model dashed. Right: the first unstructured sparsity (50 %) against the N:M patterns
    (4:8, 2:4), per method."""
    s = results.settings
    fig = Figure(figsize=(10, 3.6), layout="tight")
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.4, 1]})
    xs = 100 * np.array(s["sparsities"])
    dense = dense_ppl(results).mean()
    for m in s["methods"]:
        v = np.array([ppl(results, m, "unstructured", sp) for sp in s["sparsities"]])
        left.errorbar(
            xs,
            v.mean(1),
            yerr=v.std(1, ddof=1),
            marker="o",
            capsize=3,
            color=COLORS[m],
            label=label(m),
        )
    left.axhline(dense, color="k", ls="--", lw=1, label="dense")
    left.set_xlabel("weights removed (%)")
    left.set_ylabel("test perplexity (bytes)")
    left.legend(fontsize=8)
    cases = [("unstructured", s["sparsities"][0])]
    cases += [lv for lv in levels(s) if lv[0] != "unstructured"]
    width = 0.8 / len(s["methods"])
    for j, m in enumerate(s["methods"]):
        v = np.array([ppl(results, m, p, sp) for p, sp in cases])
        right.bar(
            np.arange(len(cases)) + (j - (len(s["methods"]) - 1) / 2) * width,
            v.mean(1),
            width,
            yerr=v.std(1, ddof=1),
            color=COLORS[m],
            capsize=2,
            label=label(m),
        )
    right.axhline(dense, color="k", ls="--", lw=1)
    right.set_xticks(range(len(cases)), [level_name(p, sp) for p, sp in cases])
    right.set_ylim(0.9 * dense, None)
    right.set_title("unstructured and N:M", fontsize=9)
    return fig


def groups_figure(results: Results) -> Figure:
    """The comparison-group ablation: perplexity over dense against sparsity for each score
    (magnitude, Wanda) with each group (per layer, per output row)."""
    s = results.settings
    fig = Figure(figsize=(5.5, 3.6), layout="tight")
    ax = fig.subplots()
    dense = dense_ppl(results)
    xs = 100 * np.array(group_levels(s))
    if not len(xs):
        ax.text(0.5, 0.5, "no ablation sparsity in the sweep", ha="center", transform=ax.transAxes)
        return fig
    for m in (MAGNITUDE, WANDA):
        for groups, ls in (("layer", "-"), ("row", ":")):
            v = np.array([group_ppl(results, m, groups, sp) / dense for sp in group_levels(s)])
            name = "one group per layer" if groups == "layer" else "per-output groups"
            ax.plot(xs, v.mean(1), ls=ls, marker="o", color=COLORS[m], label=f"{label(m)}, {name}")
    ax.set_xlabel("weights removed (%)")
    ax.set_ylabel("perplexity / dense perplexity")
    ax.legend(fontsize=7)
    return fig


def cost_figure(results: Results) -> Figure:
    """Seconds per layer against the layer's width (square random layers, 50 %), log-log, the
    median over seeds, with each method's fitted exponent."""
    rows = results.select(experiment="cost")
    exps = cost_exponents(results)
    fig = Figure(figsize=(5.5, 3.6), layout="tight")
    ax = fig.subplots()
    for m in rows[0]["layer_seconds"]:
        widths = sorted(int(k) for k in rows[0]["layer_seconds"][m])
        t = np.median([[r["layer_seconds"][m][str(d)] for d in widths] for r in rows], axis=0)
        ax.loglog(
            widths,
            t,
            marker="o",
            color=COLORS[m],
            label=f"{label(m)} (exponent {np.median(exps.get(m, np.nan)):.1f})",
        )
    widths = sorted({int(k) for r in rows for v in r["layer_seconds"].values() for k in v})
    ax.set_xticks(widths, [str(d) for d in widths])
    ax.minorticks_off()
    ax.set_xlabel("layer width d (a d x d layer)")
    ax.set_ylabel("seconds per layer")
    ax.legend(fontsize=7)
    return fig


def figures(results: Results) -> dict[str, Figure]:
    """The chapter's three plots."""
    return {
        "perplexity": perplexity_figure(results),
        "groups": groups_figure(results),
        "cost": cost_figure(results),
    }


def _cell(v: np.ndarray) -> str:
    return f"{v.mean():.2f} ± {v.std(ddof=1) if v.size > 1 else 0.0:.2f}"


def table(results: Results) -> str:
    """Test perplexity (mean ± sample sd over seeds) per level and method, the dense model
    first."""
    s = results.settings
    rows = [["dense", *[_cell(dense_ppl(results))] * len(s["methods"])]]
    for pattern, sp in levels(s):
        rows.append(
            [level_name(pattern, sp), *[_cell(ppl(results, m, pattern, sp)) for m in s["methods"]]]
        )
    return markdown_table(["level", *[label(m) for m in s["methods"]]], rows)


def paper_ratios(results: Results) -> dict[tuple[str, str], tuple[list[float], float | None]]:
    """Per row of :data:`PAPER_TABLE` (``(case, method)``): the README's perplexity over its dense
    model's, one per model, and ours (mean over seeds of the ratio to the seed's dense model;
    ``None`` where the sweep did not run that case)."""
    dense = dense_ppl(results)
    out = {}
    for (case, m), values in PAPER_TABLE["rows"].items():
        pattern = "unstructured" if case.startswith("unstructured") else case
        run = results.select(experiment="sweep", method=m, pattern=pattern, sparsity=0.5)
        ours = float((ppl(results, m, pattern, 0.5) / dense).mean()) if run else None
        readme = [v / d for v, d in zip(values, PAPER_TABLE["dense"], strict=True)]
        out[case, m] = (readme, ours)
    return out


def paper_table(results: Results) -> str:
    """The Wanda README's LLaMA-2 perplexities (:data:`PAPER_TABLE`) beside ours, each as the
    ratio to its dense model (:func:`paper_ratios`; the absolute numbers are in other units:
    word pieces there, bytes here)."""
    rows = []
    for (case, m), (readme, ours) in paper_ratios(results).items():
        cell = "not run" if ours is None else f"{ours:.3f}"
        rows.append([case, label(m), *[f"{r:.2f}" for r in readme], cell])
    header = ["pattern", "method", *[f"{n} (README)" for n in PAPER_TABLE["models"]], "TinyGPT"]
    return markdown_table(header, rows)


def cost_table(results: Results) -> str:
    """Seconds per square layer (median over seeds) per method and width, and the fitted
    exponent (median)."""
    rows_in = results.select(experiment="cost")
    exps = cost_exponents(results)
    widths = sorted({int(k) for r in rows_in for v in r["layer_seconds"].values() for k in v})
    rows = []
    for m in rows_in[0]["layer_seconds"]:
        cells = []
        for d in widths:
            t = [r["layer_seconds"][m].get(str(d)) for r in rows_in]
            cells.append("" if t[0] is None else f"{1000 * np.median(t):.2f}")
        rows.append([label(m), *cells, f"{np.median(exps.get(m, np.nan)):.2f}"])
    return markdown_table(["method", *[f"d = {d} (ms)" for d in widths], "exponent"], rows)
