"""Chapter 5's explorer: pruned-and-tuned against reduced networks, channel by channel."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ...methods import get_method
from ..widgets import Explorer, LiveExplorer, dropdown, explorer, slider, subplots


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
    colors = {m: get_method(m).colour for m in state}
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
            label=f"{get_method(m).label}: {snap['parameters']:,} params",
        )
    left.set_xticks(xs, blocks)
    left.set_ylabel("interior channels kept")
    left.legend(fontsize=7, loc="upper left")
    for j, m in enumerate(methods):
        fr = [100 * f for f in state[m]["fractions"]]
        color = colors.get(m, f"C{j}")
        right.plot(fr, state[m]["errors"], color=color, marker=".", label=get_method(m).label)
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
