"""Precomputed explorers: every reachable state is rendered, and the page needs no server."""

import matplotlib.pyplot as plt
import pytest

from minipruner.widgets import precomputed_explorer


def _render(**positions):
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.set_title(str(positions))
    return fig


def test_explorer_renders_every_combination_in_row_major_order():
    calls = []

    def render(**positions):
        calls.append(positions)
        return _render(**positions)

    ex = precomputed_explorer({"a": ["x", "y"], "b": ["1", "2", "3"]}, render, start={"b": 2})
    assert len(ex.frames) == 6 and all(f.startswith(b"\x89PNG") for f in ex.frames)
    assert calls[ex.index([1, 0])] == {"a": 1, "b": 0}
    page = ex._repr_html_()
    assert page.count("<img") == 6 and page.count('type="range"') == 2
    assert page.count("display:block") == 1  # only the starting state is visible without JS
    assert 'src="http' not in page and "<script src" not in page  # nothing fetched


def test_explorer_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        precomputed_explorer({}, _render)
    with pytest.raises(ValueError, match="unknown controls"):
        precomputed_explorer({"a": ["x"]}, _render, start={"z": 0})
    with pytest.raises(ValueError, match="outside"):
        precomputed_explorer({"a": ["x"]}, _render, start={"a": 3})


def test_explorer_caption_is_shown_and_escaped():
    ex = precomputed_explorer({"a": ["x"]}, _render, caption="Red: kept <only> by LAP")
    page = ex._repr_html_()
    assert "<figcaption>Red: kept &lt;only&gt; by LAP</figcaption>" in page
    assert "<figcaption>" not in precomputed_explorer({"a": ["x"]}, _render)._repr_html_()
