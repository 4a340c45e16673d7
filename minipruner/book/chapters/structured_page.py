"""What chapter 5's page shows from its stored results: accessors, figures and tables.

:mod:`minipruner.book.chapters.structured` runs the chapter's experiments and states its
claims; this module reads what they stored (a :class:`~minipruner.experiments.records.Results`):
the accessors the claims and the page share (the pruning runs' snapshots, the compared
families' errors, the saliency check's gates, the latency rounds), the three figures and the
tables. Nothing here builds or trains a network.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ...experiments.records import Results
from ...experiments.tables import markdown_table, mean_sd_cell, sample_sd
from ...methods import get_method
from . import rank_correlation

FISHER, L1 = "channels-fisher", "channels-l1"
"""The ids (:data:`minipruner.methods.METHODS`) of the two methods whose pruning runs the results
hold; figures draw each in its table entry's label and colour."""
FAMILY = {FISHER: "Fisher", L1: "L1"}
"""The saliency that names each method's families of networks (``"Fisher: pruned-and-tuned"``)."""


def latency_settings(settings: dict[str, Any]) -> list[str]:
    """The names of the input settings the latency configurations time, in order."""
    return [i["name"] for i in settings["latency"]["inputs"]]


# ------------------------------------------------------------- reading the results


def snapshots(results: Results, method: str, seed: int) -> list[dict[str, Any]]:
    """The snapshot records of the pruning run of ``method`` and ``seed``, in order."""
    return results.select(experiment="prune", method=method, seed=seed)[0]["snapshots"]


def at_compare(results: Results, method: str, seed: int) -> dict[str, Any]:
    """The snapshot record compared with the other families (the one with a ``tuned_error``)."""
    return next(r for r in snapshots(results, method, seed) if "tuned_error" in r)


def at_fraction(results: Results, method: str, seed: int, fraction: float) -> dict[str, Any]:
    """The snapshot record of the pruning run at ``fraction`` of interior channels removed."""
    return next(r for r in snapshots(results, method, seed) if abs(r["fraction"] - fraction) < 0.01)


def families(results: Results) -> dict[str, list[dict[str, Any]]]:
    """Per compared network family (dense, right after the last removal, pruned-and-tuned,
    Fisher architecture from scratch, reduced): its records, one per seed, each with
    ``error`` (%), ``parameters`` and ``widths``."""
    seeds = results.settings["seeds"]

    def one(experiment: str) -> list[dict[str, Any]]:
        return [results.select(experiment=experiment, seed=s)[0] for s in seeds]

    def tuned(method: str) -> list[dict[str, Any]]:
        return [
            dict(
                at_compare(results, method, s), error=at_compare(results, method, s)["tuned_error"]
            )
            for s in seeds
        ]

    return {
        "dense": one("dense"),
        "Fisher: right after the last removal": [at_compare(results, FISHER, s) for s in seeds],
        "Fisher: pruned-and-tuned": tuned(FISHER),
        "Fisher architecture, from scratch": one("scratch"),
        "reduced, from scratch": one("reduced"),
        "L1: right after the last removal": [at_compare(results, L1, s) for s in seeds],
        "L1: pruned-and-tuned": tuned(L1),
    }


def errors(results: Results) -> dict[str, np.ndarray]:
    """Test error (%) per family of :func:`families`, one entry per seed."""
    return {name: np.array([r["error"] for r in recs]) for name, recs in families(results).items()}


def saliency_arrays(results: Results) -> dict[str, np.ndarray]:
    """The ``saliency`` measurement as arrays over the closed gates: ``actual``, ``taylor2``,
    ``fisher``, ``first`` and ``half_curvature``."""
    (rec,) = results.select(experiment="saliency")
    keys = ("actual", "taylor2", "fisher", "first", "half_curvature")
    return {k: np.array([g[k] for g in rec["gates"]]) for k in keys}


def saliency_summary(results: Results) -> dict[str, float]:
    """How well the estimates track the actual loss increase when a gate closes: rank
    correlation of the Fisher saliency (``rho_fisher``) and of the second-order estimate
    (``rho_taylor``) with it, and the medians of Fisher / actual (``fisher_ratio``) and of
    |first-order term| / actual (``first_ratio``)."""
    a = saliency_arrays(results)
    return dict(
        rho_fisher=rank_correlation(a["fisher"], a["actual"]),
        rho_taylor=rank_correlation(a["taylor2"], a["actual"]),
        fisher_ratio=float(np.median(a["fisher"] / a["actual"])),
        first_ratio=float(np.median(np.abs(a["first"] / a["actual"]))),
    )


def latency_rounds(results: Results) -> dict[tuple[str, int], dict[str, list[float]]]:
    """``{(setting, batch size): {network: [round medians in seconds]}}``."""
    return {
        (r["setting"], r["batch_size"]): {n: r["rounds"][n] for n in r["names"]}
        for r in results.select(experiment="latency")
    }


def latency_counts(results: Results) -> dict[tuple[str, str], tuple[int, int]]:
    """``{(setting, network): (parameters, FLOPs per example)}`` of the timed networks."""
    return {
        (r["setting"], n): tuple(r["counts"][n])
        for r in results.select(experiment="latency")
        for n in r["names"]
    }


def paired_ratio(
    results: Results, setting: str, batch_size: int, name: str, reference: str
) -> float:
    """Median over rounds of latency(``name``) / latency(``reference``), timed in the same
    round (pairing cancels what slows a whole round down)."""
    times = latency_rounds(results)[setting, batch_size]
    return statistics.median(a / b for a, b in zip(times[name], times[reference], strict=True))


# --------------------------------------------------------------------------------- plots


def saliency_figure(results: Results) -> Figure:
    """Second-order Taylor estimate and Fisher saliency against the actual loss increase
    when one gate of the trained WRN closes (log-log, with the diagonal)."""
    a = saliency_arrays(results)
    actual, taylor2, fisher = a["actual"], a["taylor2"], a["fisher"]
    sal = results.settings["saliency"]
    fig = Figure(figsize=(5.5, 4), layout="tight")
    ax = fig.subplots()
    ax.scatter(
        actual,
        taylor2,
        marker="s",
        facecolors="none",
        edgecolors="tab:blue",
        label=r"second-order Taylor $-\phi' + \phi''/2$",
    )
    ax.scatter(
        actual, fisher, marker="o", color="tab:red", s=14, label=r"Fisher saliency $\Delta_k$"
    )
    lim = [min(actual.min(), fisher.min()) * 0.7, max(actual.max(), taylor2.max()) * 1.4]
    ax.plot(lim, lim, "k:", lw=1, label="estimate = actual")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("actual increase of the mean loss when the gate closes")
    ax.set_ylabel("estimate")
    arch = sal["arch"]
    ax.set_title(
        f"{len(actual)} gates of the trained WRN-{arch['depth']}-{arch['widen']} "
        f"({sal['examples']} training signals)",
        fontsize=10,
    )
    ax.legend(fontsize=8)
    return fig


def error_figure(results: Results) -> Figure:
    """Test error against parameters: each pruning run right after each removal (mean ± sample sd
    over seeds), the pruned-and-tuned snapshots, the pruned architectures and the reduced
    networks trained from scratch, and the dense network."""
    cfg = results.settings
    seeds, fam = cfg["seeds"], families(results)
    err = errors(results)
    fig = Figure(figsize=(6.5, 4.2), layout="tight")
    ax = fig.subplots()
    for method in (FISHER, L1):
        label, color = get_method(method).label, get_method(method).colour
        runs = [snapshots(results, method, s) for s in seeds]
        params = np.array([[r["parameters"] for r in run] for run in runs]).mean(0)
        errs = np.array([[r["error"] for r in run] for run in runs])
        ax.errorbar(
            params,
            errs.mean(0),
            yerr=errs.std(0, ddof=1) if len(errs) > 1 else None,
            color=color,
            alpha=0.5,
            lw=1,
            capsize=2,
            label=f"{label}: pruning run, right after each removal",
        )
        name = f"{FAMILY[method]}: pruned-and-tuned"
        ax.errorbar(
            np.mean([r["parameters"] for r in fam[name]]),
            err[name].mean(),
            yerr=sample_sd(err[name]),
            color=color,
            marker="o",
            ms=8,
            capsize=3,
            ls="none",
            label=name,
        )
    for name, color, marker in (
        ("Fisher architecture, from scratch", "tab:blue", "s"),
        ("reduced, from scratch", "k", "^"),
        ("dense", "0.5", "*"),
    ):
        ax.errorbar(
            np.mean([r["parameters"] for r in fam[name]]),
            err[name].mean(),
            yerr=sample_sd(err[name]),
            color=color,
            marker=marker,
            ms=9,
            capsize=3,
            ls="none",
            label=name,
        )
    ax.set_yscale("log")
    ax.set_yticks([1, 2, 5, 10, 20, 50], ["1", "2", "5", "10", "20", "50"])
    ax.set_xlabel("parameters")
    ax.set_ylabel("test error (%)")
    arch = cfg["arch"]
    ax.set_title(
        f"{cfg['dataset']}, WRN-{arch['depth']}-{arch['widen']}, "
        f"mean ± sample sd over {len(seeds)} seeds",
        fontsize=10,
    )
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def latency_figure(results: Results, setting: str | None = None) -> Figure:
    """Latency at the largest batch size against parameters (left) and FLOPs per example
    (right) of the compressed pruned and reduced networks, the dense network and the
    masks-only pruned one: median and range over rounds. ``setting`` defaults to the first
    input setting (2-D 28x28 at the quick scale)."""
    lat = results.settings["latency"]
    setting = setting or latency_settings(results.settings)[0]
    b = max(lat["batch_sizes"])
    times = latency_rounds(results)[setting, b]
    counts = latency_counts(results)
    compare = results.settings["compare"]
    fig = Figure(figsize=(10, 3.8), layout="tight")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, which, label in ((axes[0], 0, "parameters"), (axes[1], 1, "FLOPs per example")):
        for family, color, marker in (("pruned", "tab:red", "o"), ("reduced", "k", "^")):
            names = [f"{family} {f:.0%}" for f in lat["fractions"]]
            xs = [counts[setting, n][which] for n in names]
            ys = [1e3 * statistics.median(times[n]) for n in names]
            lo = [1e3 * min(times[n]) for n in names]
            hi = [1e3 * max(times[n]) for n in names]
            ax.errorbar(
                xs,
                ys,
                yerr=[np.subtract(ys, lo), np.subtract(hi, ys)],
                color=color,
                marker=marker,
                capsize=3,
                label=f"{family} (compressed)",
            )
        for name, color, marker in (
            ("dense", "0.4", "*"),
            (f"pruned {compare:.0%}, masks only", "tab:purple", "x"),
        ):
            ax.plot(
                counts[setting, name][which],
                1e3 * statistics.median(times[name]),
                marker=marker,
                ms=10,
                ls="none",
                color=color,
                label=name,
            )
        ax.set_xlabel(label)
        ax.set_xscale("log")
    axes[0].set_ylabel(f"CPU latency, batch {b} (ms)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{setting}: median and range over {lat['rounds']} rounds", fontsize=10)
    return fig


def figures(results: Results) -> dict[str, Figure]:
    """The chapter's three plots."""
    return {
        "saliency": saliency_figure(results),
        "errors": error_figure(results),
        "latency": latency_figure(results),
    }


# -------------------------------------------------------------------------------- tables


def accuracy_table(results: Results) -> str:
    """Per family at ``compare``: mean parameters, test error (%, mean ± sample sd over seeds) and
    the interior widths of the first seed."""
    err = errors(results)
    rows = [
        [
            name,
            f"{np.mean([r['parameters'] for r in recs]):,.0f}",
            mean_sd_cell(err[name], percent=False),
            recs[0]["widths"],
        ]
        for name, recs in families(results).items()
    ]
    header = ["network", "parameters", "test error (%)", "interior widths (first seed)"]
    return markdown_table(header, rows)


def latency_table(results: Results, setting: str) -> str:
    """Per timed network of ``setting``: parameters, MFLOPs per example, and per batch size
    the median latency over rounds (ms), the paired ratio to the dense network and the
    round-to-round spread ((slowest - fastest round) / median)."""
    lat = results.settings["latency"]
    times, counts = latency_rounds(results), latency_counts(results)
    header = ["network", "params", "MFLOPs"]
    for b in lat["batch_sizes"]:
        header += [f"b={b} ms", "/dense", "spread"]
    rows = []
    for name in times[setting, lat["batch_sizes"][0]]:
        p, fl = counts[setting, name]
        row = [name, f"{p:,d}", f"{fl / 1e6:.2f}"]
        for b in lat["batch_sizes"]:
            t = times[setting, b][name]
            med = statistics.median(t)
            row += [
                f"{1e3 * med:.3f}",
                f"{paired_ratio(results, setting, b, name, 'dense'):.2f}",
                f"{(max(t) - min(t)) / med:.0%}",
            ]
        rows.append(row)
    return markdown_table(header, rows)


def table(results: Results) -> str:
    """Test error at ``compare`` per family (:func:`accuracy_table`), then the latency of
    every input setting (:func:`latency_table`) with the machine it was measured on."""
    lat = results.settings["latency"]
    parts = [
        f"**Test error at {results.settings['compare']:.0%} of interior channels removed**",
        accuracy_table(results),
    ]
    for setting in latency_settings(results.settings):
        rec = results.select(experiment="latency", setting=setting)[0]
        parts += [
            f"**Latency, {setting}** ({rec['device']}, {rec['threads']} thread(s); median over "
            f"{lat['rounds']} rounds of {lat['repeats']} runs each)",
            latency_table(results, setting),
        ]
    return "\n\n".join(parts)
