"""Interactive explorers that still show something true on the static site.

The book's site runs no Python, so an explorer cannot compute on demand. Instead every
state the reader can reach is computed in advance (one figure per combination of control
positions), and the controls pick among them. The links between controls and pictures are
made in the browser (``ipywidgets.jslink`` to nested ``Stack`` widgets), so the explorer
works on the static page, where the widget state is stored with the executed notebook,
exactly as in a live Jupyter session.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def precomputed_explorer(
    controls: Mapping[str, Sequence[str]],
    render: Callable[..., Figure],
    start: Mapping[str, int] | None = None,
    dpi: int = 80,
) -> widgets.VBox:
    """Sliders over precomputed figures: one slider per entry of ``controls``.

    ``controls`` maps a slider's name to the labels of its positions; ``render(**indices)``
    draws the figure for one combination of positions (``indices[name]`` is the position
    of slider ``name``). All ``prod(len(labels))`` figures are rendered now; in the browser
    the sliders select among them through nested ``Stack`` widgets.
    """
    names = list(controls)
    if not names or any(len(controls[n]) == 0 for n in names):
        raise ValueError("an explorer needs at least one control with at least one position")
    first = {n: 0 for n in names} | dict(start or {})
    stacks: list[list[widgets.Stack]] = [[] for _ in names]

    def build(level: int, chosen: dict[str, int]) -> widgets.Widget:
        if level == len(names):
            return widgets.Image(value=figure_png(render(**chosen), dpi), format="png")
        name = names[level]
        children = [build(level + 1, {**chosen, name: i}) for i in range(len(controls[name]))]
        stack = widgets.Stack(children, selected_index=first[name])
        stacks[level].append(stack)
        return stack

    root = build(0, {})
    sliders = []
    for level, name in enumerate(names):
        slider = widgets.SelectionSlider(
            options=list(controls[name]),
            index=first[name],
            description=name,
            layout=widgets.Layout(width="min(560px, 100%)"),
            style={"description_width": "initial"},
        )
        for stack in stacks[level]:
            widgets.jslink((slider, "index"), (stack, "selected_index"))
        sliders.append(slider)
    return widgets.VBox([*sliders, root])
