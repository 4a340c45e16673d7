"""Chapter 7's layer-wise methods checked on layers small enough to solve exactly: OBC is the
least-squares optimum for its mask, SparseGPT's fixed column order costs something against
that optimum (never less), lazy blocks change nothing, Wanda is the square root of OBD's
diagonal saliency, N:M masks keep N of every M, brute force bounds every selection, and the
pruners of the method table prune each layer to the sparsity and pattern asked for."""

import copy
import itertools

import pytest
import torch
from conftest import seeded_sequential
from torch import nn

import minipruner as mp
from minipruner.methods import get_method, make_pruner, table
from minipruner.methods.layerwise import (
    LayerRule,
    calibration_blocks,
    calibration_hessians,
    calibration_norms,
    damped,
    group_mask,
    layer_error,
    layerwise_prune,
    magnitude_rule,
    nm_mask,
    obc_prune,
    optimal_reconstruction,
    parse_pattern,
    pattern_mask,
    sparsegpt_prune,
    sparsegpt_rule,
    wanda_rule,
    wanda_scores,
)


def layer(rows: int = 4, d: int = 8, tokens: int = 40, seed: int = 0):
    """A random layer ``W`` (rows x d) and ``H = 2 X X^T`` of ``X`` (d x tokens), full rank;
    inputs of unequal scales, as real activations have."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(d, tokens, generator=g, dtype=torch.float64)
    x *= torch.rand(d, 1, generator=g, dtype=torch.float64) * 2 + 0.2
    x[1] += 0.5 * x[0]  # correlated inputs: the updates matter
    w = torch.randn(rows, d, generator=g, dtype=torch.float64)
    return w, 2 * x @ x.T


def mlp(seed: int = 0) -> nn.Module:
    return seeded_sequential([16, 8, 8, 4], seed, flatten=True)


def inputs(n: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 16, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------- OBC


@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
def test_obc_rows_are_the_least_squares_optimum_for_their_masks(pattern):
    w, h = layer()
    out = obc_prune(w, h, 0.5, pattern, damp=0.0)
    assert (out.weight[~out.keep] == 0).all()
    assert (out.keep.sum(1) == 4).all()  # every row keeps half
    torch.testing.assert_close(out.weight, optimal_reconstruction(w, h, out.keep))
    # the losses it predicts add up to the error measured on the outputs
    torch.testing.assert_close(out.loss.sum().item(), layer_error(w, out.weight, h))


def test_optimal_reconstruction_solves_the_normal_equations_on_the_kept_columns():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 30, generator=g, dtype=torch.float64)
    w = torch.randn(1, 6, generator=g, dtype=torch.float64)
    keep = torch.tensor([[True, False, True, True, False, True]])
    kept = keep[0]
    # least squares: w_F X_F ~ w X
    sol = torch.linalg.lstsq(x[kept].T, (w @ x).T).solution.T
    got = optimal_reconstruction(w, 2 * x @ x.T, keep)
    torch.testing.assert_close(got[:, kept], sol)
    assert (got[:, ~kept] == 0).all()


# ------------------------------------------------------------------------- SparseGPT


def test_sparsegpt_lazy_blocks_give_the_column_by_column_result():
    w, h = layer(d=16)
    keep = torch.rand(4, 16, generator=torch.Generator().manual_seed(2)) > 0.5
    ref = sparsegpt_prune(w, h, 0.5, blocksize=1, damp=0.01, keep=keep)
    for b in (3, 4, 16, 128):
        out = sparsegpt_prune(w, h, 0.5, blocksize=b, damp=0.01, keep=keep)
        torch.testing.assert_close(out.weight, ref.weight, rtol=1e-10, atol=1e-10)
        assert torch.equal(out.keep, keep)


def test_sparsegpt_fixed_mask_against_the_optimum():
    w, h = layer(d=8, seed=3)
    keep = torch.rand(4, 8, generator=torch.Generator().manual_seed(3)) > 0.5
    out = sparsegpt_prune(w, h, 0.5, damp=0.0, keep=keep)
    optimum = layer_error(w, optimal_reconstruction(w, h, keep), h)
    got = layer_error(w, out.weight, h)
    # the fixed column order freezes every kept weight left of a pruned one: never better
    # than the optimum for the mask, and on this case strictly worse
    assert got >= optimum * (1 - 1e-12)
    assert got > optimum * (1 + 1e-6)
    torch.testing.assert_close(out.loss.sum().item(), got)
    for seed in range(10):  # never below the optimum (50 random 4 x 8 cases: 1.001 to 1.29 x)
        w2, h2 = layer(d=8, seed=seed)
        k2 = torch.rand(4, 8, generator=torch.Generator().manual_seed(seed)) > 0.5
        ours = layer_error(w2, sparsegpt_prune(w2, h2, 0.5, damp=0.0, keep=k2).weight, h2)
        assert ours >= layer_error(w2, optimal_reconstruction(w2, h2, k2), h2) * (1 - 1e-12)
    # ... and exact when every pruned column comes before every kept one
    first = torch.zeros(4, 8, dtype=torch.bool)
    first[:, 4:] = True
    out = sparsegpt_prune(w, h, 0.5, damp=0.0, keep=first)
    torch.testing.assert_close(out.weight, optimal_reconstruction(w, h, first))


@pytest.mark.parametrize("pattern", ["unstructured", "2:4", "1:4"])
def test_sparsegpt_selects_the_sparsity_asked_for_and_predicts_its_error(pattern):
    w, h = layer(rows=6, d=16, seed=4)
    sparsity = 0.5 if pattern != "1:4" else 0.75
    out = sparsegpt_prune(w, h, sparsity, pattern, blocksize=8)
    assert int((~out.keep).sum()) == round(sparsity * w.numel())
    assert (out.weight[~out.keep] == 0).all()
    if pattern != "unstructured":
        n, m = parse_pattern(pattern)
        assert (out.keep.reshape(6, -1, m).sum(-1) == n).all()
    # its summed dE is the error measured with the damped Hessian it used
    torch.testing.assert_close(out.loss.sum().item(), layer_error(w, out.weight, damped(h, 0.01)))


def test_selection_against_brute_force_on_a_tiny_layer():
    """1 row x 6 columns at 50 %: brute force over all 20 masks, each with its optimal
    weights, gives the least layer-wise error any method can reach."""
    for seed in range(5):
        w, h = layer(rows=1, d=6, tokens=20, seed=seed)
        masks = []
        for removed in itertools.combinations(range(6), 3):
            keep = torch.ones(1, 6, dtype=torch.bool)
            keep[0, list(removed)] = False
            masks.append(keep)
        errors = [layer_error(w, optimal_reconstruction(w, h, k), h) for k in masks]
        best = min(errors)
        obc = obc_prune(w, h, 0.5, damp=0.0)
        sgpt = sparsegpt_prune(w, h, 0.5, damp=0.0)
        norms = h.diagonal() / 2
        for keep, new in [
            (obc.keep, obc.weight),
            (sgpt.keep, sgpt.weight),
            (group_mask(wanda_scores(w, norms), 0.5), None),
            (group_mask(w.abs(), 0.5), None),
        ]:
            new = w * keep if new is None else new
            assert layer_error(w, new, h) >= best * (1 - 1e-12)
        # OBC's weights are optimal for its mask; SparseGPT's for its mask or worse
        torch.testing.assert_close(layer_error(w, obc.weight, h), errors[masks_index(masks, obc)])
        assert layer_error(w, sgpt.weight, h) >= errors[masks_index(masks, sgpt)] * (1 - 1e-12)
        # removing one weight, OBC's greedy step is the brute-force optimum
        one = obc_prune(w, h, 1 / 6, damp=0.0)
        singles = []
        for q in range(6):
            keep = torch.ones(1, 6, dtype=torch.bool)
            keep[0, q] = False
            singles.append(layer_error(w, optimal_reconstruction(w, h, keep), h))
        torch.testing.assert_close(layer_error(w, one.weight, h), min(singles))


def masks_index(masks, out) -> int:
    return next(i for i, k in enumerate(masks) if torch.equal(k, out.keep))


# ---------------------------------------------------------------------------- Wanda


def test_wanda_score_is_the_square_root_of_obds_diagonal_saliency():
    net = mlp()
    x = inputs()
    recorded = {}
    net[3].register_forward_hook(lambda m, i, o: recorded.setdefault("x", i[0].detach()))
    net(x)
    xt = recorded["x"].double().T  # X: in x tokens
    norms = calibration_norms(net, x)["3.weight"]
    torch.testing.assert_close(norms, (xt @ xt.T).diagonal())
    h = calibration_hessians(net, x)["3.weight"]
    torch.testing.assert_close(h, 2 * xt @ xt.T)
    w = net[3].weight.detach().double()
    score = wanda_scores(w, norms)
    torch.testing.assert_close(score, torch.sqrt(w**2 * (xt @ xt.T).diagonal()))
    torch.testing.assert_close(score, torch.sqrt(0.5 * w**2 * h.diagonal()))  # OBD: w^2 H_jj / 2
    # chunked calibration accumulates the same sums
    torch.testing.assert_close(calibration_hessians(net, x, chunk=7)["3.weight"], h)


# ------------------------------------------------------------------------------ N:M


@pytest.mark.parametrize(("n", "m"), [(2, 4), (4, 8), (1, 4), (3, 3)])
def test_nm_masks_keep_exactly_n_of_every_m_the_largest(n, m):
    scores = torch.randn(5, 24, generator=torch.Generator().manual_seed(n * m))
    keep = nm_mask(scores, n, m)
    groups, kept = scores.reshape(5, -1, m), keep.reshape(5, -1, m)
    assert (kept.sum(-1) == n).all()
    if n < m:
        lowest_kept = groups.masked_fill(~kept, float("inf")).min(-1).values
        highest_removed = groups.masked_fill(kept, -float("inf")).max(-1).values
        assert (lowest_kept >= highest_removed).all()
    # ties: the lower index is removed first
    assert nm_mask(torch.ones(1, 4), 2, 4).tolist() == [[False, False, True, True]]


def test_group_masks_per_row_and_per_layer():
    scores = torch.tensor([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]])
    assert group_mask(scores, 0.5, "row").sum(1).tolist() == [2, 2]
    assert group_mask(scores, 0.5, "layer")[0].tolist() == [False] * 4


# ---------------------------------------------------------------- the pruners of the table


@pytest.mark.parametrize("mid", ["magnitude-pattern", "wanda", "sparsegpt", "obc"])
@pytest.mark.parametrize(("pattern", "sparsity"), [("unstructured", 0.5), ("unstructured", 0.7)])
def test_pruners_reach_the_sparsity_of_each_layer(mid, pattern, sparsity):
    net = mlp()
    before = copy.deepcopy(net)
    masks = make_pruner(mid, pattern=pattern)(net, sparsity, (inputs(), None))
    weights = mp.prunable(net)
    assert set(masks) == set(weights)
    rows = mid in ("wanda", "obc")  # each output row loses round(sparsity * in)
    for name, keep in masks.items():
        if rows:
            assert (~keep).sum(1).tolist() == [round(sparsity * keep.shape[1])] * len(keep)
        else:
            assert int((~keep).sum()) == round(sparsity * keep.numel()), name
        assert (weights[name][~keep] == 0).all()
    kept_moved = any(
        not torch.equal(weights[n][masks[n]], mp.prunable(before)[n][masks[n]]) for n in masks
    )
    assert kept_moved == (mid in ("sparsegpt", "obc"))  # only these update the kept weights


@pytest.mark.parametrize("mid", ["magnitude-pattern", "wanda", "sparsegpt", "obc"])
@pytest.mark.parametrize("pattern", ["2:4", "4:8"])
def test_pruners_follow_the_nm_pattern(mid, pattern):
    n, m = parse_pattern(pattern)
    net = mlp(1)
    masks = make_pruner(mid, pattern=pattern)(net, 1 - n / m, (inputs(), None))
    for name, keep in masks.items():
        assert (keep.reshape(keep.shape[0], -1, m).sum(-1) == n).all(), name
        assert (mp.prunable(net)[name][~keep] == 0).all()


def test_sparsegpt_pruner_calibrates_each_layer_on_the_already_pruned_model():
    x = inputs()
    net, ref = mlp(2), mlp(2)
    masks = make_pruner("sparsegpt", blocksize=4)(net, 0.5, (x, None))
    for name, module in mp.prunable_modules(ref).items():  # the same, by hand
        h = calibration_hessians(ref, x, [name])[name]
        out = sparsegpt_prune(module.weight, h, 0.5, blocksize=4)
        with torch.no_grad():
            module.weight.copy_(out.weight)
        mp.apply_masks(ref, {name: out.keep})
        assert torch.equal(out.keep, masks[name])
    torch.testing.assert_close(net(x), ref(x))


def test_magnitude_pattern_unstructured_is_magnitude_layer_and_wanda_groups():
    x = inputs()
    a = make_pruner("magnitude-pattern")(mlp(), 0.6, None)
    b = make_pruner("magnitude-layer")(mlp(), 0.6, None)
    assert all(torch.equal(a[n], b[n]) for n in a)
    rows = make_pruner("wanda")(mlp(), 0.5, (x, None))
    per_layer = make_pruner("wanda", groups="layer")(mlp(), 0.5, (x, None))
    direct = layerwise_prune(mlp(), wanda_rule(groups="layer"), 0.5, x)  # the table's pruner
    assert direct.keys() == per_layer.keys()
    assert all(torch.equal(direct[n], per_layer[n]) for n in direct)
    assert all((rows[n].sum(1) == rows[n].shape[1] // 2).all() for n in rows)
    assert any(not torch.equal(rows[n], per_layer[n]) for n in rows)
    for name, keep in per_layer.items():  # one threshold per layer on |W| ||X_j||
        net = mlp()
        for prev in list(per_layer)[: list(per_layer).index(name)]:
            mp.apply_masks(net, {prev: per_layer[prev]})
        s = wanda_scores(mp.prunable(net)[name], calibration_norms(net, x, [name])[name])
        assert torch.equal(keep, group_mask(s, 0.5, "layer"))


def test_blocks_group_layers_in_forward_order():
    net = mlp()
    assert calibration_blocks(net) == [["1.weight"], ["3.weight"], ["5.weight"]]
    assert calibration_blocks(net, "model") == [["1.weight", "3.weight", "5.weight"]]
    assert calibration_blocks(net, 1) == calibration_blocks(net)
    masks = make_pruner("wanda", blocks="model")(mlp(), 0.5, (inputs(), None))
    dense = mlp()
    norms = calibration_norms(dense, inputs())
    for name, keep in masks.items():  # every layer calibrated on the dense model
        s = wanda_scores(mp.prunable(dense)[name], norms[name])
        assert torch.equal(keep, group_mask(s, 0.5, "row"))


def random_rule(pattern: str = "unstructured", seed: int = 0, given=None) -> LayerRule:
    """A layer-wise method written outside layerwise.py: random scores per layer (one
    generator, drawn layer after layer), kept per output row or N:M; it appends the
    statistics it is given to the list ``given``."""
    parse_pattern(pattern)
    g = torch.Generator().manual_seed(seed)

    def prune(w, stats, sparsity):
        if given is not None:
            given.append(stats)
        return None, pattern_mask(torch.rand(w.shape, generator=g), sparsity, pattern, "row")

    return LayerRule("random", "norms", prune, pattern)


def test_a_new_rule_plugs_into_layerwise_prune_and_the_table():
    x = inputs()
    given = []
    net = mlp()
    masks = layerwise_prune(net, random_rule("2:4", seed=3, given=given), 0.5, x)
    g = torch.Generator().manual_seed(3)
    for name, keep in masks.items():  # the masks the rule draws, in forward order
        assert torch.equal(keep, nm_mask(torch.rand(keep.shape, generator=g), 2, 4)), name
        assert (mp.prunable(net)[name][~keep] == 0).all()
    # each layer is given its inputs' squared norms, on the model pruned so far
    ref = mlp()
    for name, stats in zip(masks, given, strict=True):
        torch.testing.assert_close(stats, calibration_norms(ref, x, [name])[name])
        mp.apply_masks(ref, {name: masks[name]})
    # the same checks as every other rule: the pattern's sparsity, calibration inputs
    with pytest.raises(ValueError, match="fixes the sparsity"):
        layerwise_prune(mlp(), random_rule("2:4"), 0.3, x)
    with pytest.raises(ValueError, match="random needs calibration inputs"):
        layerwise_prune(mlp(), random_rule(), 0.5, None)
    # one Method(...) entry makes it a method of the table: a pruner like the others
    entry = table.Method(
        "random-layerwise",
        "random (layer-wise)",
        7,
        "inputs",
        "layer",
        table._layerwise(random_rule),
        options=("pattern", "seed", "blocks"),
        colour="black",
    )
    assert table._entries([*table._ENTRIES, entry])[-1] is entry
    # (random masks do not depend on the calibration order: "model" gives the same)
    got = entry.pruner(pattern="2:4", seed=3, blocks="model")(mlp(), 0.5, (x, None))
    assert got.keys() == masks.keys() and all(torch.equal(got[n], masks[n]) for n in got)
    with pytest.raises(ValueError, match="takes no option"):
        entry.pruner(damp=0.1)


def test_entries_of_the_table():
    for mid in ("wanda", "sparsegpt", "obc", "magnitude-pattern"):
        m = get_method(mid)
        assert m.chapter == 7 and m.scope == "layer"
    assert get_method("wanda").needs == "inputs"


# ---------------------------------------------------------------------------- bad input


def test_bad_input_gets_a_clear_error():
    x = (inputs(), None)
    for bad in ("2-4", "0:4", "5:4", "a:b", "structured"):
        with pytest.raises(ValueError, match="pattern|N:M"):
            make_pruner("wanda", pattern=bad)
    for s in (1.5, -0.1, "half"):
        with pytest.raises(ValueError, match="sparsity"):
            make_pruner("sparsegpt")(mlp(), s, x)
    with pytest.raises(ValueError, match="fixes the sparsity"):
        make_pruner("wanda", pattern="2:4")(mlp(), 0.3, x)
    with pytest.raises(ValueError, match="multiple of m=8"):
        nm_mask(torch.ones(3, 12), 4, 8)
    with pytest.raises(ValueError, match="multiple of m=8"):
        make_pruner("sparsegpt", pattern="4:8")(nn.Linear(12, 3), 0.5, (torch.ones(2, 12), None))
    with pytest.raises(ValueError, match="multiple of m=4"):
        sparsegpt_prune(*layer(d=8), 0.5, "2:4", blocksize=6)
    with pytest.raises(ValueError, match="no Linear"):
        make_pruner("wanda")(nn.Sequential(nn.ReLU()), 0.5, x)
    with pytest.raises(ValueError, match="nn.Linear layers only"):
        make_pruner("wanda")(nn.Sequential(nn.Conv1d(1, 2, 3)), 0.5, x)
    for mid in ("wanda", "sparsegpt", "obc"):
        with pytest.raises(ValueError, match="calibration inputs"):
            make_pruner(mid)(mlp(), 0.5, None)
    with pytest.raises(ValueError, match="takes no option"):
        make_pruner("sparsegpt", groups="row")
    with pytest.raises(ValueError, match="takes no option"):
        make_pruner("wanda", damp=0.1)
    with pytest.raises(TypeError, match="groups"):  # SparseGPT chooses its own groups
        sparsegpt_rule(groups="row")
    with pytest.raises(ValueError, match="LayerRule"):
        layerwise_prune(mlp(), "sparsegpt", 0.5, inputs())
    # options are checked when the rule (and so the pruner) is built, before any layer
    for options, match in [
        ({"damp": -0.1}, "damp must be"),
        ({"blocksize": 0}, "blocksize must be a positive integer"),
        ({"pattern": "2:4", "blocksize": 6}, "multiple of m=4"),
    ]:
        with pytest.raises(ValueError, match=match):
            make_pruner("sparsegpt", **options)
    with pytest.raises(ValueError, match="damp must be"):
        make_pruner("obc", damp="0.1")
    with pytest.raises(ValueError, match="unknown groups"):
        magnitude_rule(groups="column")
    with pytest.raises(ValueError, match="unknown needs"):
        LayerRule("x", "gradients", lambda w, s, r: (None, w != 0))
    with pytest.raises(ValueError, match="unknown groups"):
        make_pruner("wanda", groups="column")(mlp(), 0.5, x)
    with pytest.raises(ValueError, match="not positive definite"):
        obc_prune(*layer(d=8, tokens=3), 0.5, damp=0.0)
    with pytest.raises(ValueError, match="blocks"):
        calibration_blocks(mlp(), [["1.weight"], ["1.weight"]])
