"""Chapter 4 (minipruner.methods.obs): OBS updates against the constrained minimiser, every route
to the inverse Fisher against a dense inverse, per-sample gradients against autograd,
CBS-S never worse than its start, one-shot pruning, and bad inputs."""

import pytest
import torch
from conftest import seeded_mlp
from torch import nn

import minipruner as mp
from minipruner.methods import METHODS, get_method, obs

DT = torch.float64


def random_spd(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=DT)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=DT)


def random_grads(n: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # correlated columns, as real gradients have
    return torch.randn(n, d, generator=g, dtype=DT) @ torch.randn(d, d, generator=g, dtype=DT)


def random_mask(d: int, k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(d, dtype=torch.bool)
    mask[torch.randperm(d, generator=g)[:k]] = True
    return mask


def kkt_minimiser(h: torch.Tensor, w: torch.Tensor, pruned: torch.Tensor) -> torch.Tensor:
    """argmin 1/2 x^T H x subject to x_P = -w_P, by solving the KKT system."""
    d, idx = len(w), pruned.nonzero().squeeze(1)
    e = torch.eye(d, dtype=DT)[:, idx]
    kkt = torch.zeros(d + len(idx), d + len(idx), dtype=DT)
    kkt[:d, :d], kkt[:d, d:], kkt[d:, :d] = h, e, e.T
    rhs = torch.cat([torch.zeros(d, dtype=DT), -w[idx]])
    return torch.linalg.solve(kkt, rhs)[:d]


# --------------------------------------------------------------------------------------
# OBS updates
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3, 7, 11])
def test_multi_weight_update_is_the_constrained_minimiser(k):
    d = 12
    h = random_spd(d, seed=k)
    w = torch.randn(d, generator=torch.Generator().manual_seed(99 + k), dtype=DT)
    pruned = random_mask(d, k, seed=k)
    delta = obs.multi_weight_update(w, torch.linalg.inv(h), pruned)
    torch.testing.assert_close(delta, kkt_minimiser(h, w, pruned))
    assert torch.equal(delta[pruned], -w[pruned])
    # the predicted loss increase is 1/2 delta^T H delta
    saliency = obs.set_saliency(w, torch.linalg.inv(h), pruned)
    assert saliency == pytest.approx(0.5 * float(delta @ h @ delta), rel=1e-9)


@pytest.mark.parametrize("n", [5, 40])  # N < d (push-through) and N >= d (dense)
@pytest.mark.parametrize("k", [1, 6, 15])  # |K| > N, |K| < N
def test_operator_set_update_matches_kkt_without_dense_inverse(n, k):
    d = 18
    grads = random_grads(n, d, seed=n)
    fisher = obs.DampedFisher(grads, 0.05)
    assert fisher.pushthrough == (n < d)
    h = grads.T @ grads / n + 0.05 * torch.eye(d, dtype=DT)
    w = torch.randn(d, generator=torch.Generator().manual_seed(k), dtype=DT)
    pruned = random_mask(d, k, seed=k + n)
    expected = kkt_minimiser(h, w, pruned)
    torch.testing.assert_close(obs.multi_weight_update(w, fisher, pruned), expected)
    torch.testing.assert_close(obs.multi_weight_update(w, torch.linalg.inv(h), pruned), expected)
    assert obs.set_saliency(w, fisher, pruned) == pytest.approx(
        obs.set_saliency(w, torch.linalg.inv(h), pruned), rel=1e-8
    )


def test_block_set_update_matches_kkt_on_block_diagonal_hessian():
    d, blocks = 14, [(0, 5), (5, 6), (6, 14)]
    grads = random_grads(9, d, seed=3)
    fisher = obs.BlockDampedFisher(grads, 0.02, blocks)
    h = torch.block_diag(
        *[
            grads[:, a:b].T @ grads[:, a:b] / 9 + 0.02 * torch.eye(b - a, dtype=DT)
            for a, b in blocks
        ]
    )
    torch.testing.assert_close(fisher.matrix(), h)
    w = torch.randn(d, generator=torch.Generator().manual_seed(5), dtype=DT)
    pruned = random_mask(d, 6, seed=2)
    torch.testing.assert_close(
        obs.multi_weight_update(w, fisher, pruned), kkt_minimiser(h, w, pruned)
    )


def test_single_weight_update_is_the_one_weight_special_case():
    d = 10
    hinv = torch.linalg.inv(random_spd(d, seed=4))
    w = torch.randn(d, generator=torch.Generator().manual_seed(1), dtype=DT)
    saliency = obs.single_weight_saliency(w, hinv)
    for q in range(d):
        pruned = torch.zeros(d, dtype=torch.bool)
        pruned[q] = True
        single = obs.single_weight_update(w, hinv, q)
        torch.testing.assert_close(single, obs.multi_weight_update(w, hinv, pruned))
        torch.testing.assert_close(single, -w[q] * hinv[:, q] / hinv[q, q])
        assert float(saliency[q]) == pytest.approx(obs.set_saliency(w, hinv, pruned))
    torch.testing.assert_close(saliency, w**2 / (2 * hinv.diagonal()))


@pytest.mark.parametrize("n", [4, 30])
def test_woodfisher_update_is_sum_of_single_weight_updates(n):
    d = 16
    grads = random_grads(n, d, seed=7)
    fisher = obs.DampedFisher(grads, 0.1)
    hinv = fisher.inverse()
    w = torch.randn(d, generator=torch.Generator().manual_seed(2), dtype=DT)
    pruned = random_mask(d, 5, seed=8)
    expected = sum(obs.single_weight_update(w, hinv, int(q)) for q in pruned.nonzero())
    torch.testing.assert_close(obs.woodfisher_update(w, hinv, pruned), expected)
    torch.testing.assert_close(obs.woodfisher_update(w, fisher, pruned), expected)
    blocks = obs.BlockDampedFisher(grads, 0.1, [(0, d)])
    torch.testing.assert_close(obs.woodfisher_update(w, blocks, pruned), expected)
    torch.testing.assert_close(obs.single_weight_saliency(w, fisher), w**2 / (2 * hinv.diagonal()))


# --------------------------------------------------------------------------------------
# Inverse Fisher: routes, blocks, cheap quantities
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [6, 25, 60])  # N < d, N = d, N > d
@pytest.mark.parametrize("route", ["woodbury", "direct", "auto"])
def test_fisher_inverse_routes_match_dense_inverse(n, route):
    d, damp = 25, 0.03
    grads = random_grads(n, d, seed=n)
    dense = torch.linalg.inv(grads.T @ grads / n + damp * torch.eye(d, dtype=DT))
    torch.testing.assert_close(obs.fisher_inverse(grads, damp, route=route), dense)


def test_relative_damping_scales_with_mean_fisher_diagonal():
    grads = random_grads(8, 20, seed=1) * 1e-3
    mean_diag = float((grads.T @ grads / 8).diagonal().mean())
    assert obs.absolute_damp(grads, 0.1, relative=True) == pytest.approx(0.1 * mean_diag)
    assert obs.absolute_damp(grads, 0.1) == 0.1
    dense = torch.linalg.inv(grads.T @ grads / 8 + 0.1 * mean_diag * torch.eye(20, dtype=DT))
    for route in ("woodbury", "direct"):
        got = obs.fisher_inverse(grads, 0.1, route=route, relative=True)
        torch.testing.assert_close(got, dense, rtol=1e-7, atol=1e-6 * float(dense.abs().max()))
    assert obs.DampedFisher(grads, 0.1, relative=True).damp == pytest.approx(0.1 * mean_diag)


def test_fisher_inverse_in_float32_agrees_across_routes():
    grads = random_grads(10, 30, seed=2).float()
    a = obs.fisher_inverse(grads, 0.5, route="woodbury")
    b = obs.fisher_inverse(grads, 0.5, route="direct")
    assert a.dtype == b.dtype == torch.float32
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    c = obs.fisher_inverse(grads, 0.5, dtype=DT)
    assert c.dtype == DT


@pytest.mark.parametrize("n", [7, 50])
def test_block_fisher_inverse_matches_inverse_of_block_diagonal(n):
    like = {"a": torch.zeros(3, 4), "b": torch.zeros(9), "c": torch.zeros(2, 2)}
    blocks = obs.layer_blocks(like, chunk_size=5)
    assert blocks == [(0, 5), (5, 10), (10, 12), (12, 17), (17, 21), (21, 25)]
    assert obs.layer_blocks(like) == [(0, 12), (12, 21), (21, 25)]
    grads = random_grads(n, 25, seed=n)
    h = grads.T @ grads / n + 0.01 * torch.eye(25, dtype=DT)
    for bl in (blocks, obs.layer_blocks(like)):
        mask = torch.block_diag(*[torch.ones(b - a, b - a, dtype=DT) for a, b in bl])
        dense = torch.linalg.inv(h * mask)
        for route in ("woodbury", "direct"):
            parts = obs.block_fisher_inverse(grads, 0.01, bl, route=route)
            assert [p.shape[0] for p in parts] == [b - a for a, b in bl]
            torch.testing.assert_close(torch.block_diag(*parts), dense)
        fisher = obs.BlockDampedFisher(grads, 0.01, bl)
        torch.testing.assert_close(fisher.inverse(), dense)
        torch.testing.assert_close(fisher.diag_inverse(), dense.diagonal())
        v = torch.randn(25, 3, generator=torch.Generator().manual_seed(0), dtype=DT)
        torch.testing.assert_close(fisher.solve(v), dense @ v)
        torch.testing.assert_close(fisher.inverse_columns([4, 11]), dense[:, [4, 11]])


@pytest.mark.parametrize("n", [9, 40])
def test_damped_fisher_cheap_quantities_match_dense(n):
    d = 30
    grads = random_grads(n, d, seed=11)
    fisher = obs.DampedFisher(grads, 0.02)
    dense = torch.linalg.inv(grads.T @ grads / n + 0.02 * torch.eye(d, dtype=DT))
    torch.testing.assert_close(fisher.diag_inverse(), dense.diagonal())
    idx = torch.tensor([3, 0, 17])
    torch.testing.assert_close(fisher.diag_inverse(idx), dense.diagonal()[idx])
    v = torch.randn(d, generator=torch.Generator().manual_seed(1), dtype=DT)
    torch.testing.assert_close(fisher.solve(v), dense @ v)
    torch.testing.assert_close(
        fisher.solve(torch.stack([v, 2 * v], 1)), dense @ torch.stack([v, 2 * v], 1)
    )
    torch.testing.assert_close(fisher.inverse_columns(idx), dense[:, idx])
    torch.testing.assert_close(fisher.inverse(), dense)


# --------------------------------------------------------------------------------------
# Gradients and flat vectors
# --------------------------------------------------------------------------------------


def tiny_mlp(seed: int = 0) -> nn.Module:
    return seeded_mlp([12, 6, 5, 3], seed)


def loop_grads(model, x, y, names, batch_size=1):
    weights = mp.prunable(model)
    rows = []
    for i in range(0, len(x), batch_size):
        loss = nn.functional.cross_entropy(model(x[i : i + batch_size]), y[i : i + batch_size])
        gs = torch.autograd.grad(loss, [weights[n] for n in names])
        rows.append(torch.cat([g.reshape(-1) for g in gs]))
    return torch.stack(rows)


def test_per_sample_grads_match_autograd_loop():
    model = tiny_mlp()
    x = torch.randn(10, 12, generator=torch.Generator().manual_seed(0))
    y = torch.arange(10) % 3
    names = list(mp.prunable(model))
    g = obs.per_sample_grads(model, x, y, chunk_size=4)
    assert g.shape == (10, 12 * 6 + 6 * 5 + 5 * 3)
    torch.testing.assert_close(g, loop_grads(model, x, y, names), rtol=1e-5, atol=1e-6)
    one = obs.per_sample_grads(model, x, y, names=["fc2.weight"])
    torch.testing.assert_close(one, g[:, 72:102])
    batched = obs.per_sample_grads(model, x, y, batch_size=5)
    torch.testing.assert_close(batched, loop_grads(model, x, y, names, 5), rtol=1e-5, atol=1e-6)


def test_per_sample_grads_on_a_masked_model():
    model = tiny_mlp(1)
    masks = mp.masks_from_scores(mp.magnitude_scores(model), 0.5)
    mp.apply_masks(model, masks)
    x = torch.randn(6, 12, generator=torch.Generator().manual_seed(2))
    y = torch.arange(6) % 3
    before = model(x).detach()
    g = obs.per_sample_grads(model, x, y)
    keep = obs.flatten_weights(masks)
    assert bool((g[:, ~keep] == 0).all())
    # gradient w.r.t. the effective weight, restricted to the kept entries
    model2 = tiny_mlp(1)
    with torch.no_grad():
        for n, m in mp.prunable_modules(model2).items():
            m.weight.mul_(masks[n])
    dense = obs.per_sample_grads(model2, x, y)
    torch.testing.assert_close(g[:, keep], dense[:, keep], rtol=1e-5, atol=1e-6)
    assert not isinstance(model.fc1.weight, nn.Parameter)
    torch.testing.assert_close(model(x), before)
    torch.testing.assert_close(model.fc1.weight, model.fc1.weight_orig * model.fc1.weight_mask)


def test_flatten_unflatten_roundtrip():
    model = tiny_mlp()
    weights = mp.prunable(model)
    vec = obs.flatten_weights(weights)
    assert vec.shape == (117,)
    back = obs.unflatten_weights(vec, weights)
    assert list(back) == list(weights)
    for n in weights:
        assert torch.equal(back[n], weights[n])
    with pytest.raises(ValueError):
        obs.unflatten_weights(vec[:-1], weights)


# --------------------------------------------------------------------------------------
# CBS-S
# --------------------------------------------------------------------------------------


def magnitude_objective(w, grads, n_prune):
    keep = torch.ones(len(w), dtype=torch.bool)
    keep[torch.sort(w.abs(), stable=True).indices[:n_prune]] = False
    return obs.cbs_objective(w, grads, keep)


@pytest.mark.parametrize("seed", range(6))
def test_cbs_select_window_never_worse_than_its_start(seed):
    n, d = 20, 60
    grads = random_grads(n, d, seed=seed)
    w = torch.randn(d, generator=torch.Generator().manual_seed(100 + seed), dtype=DT)
    n_prune = 10 + 7 * seed
    res = obs.cbs_select_window(w, grads, n_prune, seed=seed, return_history=True)
    keep = res.keep
    assert keep.dtype == torch.bool and int((~keep).sum()) == n_prune
    assert res.objective == pytest.approx(obs.cbs_objective(w, grads, keep))
    assert res.objective <= res.start_objective * (1 + 1e-9)
    assert res.start_objective <= res.magnitude_objective
    assert res.magnitude_objective == pytest.approx(magnitude_objective(w, grads, n_prune))
    assert all(
        b <= a * (1 + 1e-9) for a, b in zip(res.objectives, res.objectives[1:], strict=False)
    )
    for t in (0, len(res.objectives) // 2, len(res.objectives) - 1):
        assert obs.cbs_objective(w, grads, res.keep_at(t)) == pytest.approx(
            res.objectives[t], rel=1e-6, abs=1e-12
        )
    plain = obs.cbs_select_window(w, grads, n_prune, seed=seed)
    assert torch.equal(plain, keep)


def test_cbs_select_window_finds_weights_that_cancel():
    # Columns q and r of G are equal and w_q = -w_r: pruning both costs nothing. The
    # smallest weights have large gradients, so magnitude pruning pays a lot.
    gen = torch.Generator().manual_seed(0)
    n, d = 30, 12
    grads = torch.randn(n, d, generator=gen, dtype=DT)
    grads[:, 1] = grads[:, 0]
    grads[:, 2:4] *= 10
    w = torch.tensor([1.0, -1.0, 0.5, -0.5] + [3.0 + i for i in range(d - 4)], dtype=DT)
    res = obs.cbs_select_window(w, grads, 2, n_random_starts=1, return_history=True)
    assert res.magnitude_objective > 10
    assert res.objective < 1e-12 < res.magnitude_objective
    assert res.keep.tolist() == [False, False] + [True] * (d - 2)
    assert len(res.swaps) == 2


def test_cbs_select_window_picks_iterate_by_loss():
    grads = random_grads(15, 40, seed=0)
    w = torch.randn(40, generator=torch.Generator().manual_seed(3), dtype=DT)
    res = obs.cbs_select_window(w, grads, 20, n_random_starts=1, return_history=True)
    assert len(res.objectives) > 3
    target = res.keep_at(1)
    calls = []

    def loss_fn(keep):
        calls.append(keep.clone())
        return float((keep != target).sum())

    picked = obs.cbs_select_window(
        w, grads, 20, n_random_starts=1, loss_fn=loss_fn, loss_every=1, return_history=True
    )
    assert picked.chosen == 1 and torch.equal(picked.keep, target)
    assert len(calls) == len(res.objectives)
    assert picked.objective == pytest.approx(res.objectives[1], rel=1e-6)


def test_cbs_select_window_edge_counts_and_dense_gram_path():
    grads = random_grads(50, 10, seed=0)  # d <= N: F is formed
    w = torch.randn(10, generator=torch.Generator().manual_seed(0), dtype=DT)
    assert bool(obs.cbs_select_window(w, grads, 0).all())
    assert not bool(obs.cbs_select_window(w, grads, 10).any())
    res = obs.cbs_select_window(w, grads, 4, return_history=True)
    assert res.objective <= res.magnitude_objective * (1 + 1e-9)
    assert int((~res.keep).sum()) == 4


# --------------------------------------------------------------------------------------
# One-shot pruning
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data():
    x = torch.randn(40, 12, generator=torch.Generator().manual_seed(5))
    return x, torch.arange(40) % 3


SECOND_ORDER = [m.id for m in METHODS.values() if m.steps is not None]
"""Chapter 4's methods: the table's entries that carry (selection, update) steps."""


@pytest.mark.parametrize("method", SECOND_ORDER)
def test_oneshot_prune_exact_count_and_zeros(method, data):
    x, y = data
    model = tiny_mlp(2)
    grads = obs.per_sample_grads(model, x, y)
    w0 = obs.flatten_weights(mp.prunable(model)).double()
    steps = get_method(method).steps
    masks = obs.oneshot_prune(model, steps, 0.6, grads, damp=1e-2, relative=True)
    keep = obs.flatten_weights(masks)
    assert keep.dtype == torch.bool
    assert int((~keep).sum()) == round(0.6 * 117)
    w1 = obs.flatten_weights(mp.prunable(model)).double()
    assert bool((w1[~keep] == 0).all())
    if steps[1] is None:  # no update: magnitude-global, wf-s, cbs-s
        torch.testing.assert_close(w1[keep], w0[keep], check_dtype=False)
    else:
        assert not torch.allclose(w1[keep], w0[keep])
    if method == "cbs":
        fisher = obs.DampedFisher(grads.double(), 1e-2, relative=True)
        expected = w0 + obs.multi_weight_update(w0, fisher, ~keep)
        torch.testing.assert_close(w1, expected.float().double())


def test_oneshot_mp_equals_magnitude_pruning():
    a, b = tiny_mlp(3), tiny_mlp(3)
    masks = obs.oneshot_prune(a, get_method("magnitude-global").steps, 0.7)
    expected = mp.magnitude_prune(b, 0.7)
    for n in masks:
        assert torch.equal(masks[n], expected[n])


def test_oneshot_cbs_uses_block_operator_and_beats_mp_objective(data):
    x, y = data
    model = tiny_mlp(4)
    grads = obs.per_sample_grads(model, x, y).double()
    w = obs.flatten_weights(mp.prunable(model)).double()
    masks = obs.oneshot_prune(
        model, ("cbs", "set"), 0.5, grads, 1e-3, blocks=obs.layer_blocks(model), rho=5, tau=5
    )
    keep = obs.flatten_weights(masks)
    assert obs.cbs_objective(w, grads, keep) <= magnitude_objective(w, grads, 58) * (1 + 1e-9)


# --------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------


def test_bad_inputs_raise_value_error():
    grads = random_grads(5, 8)
    w = torch.randn(8, dtype=DT)
    pruned = random_mask(8, 3, seed=0)
    for damp in (0.0, -1.0, float("nan"), float("inf"), True, "1"):
        with pytest.raises(ValueError, match="damp"):
            obs.fisher_inverse(grads, damp)
        with pytest.raises(ValueError, match="damp"):
            obs.DampedFisher(grads, damp)
    with pytest.raises(ValueError, match="N x d"):
        obs.fisher_inverse(grads[0], 0.1)
    with pytest.raises(ValueError, match="NaN"):
        obs.fisher_inverse(grads * float("nan"), 0.1)
    with pytest.raises(ValueError, match="route"):
        obs.fisher_inverse(grads, 0.1, route="cholesky")
    with pytest.raises(ValueError, match="nonzero Fisher"):
        obs.absolute_damp(torch.zeros(3, 4), 0.1, relative=True)
    hinv = obs.fisher_inverse(grads, 0.1)
    with pytest.raises(ValueError, match="length 8"):
        obs.multi_weight_update(w[:7], hinv, pruned)
    with pytest.raises(ValueError, match="bool"):
        obs.multi_weight_update(w, hinv, pruned.double())
    with pytest.raises(ValueError, match="square"):
        obs.multi_weight_update(w, hinv[:, :7], pruned)
    with pytest.raises(ValueError, match="increase damp"):
        obs.multi_weight_update(w, -torch.eye(8, dtype=DT), pruned)
    with pytest.raises(ValueError, match="increase damp"):
        obs.single_weight_saliency(w, -torch.eye(8, dtype=DT))
    for n_prune in (-1, 9, 2.0, True):
        with pytest.raises(ValueError, match="n_prune"):
            obs.cbs_select_window(w, grads, n_prune)
    with pytest.raises(ValueError, match="length 8"):
        obs.cbs_select_window(w[:5], grads, 2)
    with pytest.raises(ValueError, match="rho"):
        obs.cbs_select_window(w, grads, 2, rho=0)
    for blocks in ([(0, 4)], [(0, 4), (5, 8)], [(0, 0), (0, 8)], [(0, 9)]):
        with pytest.raises(ValueError, match="block"):
            obs.block_fisher_inverse(grads, 0.1, blocks)
    with pytest.raises(ValueError, match="chunk_size"):
        obs.layer_blocks({"a": torch.zeros(3)}, chunk_size=0)


def test_oneshot_bad_inputs(data):
    x, y = data
    model = tiny_mlp()
    grads = obs.per_sample_grads(model, x, y)
    wf, cbs = ("woodfisher", "single"), ("cbs", "set")
    with pytest.raises(ValueError, match="pair"):
        obs.oneshot_prune(model, "wf", 0.5, grads)  # a name is not a pair of steps
    with pytest.raises(ValueError, match="unknown selection"):
        obs.oneshot_prune(model, ("obd", None), 0.5, grads)
    with pytest.raises(ValueError, match="unknown update"):
        obs.oneshot_prune(model, ("woodfisher", "double"), 0.5, grads)
    with pytest.raises(ValueError, match="need grads"):
        obs.oneshot_prune(model, wf, 0.5)
    with pytest.raises(ValueError, match="columns"):
        obs.oneshot_prune(model, wf, 0.5, grads[:, :-1])
    with pytest.raises(ValueError, match="sparsity"):
        obs.oneshot_prune(model, cbs, 1.0, grads)
    with pytest.raises(ValueError, match="damp"):
        obs.oneshot_prune(model, cbs, 0.5, grads, damp=0)
    with pytest.raises(ValueError, match="only apply"):
        obs.oneshot_prune(model, wf, 0.5, grads, rho=3)
    with pytest.raises(ValueError, match="examples"):
        obs.per_sample_grads(model, x, y[:-1])
    with pytest.raises(ValueError, match="mini-batches"):
        obs.per_sample_grads(model, x, y, batch_size=7)
    with pytest.raises(ValueError, match="not prunable"):
        obs.per_sample_grads(model, x, y, names=["fc1.bias"])


def test_oneshot_block_fisher_on_a_residual_network():
    """The full-scale ResNet-20 path of chapter 4: per-sample gradients through batch norm
    and skip connections, a per-layer block Fisher, every method, exact counts."""
    from minipruner.core.models import ResNetCIFAR

    torch.manual_seed(0)
    base = ResNetCIFAR(depth=8).eval()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 3, 32, 32, generator=g), torch.randint(0, 10, (6,), generator=g)
    grads = obs.per_sample_grads(base, x, y)
    blocks = obs.layer_blocks(base)
    d = sum(w.numel() for w in mp.prunable(base).values())
    assert grads.shape == (6, d) and blocks[-1][1] == d and len(blocks) == len(mp.prunable(base))
    for method in ("wf-s", "wf", "cbs-s", "cbs"):
        net = ResNetCIFAR(depth=8).eval()
        net.load_state_dict(base.state_dict())
        kwargs = {"max_iter": 5, "n_starts": 2} if method.startswith("cbs") else {}
        steps = get_method(method).steps
        masks = obs.oneshot_prune(net, steps, 0.5, grads, 1e-5, blocks=blocks, **kwargs)
        assert sum(int((~m).sum()) for m in masks.values()) == round(0.5 * d)
        assert torch.isfinite(net(x)).all()


def test_set_flat_weights_writes_weights_and_masks():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2, bias=False))
    w = torch.arange(18, dtype=torch.float64) + 1
    keep = torch.arange(18) % 3 != 0
    masks = obs.set_flat_weights(net, w, keep)
    flat = obs.flatten_weights(mp.prunable(net))
    assert torch.equal(flat, torch.where(keep, w, torch.zeros_like(w)).float())
    assert torch.equal(obs.flatten_weights(masks), keep)
    with pytest.raises(ValueError, match="bool vector"):
        obs.set_flat_weights(net, w, keep.float())
