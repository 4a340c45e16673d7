"""Interactive explorers: live in a Jupyter kernel, precomputed on the static site.

The book's site runs no Python, so an explorer cannot compute on demand. Instead every
state the reader can reach is computed in advance (one figure per combination of slider
positions) and embedded in the page; plain HTML sliders pick among them with a few lines
of inline JavaScript. Nothing is loaded from elsewhere, so the explorer works the same in
Jupyter, on the static site and offline, and without JavaScript it still shows its
starting state.

In a kernel that a reader drives (JupyterLab, Colab, Binder, VS Code) the same description
runs live instead (:func:`explorer`, :class:`LiveExplorer`): ipywidgets controls whose
changes call the package and redraw, over any value the control offers, not only the
precomputed grid. :func:`widget_mode` says which of the two a process gets, and why.
"""

from __future__ import annotations

import base64
import html
import inspect
import io
import itertools
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def subplots(*args: Any, figsize: tuple[float, float] | None = None, **kwargs: Any) -> tuple:
    """``(figure, axes)`` like ``plt.subplots``, but the figure is not registered with pyplot.
    Live explorers draw in a worker thread; a pyplot figure there could be shown or closed
    half-drawn by the notebook's own figure handling on the main thread."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


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


# ------------------------------------------------------------------------------ live mode

MODE_ENV = "MINIPRUNER_WIDGETS"
MODES = ("live", "static")


def widget_mode() -> str:
    """``"live"`` or ``"static"``: how :func:`explorer` shows itself in this process.

    ``$MINIPRUNER_WIDGETS`` decides when set (``live`` or ``static``). Otherwise the explorer
    is live only inside an IPython kernel that an interactive front end started: JupyterLab,
    Notebook 7 or Binder (their Jupyter server gives the kernel ``JPY_SESSION_NAME``), Colab
    (``google.colab`` is imported) or VS Code (``VSCODE_PID``). A kernel run by nbclient,
    which is how Jupyter Book and nbval execute a notebook, has none of these, so the built
    page and the tests get the precomputed HTML: deterministic, and nothing waits on a widget.
    """
    chosen = os.environ.get(MODE_ENV, "").strip().lower()
    if chosen:
        if chosen not in MODES:
            raise ValueError(f"{MODE_ENV}={chosen!r}; valid: {', '.join(MODES)}")
        return chosen
    shell = sys.modules.get("IPython")
    ip = shell.get_ipython() if shell is not None else None
    if ip is None or getattr(ip, "kernel", None) is None:
        return "static"
    if os.environ.get("JPY_SESSION_NAME") or os.environ.get("VSCODE_PID"):
        return "live"
    return "live" if "google.colab" in sys.modules else "static"


@dataclass(frozen=True)
class Control:
    """One control of an explorer: the values live mode offers (``values``), the values the
    static page precomputes (``grid``; empty: live only, the static page fixes the control at
    ``start``), the starting value, how a value is written (``fmt``) and the kind of widget
    (``"slider"`` or ``"dropdown"``). Build it with :func:`slider` or :func:`dropdown`."""

    values: tuple[Any, ...]
    grid: tuple[Any, ...]
    start: Any
    fmt: Callable[[Any], str] = str
    kind: str = "slider"

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("a control needs at least one value")
        if self.start not in self.values:
            raise ValueError(f"start {self.start!r} is not one of the control's values")
        if self.grid and self.start not in self.grid:
            raise ValueError(f"start {self.start!r} is not one of the static page's values")
        missing = [v for v in self.grid if v not in self.values]
        if missing:
            raise ValueError(f"static values {missing} are not offered live")
        if self.kind not in ("slider", "dropdown"):
            raise ValueError(f"kind {self.kind!r}; valid: slider, dropdown")


def _control(
    kind: str,
    values: Sequence[Any],
    grid: Sequence[Any] | None,
    start: Any,
    fmt: Callable[[Any], str],
) -> Control:
    grid = tuple(values if grid is None else grid)
    values = tuple(values)
    if grid and any(v not in values for v in grid) and kind == "slider":
        # a slider over numbers: the static positions join the live ones, in order
        values = tuple(sorted(set(values) | set(grid)))
    start = (grid or values)[0] if start is None else start
    return Control(values, grid, start, fmt, kind)


def slider(
    values: Sequence[Any],
    grid: Sequence[Any] | None = None,
    start: Any = None,
    fmt: Callable[[Any], str] = str,
) -> Control:
    """A slider over the ordered ``values``; ``grid``: the positions the static page
    precomputes (``None``: all of them; ``()``: live only); ``start``: the first value shown
    (default: the first static position). Numeric static positions missing from ``values``
    are added in order."""
    return _control("slider", values, grid, start, fmt)


def dropdown(
    values: Sequence[Any],
    grid: Sequence[Any] | None = None,
    start: Any = None,
    fmt: Callable[[Any], str] = str,
) -> Control:
    """A drop-down menu over ``values`` (arguments as for :func:`slider`)."""
    return _control("dropdown", values, grid, start, fmt)


def _accepts_progress(fn: Callable[..., Any]) -> bool:
    try:
        return "progress" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class LiveExplorer:
    """An explorer that computes in the kernel: one ipywidgets control per entry of
    ``controls``; every change calls ``compute(**state)`` (if given) and ``render``, and shows
    the figure as a PNG. Figures (and computed data) are cached per state, so a state
    already seen is shown at once. While a state computes, a progress bar and a status line
    say so; ``compute`` may take a ``progress(fraction, text)`` argument to report stages.
    An exception in ``compute`` or ``render`` is shown in the status line and kept in
    ``error``; the previous figure stays.

    With ``background=True`` a new state computes in a worker thread, so the kernel keeps
    answering the controls while it runs (``render`` should then draw with :func:`subplots`,
    outside pyplot); while one state computes, further changes wait and
    only the last one is computed next (every computed state is cached; only the current one
    is shown). :meth:`wait` blocks until the worker is idle.

    ``render(**state)`` (or ``render(data, **state)`` with ``compute``) returns a figure.
    """

    def __init__(
        self,
        controls: Mapping[str, Control],
        render: Callable[..., Figure],
        compute: Callable[..., Any] | None = None,
        caption: str | None = None,
        dpi: int = 80,
        background: bool = False,
    ) -> None:
        import ipywidgets as w

        self.background = background
        self._lock = threading.Lock()
        self._wanted: dict[str, Any] | None = None
        self._worker: threading.Thread | None = None
        self.controls = dict(controls)
        self.render, self.compute, self.dpi = render, compute, dpi
        self.figures: dict[tuple, bytes] = {}
        self.computed: dict[tuple, Any] = {}
        self.data: Any = None
        self.error: str | None = None
        self.seconds = 0.0
        layout = w.Layout(width="min(560px, 95%)")
        style = {"description_width": "initial"}
        self.widgets = {}
        for name, c in self.controls.items():
            options = [(c.fmt(v), v) for v in c.values]
            cls = w.SelectionSlider if c.kind == "slider" else w.Dropdown
            extra = {"continuous_update": False} if c.kind == "slider" else {}
            widget = cls(
                options=options,
                value=c.start,
                description=name,
                layout=layout,
                style=style,
                **extra,
            )
            widget.observe(self._changed, names="value")
            self.widgets[name] = widget
        self.progress = w.FloatProgress(
            value=0.0, min=0.0, max=1.0, layout=w.Layout(width="160px", visibility="hidden")
        )
        self.status = w.HTML(value="")
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        parts = [*self.widgets.values(), w.HBox([self.progress, self.status]), self.image]
        if caption:
            parts.append(w.HTML(value=f"<figcaption>{html.escape(caption)}</figcaption>"))
        self.box = w.VBox(parts)
        self.box.add_class("minipruner-live-explorer")
        self.update()

    def state(self) -> dict[str, Any]:
        """The value of every control, by name."""
        return {name: widget.value for name, widget in self.widgets.items()}

    def _report(self, fraction: float, text: str = "") -> None:
        self.progress.value = min(max(float(fraction), 0.0), 1.0)
        self.status.value = html.escape(f"computing… {text}".strip())

    def _changed(self, change: Any) -> None:
        self.update()

    def update(self) -> None:
        """Show the figure of the current state: from the cache, or computed now (in the
        worker thread with ``background``)."""
        state = self.state()
        key = tuple(state.values())
        if key in self.figures:
            self.data = self.computed.get(key)
            self.image.value = self.figures[key]
            self.status.value = ""
            return
        if not self.background:
            self._compute(state)
            return
        with self._lock:
            self._wanted = state
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, daemon=True)
                self._worker.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                state, self._wanted = self._wanted, None
                if state is None:
                    self._worker = None
                    return
            self._compute(state)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the background worker has computed every requested state."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)

    def _compute(self, state: dict[str, Any]) -> None:
        """Compute and draw ``state``, cache it, and show it if it is still the current one."""
        key = tuple(state.values())
        self.progress.layout.visibility = "visible"
        self._report(0.0)
        start = time.perf_counter()
        try:
            if self.compute is None:
                fig = self.render(**state)
            else:
                kwargs = {"progress": self._report} if _accepts_progress(self.compute) else {}
                data = self.compute(**state, **kwargs)
                self._report(0.9, "drawing")
                fig = self.render(data, **state)
                self.computed[key] = data
                self.data = data
            png = figure_png(fig, self.dpi)
        except Exception as exc:  # shown to the reader; the previous figure stays
            self.error = f"{type(exc).__name__}: {exc}"
            self.status.value = (
                f'<span class="minipruner-live-error" style="color:#b00">'
                f"{html.escape(self.error)}</span>"
            )
            return
        finally:
            self.progress.layout.visibility = "hidden"
        self.seconds = time.perf_counter() - start
        self.error = None
        self.figures[key] = png
        if tuple(self.state().values()) != key:  # the reader moved on; that state comes next
            return
        self.image.value = png
        self.status.value = f"computed in {self.seconds:.1f} s" if self.seconds >= 1 else ""

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return self.box._repr_mimebundle_(**kwargs)


def explorer(
    controls: Mapping[str, Control],
    render: Callable[..., Figure],
    compute: Callable[..., Any] | None = None,
    caption: str | None = None,
    dpi: int = 80,
    mode: str | None = None,
) -> Explorer | LiveExplorer:
    """One explorer description, shown live in a Jupyter kernel and precomputed on the site.

    ``controls`` maps a name to a :class:`Control` (:func:`slider`, :func:`dropdown`);
    ``render(**state)`` draws the figure of one state (the value of every control), or,
    with ``compute``, ``render(compute(**state), **state)``. ``mode`` (default
    :func:`widget_mode`): ``"live"`` returns a :class:`LiveExplorer` that computes each state
    the reader chooses (in a background thread when the mode was detected, i.e. a reader's
    front end, so the kernel is not blocked while a state computes); ``"static"`` renders
    every combination of the controls' static values (``grid``) with
    :func:`precomputed_explorer`, live-only controls fixed at their start.
    """
    detected = mode is None
    mode = mode or widget_mode()
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}; valid: {', '.join(MODES)}")
    if not controls:
        raise ValueError("an explorer needs at least one control")
    if mode == "live":  # chosen by the reader's front end: compute without blocking it
        return LiveExplorer(controls, render, compute, caption, dpi, background=detected)
    fixed = {name: c.start for name, c in controls.items() if not c.grid}
    shown = {name: c for name, c in controls.items() if c.grid}
    if not shown:
        raise ValueError("the static page needs at least one control with static values")

    def render_position(**positions: int) -> Figure:
        state = {
            name: c.grid[positions[name]] if c.grid else fixed[name] for name, c in controls.items()
        }
        if compute is None:
            return render(**state)
        kwargs = {"progress": lambda fraction, text="": None} if _accepts_progress(compute) else {}
        return render(compute(**state, **kwargs), **state)

    return precomputed_explorer(
        {name: [c.fmt(v) for v in c.grid] for name, c in shown.items()},
        render_position,
        start={name: c.grid.index(c.start) for name, c in shown.items()},
        dpi=dpi,
        caption=caption,
    )
