"""Interactive explorers that still show something true on the static site.

The book's site runs no Python, so an explorer cannot compute on demand. Instead every
state the reader can reach is computed in advance (one figure per combination of slider
positions) and embedded in the page; plain HTML sliders pick among them with a few lines
of inline JavaScript. Nothing is loaded from elsewhere, so the explorer works the same in
Jupyter, on the static site and offline, and without JavaScript it still shows its
starting state.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import uuid
from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


class Explorer:
    """Sliders over precomputed figures; displays itself as self-contained HTML.

    ``frames[i]`` is the PNG for the ``i``-th combination of slider positions, in
    row-major order over ``controls`` (the last slider varies fastest).
    """

    def __init__(
        self,
        controls: Mapping[str, Sequence[str]],
        frames: Sequence[bytes],
        start: Sequence[int],
        caption: str | None = None,
    ) -> None:
        self.controls = {name: list(labels) for name, labels in controls.items()}
        self.frames = list(frames)
        self.start = list(start)
        self.caption = caption

    def index(self, positions: Sequence[int]) -> int:
        """The frame shown for slider ``positions`` (row-major, last slider fastest)."""
        i = 0
        for pos, labels in zip(positions, self.controls.values(), strict=True):
            i = i * len(labels) + pos
        return i

    def _repr_html_(self) -> str:
        uid = f"explorer-{uuid.uuid4().hex[:8]}"
        shown = self.index(self.start)
        rows = []
        for k, (name, labels) in enumerate(self.controls.items()):
            rows.append(
                f'<div><label>{html.escape(name)} <input type="range" min="0" '
                f'max="{len(labels) - 1}" step="1" value="{self.start[k]}" '
                f'data-labels="{html.escape(json.dumps(labels))}" style="width:min(420px,60%)"> '
                f"<b>{html.escape(labels[self.start[k]])}</b></label></div>"
            )
        images = "".join(
            f'<img alt="state {i}" src="data:image/png;base64,{base64.b64encode(png).decode()}"'
            f' style="max-width:100%;display:{"block" if i == shown else "none"}">'
            for i, png in enumerate(self.frames)
        )
        script = f"""<script>(function(){{
var root=document.getElementById("{uid}");
var inputs=root.querySelectorAll("input"), imgs=root.querySelectorAll("img");
function update(){{var i=0;inputs.forEach(function(el){{
  var labels=JSON.parse(el.dataset.labels);i=i*labels.length+Number(el.value);
  el.parentNode.querySelector("b").textContent=labels[Number(el.value)];}});
  imgs.forEach(function(im,j){{im.style.display=(j===i)?"block":"none";}});}}
inputs.forEach(function(el){{el.addEventListener("input",update);}});}})();</script>"""
        caption = f"<figcaption>{html.escape(self.caption)}</figcaption>" if self.caption else ""
        return (
            f'<figure id="{uid}" class="minipruner-explorer">{"".join(rows)}{images}{caption}'
            f"</figure>{script}"
        )


def precomputed_explorer(
    controls: Mapping[str, Sequence[str]],
    render: Callable[..., Figure],
    start: Mapping[str, int] | None = None,
    dpi: int = 80,
    caption: str | None = None,
) -> Explorer:
    """Sliders over precomputed figures: one slider per entry of ``controls``.

    ``controls`` maps a slider's name to the labels of its positions; ``render(**positions)``
    draws the figure for one combination (``positions[name]`` is the index of slider
    ``name``). All ``prod(len(labels))`` figures are rendered now, so every state the reader
    can reach was computed by the code on the page. ``caption``: text shown under the
    figure (what is drawn, and from which run), as a figure caption.
    """
    names = list(controls)
    if not names or any(len(controls[n]) == 0 for n in names):
        raise ValueError("an explorer needs at least one control with at least one position")
    unknown = set(start or {}) - set(names)
    if unknown:
        raise ValueError(f"start names unknown controls {sorted(unknown)}; controls: {names}")
    first = [dict(start or {}).get(n, 0) for n in names]
    for n, pos in zip(names, first, strict=True):
        if not 0 <= pos < len(controls[n]):
            raise ValueError(f"start position {pos} of {n!r} outside 0..{len(controls[n]) - 1}")
    combos = itertools.product(*(range(len(controls[n])) for n in names))
    frames = [figure_png(render(**dict(zip(names, c, strict=True))), dpi) for c in combos]
    return Explorer(controls, frames, first, caption)
