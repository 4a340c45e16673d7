"""Precomputed explorers: every reachable state is rendered, and the page needs no server."""

import matplotlib.pyplot as plt
import pytest

from minipruner.book.widgets import precomputed_explorer


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


# ------------------------------------------------------------------ live mode (issue 16)

import copy  # noqa: E402
import sys  # noqa: E402
import types  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

import minipruner as mp  # noqa: E402
from minipruner.book import explorers  # noqa: E402
from minipruner.book.widgets import (  # noqa: E402
    MODE_ENV,
    Explorer,
    LiveExplorer,
    dropdown,
    explorer,
    slider,
    widget_mode,
)
from minipruner.methods.magnitude import brute_force_masks  # noqa: E402


def test_mode_follows_the_environment_variable(monkeypatch):
    monkeypatch.setenv(MODE_ENV, "live")
    assert widget_mode() == "live"
    monkeypatch.setenv(MODE_ENV, "static")
    assert widget_mode() == "static"
    monkeypatch.setenv(MODE_ENV, "sometimes")
    with pytest.raises(ValueError, match="valid"):
        widget_mode()


def test_mode_is_live_only_in_a_kernel_a_front_end_started(monkeypatch):
    monkeypatch.delenv(MODE_ENV, raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.delenv("VSCODE_PID", raising=False)
    shell = types.SimpleNamespace(kernel=object())
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    assert widget_mode() == "static"  # a kernel nbclient runs (Jupyter Book, nbval)
    monkeypatch.setenv("JPY_SESSION_NAME", "notebooks/01_magnitude.ipynb")
    assert widget_mode() == "live"  # JupyterLab's server names the session's notebook
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert widget_mode() == "static"  # not in a kernel at all


def _controls():
    return {
        "a": slider([0.1, 0.2, 0.3, 0.4], grid=[0.1, 0.3], start=0.3),
        "b": dropdown(["x", "y"], grid=(), start="y"),
    }


def test_live_explorer_computes_each_new_state_once_and_redraws():
    calls = []

    def compute(a, b, progress):
        progress(0.5, "half")
        calls.append((a, b))
        return {"a": a, "b": b}

    ex = explorer(_controls(), lambda data, a, b: _render(**data), compute=compute, mode="live")
    assert isinstance(ex, LiveExplorer) and ex.state() == {"a": 0.3, "b": "y"}
    first = ex.image.value
    assert bytes(first).startswith(b"\x89PNG") and ex.data == {"a": 0.3, "b": "y"}
    ex.widgets["a"].value = 0.2  # a value the static page does not have
    assert ex.data == {"a": 0.2, "b": "y"} and ex.image.value != first
    ex.widgets["a"].value = 0.3  # back: from the cache
    assert ex.image.value == first and calls == [(0.3, "y"), (0.2, "y")]
    assert ex.progress.layout.visibility == "hidden" and ex.error is None


def test_live_explorer_in_the_background_computes_off_the_kernel_thread_latest_first():
    import threading

    calls, gate = [], threading.Event()

    def compute(a, b):
        calls.append((a, threading.current_thread() is threading.main_thread()))
        gate.wait(10)  # a slow state: the controls stay answerable meanwhile
        return {"a": a, "b": b}

    ex = LiveExplorer(_controls(), lambda data, a, b: _render(**data), compute, background=True)
    for _ in range(1000):  # until the worker has started on the first state (a busy machine
        if calls:  # can otherwise reach the changes below first, and 0.3 is then superseded)
            break
        threading.Event().wait(0.01)
    ex.widgets["a"].value = 0.1  # returns at once: the first state is still computing
    ex.widgets["a"].value = 0.2  # supersedes 0.1, which is never computed
    gate.set()
    ex.wait(10)
    assert calls == [(0.3, False), (0.2, False)]
    assert ex.data == {"a": 0.2, "b": "y"} and ex.error is None
    shown = ex.image.value
    ex.widgets["a"].value = 0.3  # computed first, cached: shown at once
    assert ex.image.value != shown and len(calls) == 2


def test_live_explorer_shows_an_error_and_keeps_the_last_figure():
    def render(a, b):
        if a > 0.35:
            raise RuntimeError("no such state")
        return _render(a=a, b=b)

    ex = explorer(_controls(), render, mode="live")
    before = ex.image.value
    ex.widgets["a"].value = 0.4
    assert ex.error == "RuntimeError: no such state" and "no such state" in ex.status.value
    assert ex.image.value == before


def test_static_explorer_renders_the_grid_with_live_only_controls_fixed():
    seen = []

    def render(a, b):
        seen.append((a, b))
        return _render(a=a, b=b)

    ex = explorer(_controls(), render, mode="static")
    assert isinstance(ex, Explorer) and list(ex.controls) == ["a"]
    assert seen == [(0.1, "y"), (0.3, "y")] and ex.start == [1]


def test_controls_check_their_values():
    with pytest.raises(ValueError, match="start"):
        dropdown(["x"], start="z")
    with pytest.raises(ValueError, match="not offered live"):
        dropdown(["x", "y"], grid=["x", "z"], start="x")
    assert slider([0.5, 0.9], grid=[0.7]).values == (0.5, 0.7, 0.9)  # static joins live


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(20, 12), nn.ReLU(), nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 3)
    ).eval()


def _data():
    g = torch.Generator().manual_seed(1)
    return TensorDataset(torch.randn(60, 20, generator=g), torch.randint(0, 3, (60,), generator=g))


def test_chapter1_live_any_sparsity_and_layer():
    model, data = _mlp(), _data()
    ex = explorers.magnitude_explorer(model, data, [0.5, 0.9], mode="live")
    first = ex.image.value
    ex.widgets["sparsity"].value = 0.73  # between the static page's positions
    ex.widgets["layer"].value = "0.weight"  # a layer the static page does not show
    assert ex.image.value != first and ex.error is None
    masks = mp.masks_from_scores(mp.magnitude_scores(model), 0.73)
    assert torch.equal(ex.data["mask"], masks["0.weight"])
    corner = model[0].weight.detach()[:3, :4]
    k = int((~masks["0.weight"][:3, :4]).sum())
    assert ex.data["corner_optimum"] == pytest.approx(brute_force_masks(corner, k)[1].item())
    assert ex.data["corner_distortion"] == pytest.approx(ex.data["corner_optimum"])
    assert ex.data["distortion"] == pytest.approx(ex.data["optimum"], rel=1e-5)
    pruned = copy.deepcopy(model)
    mp.apply_masks(pruned, masks)
    assert ex.data["acc_pruned"] == mp.evaluate(pruned, data).accuracy


def test_chapter2_live_lap_and_mp_masks_at_any_layer_sparsity():
    model = _mlp()
    ex = explorers.lookahead_explorer(model, ["2.weight"], [0.5, 0.75], mode="live")
    first = ex.image.value
    ex.widgets["sparsity"].value = 0.9
    assert ex.image.value != first and ex.error is None
    lap = mp.lookahead_scores(model)["2.weight"]
    keep = mp.masks_from_scores({"w": lap}, 0.9, scope="layer")["w"]
    assert torch.equal(ex.data["keep_lap"], keep)
    assert ex.data["lap_only"] == int((keep & ~ex.data["keep_mp"]).sum())
    # the score is |w| times the two neighbour norms drawn beside it
    w = model[2].weight.detach().abs()
    product = w * ex.data["next_norms"][:, None] * ex.data["prev_norms"][None, :]
    assert torch.allclose(product, lap, rtol=1e-5)


def test_chapter5_live_scrubs_any_seed():
    # runs are keyed by method id, as chapter 5 stores them; the figure prints their labels
    FISHER, L1 = "channels-fisher", "channels-l1"

    def record(i, f, seed):
        return {
            "fraction": f,
            "widths": [4 - i, 5, 6 + seed],
            "parameters": 100 - i,
            "error": 1 + f,
            "step": 10 * i,
        }

    runs = {
        (m, seed): [record(i, f, seed) for i, f in enumerate([0.0, 0.25, 0.5])]
        for m in (FISHER, L1)
        for seed in (0, 1)
    }
    args = (runs, [FISHER, L1], [0, 1], ["b1", "b2", "b3"], {0: [4, 5, 6], 1: [4, 5, 7]})
    ex = explorers.structured_explorer(*args, mode="live")
    first = ex.image.value
    ex.widgets["seed"].value = 1  # the static page shows the first seed only
    ex.widgets["removed"].value = 0.25
    assert ex.image.value != first and ex.data[FISHER]["snapshot"] == runs[FISHER, 1][1]
    static = explorers.structured_explorer(*args, mode="static")
    assert ex.error is None
    assert list(static.controls) == ["removed"] and len(static.frames) == 3


def test_chapter3_live_temperature_and_fresh_initialisation():
    from minipruner.book.chapters import init_pruning as chapter

    settings = {**chapter.settings("quick"), "per_class": 2}  # a 20-example scoring batch
    ex = explorers.init_pruning_explorer(settings, ["grasp", "snip"], [0.9, 0.98], mode="live")
    first = ex.image.value
    ex.widgets["temperature"].value = 1.0  # live only: GraSP at another temperature
    assert ex.image.value != first and ex.error is None
    arch = chapter.arch_names(settings)[0]
    seed = settings["seeds"][0]
    config = {"arch": arch, "seed": seed, "method": "grasp", "sparsity": 0.9}
    direct = chapter.measure_masks(config, {**settings, "temperature": 1.0})
    assert ex.data["kept"] == direct["kept"] and ex.data["flow"] == pytest.approx(direct["flow"])
    assert not ex.data["stored"]
    ex.widgets["method"].value = "snip"  # SNIP ignores the temperature
    assert ex.data["kept"] != direct["kept"]


def _tiny_obs_settings() -> dict:
    """Chapter 4's quick settings cut to 100 gradients (10 per class), 100 start examples and
    a CBS-S search of 2 starts and 1 iteration, so that a live state costs seconds."""
    from minipruner.book.chapters import obs as chapter

    settings = chapter.settings("quick")
    net = dict(settings["networks"]["mlpnet"], per_class=10)  # 100 gradients
    return {
        **settings,
        "networks": {"mlpnet": net},
        "start_examples": 100,
        "cbs": dict(settings["cbs"], n_starts=2, max_iter=1),
    }


def test_chapter4_warm_up_leaves_a_new_damping_no_eigendecomposition(monkeypatch):
    from minipruner.book.chapters import obs as chapter
    from minipruner.methods import obs

    settings = _tiny_obs_settings()
    seed = settings["seeds"][0]
    chapter._spectrum.cache_clear()
    thread = chapter.warm_up(settings, "mlpnet", seed)
    thread.join(timeout=120)
    assert not thread.is_alive() and chapter._spectrum.cache_info().currsize == 1

    def refuse(*args, **kwargs):
        raise AssertionError("the damping change decomposed the Fisher again")

    monkeypatch.setattr(obs.FisherSpectrum, "__init__", refuse)
    state = explorers.obs_state(settings, 0.9, 1e-2, seed)
    assert set(state["accuracy"]) == set(settings["methods"])


def test_chapter4_live_damping_recomputes_the_one_shot_comparison():
    from minipruner.book.chapters import obs as chapter

    settings = _tiny_obs_settings()
    net = settings["networks"]["mlpnet"]
    ex = explorers.obs_explorer(settings, [0.9], mode="live")
    first = ex.image.value
    ex.widgets["damping"].value = 1e-1  # live only
    assert ex.image.value != first and ex.error is None
    changed = dict(net, damp=dict(net["damp"], damp=1e-1))
    config = {"experiment": "oneshot", "network": "mlpnet", "seed": settings["seeds"][0]}
    direct = chapter.one_shot(
        {**config, "sparsity": 0.9}, {**settings, "networks": {"mlpnet": changed}}
    )
    # The explorer's Fisher comes from one eigendecomposition for every damping, the
    # chapter's from a Cholesky factorisation per damping: equal up to rounding.
    assert ex.data["accuracy"] == pytest.approx(direct["accuracy"], abs=0.11)
    assert ex.data["cbs"]["kept_not_mp"] == direct["cbs"]["kept_not_mp"]  # reads no damping
    again = {**settings, "networks": {"mlpnet": dict(changed, damp=dict(net["damp"], damp=1e-2))}}
    ex.widgets["damping"].value = 1e-2
    spectral = chapter.one_shot({**config, "sparsity": 0.9}, again, spectrum=True)
    assert ex.data["accuracy"] == spectral["accuracy"]
    assert ex.data["accuracy"] == pytest.approx(
        chapter.one_shot({**config, "sparsity": 0.9}, again)["accuracy"], abs=0.11
    )
