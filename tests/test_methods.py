"""The method table: every entry builds a pruner of the one interface, each pruner does
what its method's own function does, and bad input gets a clear error."""

import copy
import dataclasses

import pytest
import torch
from conftest import seeded_sequential, seeded_wrn
from matplotlib.colors import is_color_like, to_hex
from torch import nn

import minipruner as mp
from minipruner.core.masks import Pruner, Scorer, keep_mask
from minipruner.core.models import WideResNet
from minipruner.methods import METHODS, NEEDS, Method, get_method, make_pruner, obs, table
from minipruner.methods.init_pruning import grasp_scores
from minipruner.methods.structured import (
    channel_weight_masks,
    fisher_saliency,
    l1_saliency,
    neuron_masks,
)


def mlp(seed: int = 0) -> nn.Module:
    return seeded_sequential([12, 8, 6, 3], seed, bias=False, flatten=True)


def batch(n: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 12, generator=g), torch.randint(0, 3, (n,), generator=g)


def small_wrn(seed: int = 0) -> WideResNet:
    return seeded_wrn(1, seed=seed).eval()


OPTIONS = {"cbs-s": {"n_starts": 3}, "cbs": {"n_starts": 3}}


def test_every_entry_is_well_formed():
    assert len(METHODS) == len({m.label for m in METHODS.values()})  # labels are unique
    for mid, m in METHODS.items():
        assert m.id == mid
        assert m.needs in NEEDS
        assert 1 <= m.chapter <= 7
        assert m.scope in ("global", "layer", "units")
        if m.scorer is not None:
            assert isinstance(m.scorer, Scorer)
    chapters = [m.chapter for m in METHODS.values()]
    assert chapters == sorted(chapters)  # in chapter order


def test_ids_and_labels_are_unique_and_every_entry_has_a_colour():
    ids = [m.id for m in table._ENTRIES]
    labels = [m.label for m in table._ENTRIES]
    assert len(ids) == len(set(ids)) == len(METHODS)  # the flat list, before the dict
    assert len(labels) == len(set(labels))  # a label is one method's
    for m in METHODS.values():
        assert is_color_like(m.colour), m.id
    for chapter in {m.chapter for m in METHODS.values()}:  # a chapter's methods differ
        colours = [to_hex(m.colour) for m in METHODS.values() if m.chapter == chapter]
        assert len(colours) == len(set(colours)), chapter
    # every method its own colour across the whole table: chapter 6 shows methods of every
    # chapter in one figure, and a new method must not take a colour a figure already uses
    everywhere = [to_hex(m.colour) for m in METHODS.values()]
    assert len(everywhere) == len(set(everywhere))
    with pytest.raises(ValueError, match="needs a colour"):
        Method("x", "X", 1, "weights", "layer", lambda: None)
    twice = [*table._ENTRIES, dataclasses.replace(METHODS["lap"], id="lap-2")]
    with pytest.raises(ValueError, match="labels must be unique"):
        table._entries(twice)


def test_chapter_four_steps_are_written_in_the_entries():
    steps = {m.id: m.steps for m in METHODS.values() if m.steps is not None}
    assert steps == {
        "magnitude-global": ("magnitude", None),
        "mp+u": ("magnitude", "set"),
        "wf-s": ("woodfisher", None),
        "wf": ("woodfisher", "single"),
        "cbs-s": ("cbs", None),
        "cbs": ("cbs", "set"),
    }
    with pytest.raises(ValueError, match="not a selection-and-update"):
        _ = get_method("lap").obs_steps


@pytest.mark.parametrize("mid", [m for m in METHODS if not m.startswith("channels")])
def test_every_pruner_removes_the_fraction_it_is_asked_for(mid):
    net = mlp()
    pruner = make_pruner(mid, **OPTIONS.get(mid, {}))
    assert isinstance(pruner, Pruner)
    masks = pruner(net, 0.6, batch())
    assert set(masks) == set(mp.prunable(net))
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    if get_method(mid).scope == "units":  # whole units: at least the fraction asked for
        assert kept <= round(0.4 * total)
    else:
        assert kept == total - round(0.6 * total) or get_method(mid).scope == "layer"
    for name, w in mp.prunable(net).items():  # the masks are applied to the model
        assert (w[~masks[name]] == 0).all()


def test_score_based_pruners_equal_their_scorer_and_masks_from_scores():
    x, y = batch()
    for mid in ("grasp", "snip", "magnitude-global", "random", "lap-global"):
        entry = get_method(mid)
        a, b = mlp(), mlp()
        got = entry.pruner()(a, 0.7, (x, y))
        scores = entry.scorer(b, (x, y))
        expected = mp.masks_from_scores(
            mp.normalize_scores(scores) if mid == "lap-global" else scores, 0.7, entry.scope
        )
        for name in got:
            assert torch.equal(got[name], expected[name]), (mid, name)


def test_options_reach_the_method():
    x, y = batch()
    a, b = mlp(), mlp()
    got = make_pruner("grasp", temperature=3.0)(a, 0.5, (x, y))
    expected = mp.masks_from_scores(grasp_scores(b, x, y, 3.0), 0.5)
    assert all(torch.equal(got[n], expected[n]) for n in got)
    r1 = make_pruner("random", seed=1)(mlp(), 0.5, None)
    r2 = make_pruner("random", seed=2)(mlp(), 0.5, None)
    assert any(not torch.equal(r1[n], r2[n]) for n in r1)


def test_second_order_pruners_equal_oneshot_prune():
    x, y = batch()
    for mid in ("mp+u", "wf-s", "wf", "cbs"):
        a, b = mlp(), mlp()
        options = {"damp": 1e-2, **OPTIONS.get(mid, {})}
        got = make_pruner(mid, **options)(a, 0.5, (x, y))
        grads = obs.per_sample_grads(b, x, y)
        extra = {}
        if mid == "cbs":
            w = obs.flatten_weights(mp.prunable(b)).detach().double()
            extra = {
                "n_starts": 3,
                "loss_fn": obs.masked_loss(b, w, torch.utils.data.TensorDataset(x, y)),
            }
        expected = obs.oneshot_prune(b, get_method(mid).steps, 0.5, grads, 1e-2, **extra)
        for n in got:
            assert torch.equal(got[n], expected[n]), (mid, n)
            torch.testing.assert_close(mp.prunable(a)[n], mp.prunable(b)[n])


def test_select_and_update_compose_every_second_order_method():
    torch.manual_seed(0)
    w = torch.randn(30, dtype=torch.float64)
    g = torch.randn(12, 30, dtype=torch.float64)
    fisher = obs.DampedFisher(g, 1e-2)
    mp_keep = obs.select("magnitude", w, 0.5)
    assert torch.equal(mp_keep, keep_mask(w.abs(), 0.5))
    assert torch.equal(mp_keep, w.abs() >= w.abs().sort().values[15])
    wf_keep = obs.select("woodfisher", w, 0.5, fisher)
    assert torch.equal(wf_keep, keep_mask(obs.single_weight_saliency(w, fisher), 0.5))
    assert torch.equal(obs.update(None, w, fisher, wf_keep), w)
    torch.testing.assert_close(
        obs.update("single", w, fisher, wf_keep), w + obs.woodfisher_update(w, fisher, ~wf_keep)
    )
    moved = obs.update("set", w, fisher, mp_keep)
    torch.testing.assert_close(moved[~mp_keep], torch.zeros_like(w[~mp_keep]), atol=1e-10, rtol=0)
    for m in METHODS.values():  # the table's steps are pairs select and update know
        if m.steps is not None:
            assert m.steps[0] in obs.SELECTIONS and m.steps[1] in obs.UPDATES, m.id
    assert not hasattr(obs, "STEPS") and not hasattr(obs, "METHODS")  # the table dispatches
    with pytest.raises(ValueError, match="needs hinv"):
        obs.select("woodfisher", w, 0.5)
    with pytest.raises(ValueError, match="unknown selection"):
        obs.select("obd", w, 0.5)
    with pytest.raises(ValueError, match="unknown update"):
        obs.update("double", w, fisher, mp_keep)


def test_neuron_masks_remove_whole_units():
    net = mlp()
    masks = neuron_masks(net, 0.5)
    names = list(masks)
    for i in range(len(names) - 1):
        rows_gone = ~masks[names[i]].any(1)
        # a unit whose incoming row is gone has its outgoing column gone, and vice versa
        assert torch.equal(rows_gone, ~masks[names[i + 1]].any(0))
    kept = sum(int(m.sum()) for m in masks.values())
    assert kept <= round(0.5 * sum(m.numel() for m in masks.values()))


def test_channel_masks_mask_whole_channels_lowest_saliency_first():
    net = small_wrn()
    sal = l1_saliency(net)
    masks = channel_weight_masks(net, 0.3, sal)
    removed_total = 0
    chains = mp.structured.prunable_channels(net)
    lowest_kept, highest_removed = float("inf"), -float("inf")
    for chain, s in zip(chains, sal.values(), strict=True):
        rows = masks[f"{chain.conv1}.weight"].flatten(1).all(1)
        cols = masks[f"{chain.conv2}.weight"].transpose(0, 1).flatten(1).all(1)
        assert torch.equal(rows, cols)  # a channel goes with its filter and its column
        assert not (~masks[f"{chain.conv1}.weight"].flatten(1)).any(1)[rows].any()
        assert rows.any()  # every chain keeps a channel
        removed_total += int((~rows).sum())
        if rows.sum() > 1:
            lowest_kept = min(lowest_kept, float(s[rows].min()))
        if (~rows).any():
            highest_removed = max(highest_removed, float(s[~rows].max()))
    assert removed_total > 0
    assert highest_removed <= lowest_kept  # one global ranking
    d = sum(m.numel() for m in masks.values())
    assert sum(int((~m).sum()) for m in masks.values()) >= round(0.3 * d)


def test_channel_masks_remove_the_channels_function():
    """Masking a channel's filter and column equals closing its gate."""
    net = small_wrn(1)
    x = torch.randn(6, 1, 12)
    a = copy.deepcopy(net)
    masks = make_pruner("channels-l1")(a, 0.2, None)
    b = mp.structured.add_gates(copy.deepcopy(net))
    gates = mp.structured.channel_masks(b)
    for chain, key in zip(mp.structured.prunable_channels(net), gates, strict=True):
        gates[key] = masks[f"{chain.conv1}.weight"].flatten(1).all(1)
    mp.structured.set_channel_masks(b, gates)
    torch.testing.assert_close(a(x), b(x))


def test_fisher_channel_pruner_needs_a_batch_and_uses_its_saliency():
    net = small_wrn(2)
    x, y = torch.randn(8, 1, 12), torch.randint(0, 5, (8,))
    with pytest.raises(ValueError, match="labelled batch"):
        make_pruner("channels-fisher")(copy.deepcopy(net), 0.2, None)
    got = make_pruner("channels-fisher")(copy.deepcopy(net), 0.2, (x, y))
    sal = fisher_saliency(mp.structured.add_gates(copy.deepcopy(net)), x, y)
    assert all(torch.equal(got[n], m) for n, m in channel_weight_masks(net, 0.2, sal).items())


def test_bad_input_gets_a_clear_error():
    with pytest.raises(ValueError, match="unknown method 'obd'"):
        get_method("obd")
    with pytest.raises(ValueError, match="takes no option"):
        make_pruner("snip", temperature=2.0)
    for mid in ("snip", "grasp", "wf", "cbs"):
        with pytest.raises(ValueError, match="labelled batch"):
            make_pruner(mid)(mlp(), 0.5, None)
    with pytest.raises(ValueError, match="inputs"):
        make_pruner("lap-act")(mlp(), 0.5, None)
    with pytest.raises(ValueError, match="saliency must name exactly"):
        channel_weight_masks(small_wrn(), 0.2, {"nope": torch.ones(3)})
    with pytest.raises(ValueError, match="sparsity"):
        neuron_masks(mlp(), 1.0)
