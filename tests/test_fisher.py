"""The spectrum route of the damped Fisher: one eigendecomposition, any damping."""

from __future__ import annotations

import pytest
import torch

from minipruner.methods import obs

DT = torch.float64


def grads_of(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """Gradients with unequal column scales, as a trained network's are."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=DT) * torch.rand(d, generator=g, dtype=DT)


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).abs().max() / want.abs().max())


@pytest.mark.parametrize(("n", "d"), [(30, 80), (100, 40)])  # push-through, and N >= d
@pytest.mark.parametrize(("damp", "relative"), [(1e-3, False), (0.1, False), (1e-4, True)])
def test_spectrum_gives_the_cholesky_route_for_every_damping(n, d, damp, relative):
    grads = grads_of(n, d)
    spectrum = obs.FisherSpectrum(grads)
    got, want = (
        spectrum.at(damp, relative=relative),
        obs.DampedFisher(grads, damp, relative=relative),
    )
    assert got.damp == pytest.approx(want.damp, rel=1e-12)
    assert got.pushthrough == want.pushthrough == (n < d)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(d, generator=g, dtype=DT)
    pruned = torch.rand(d, generator=g) < 0.5
    idx = torch.tensor([0, 3, d - 1])
    for a, b in [
        (got.diag_inverse(), want.diag_inverse()),
        (got.diag_inverse(idx), want.diag_inverse(idx)),
        (got.solve(w), want.solve(w)),
        (got.solve(torch.stack([w, -2 * w], 1)), want.solve(torch.stack([w, -2 * w], 1))),
        (got.inverse_columns(idx), want.inverse_columns(idx)),
        (got.inverse(), want.inverse()),
        (got.set_update(w, pruned), want.set_update(w, pruned)),
    ]:
        assert relative_error(a, b) < 1e-8
    # and both are the inverse of the dense H
    dense = torch.linalg.inv(want.matrix())
    assert relative_error(got.inverse(), dense) < 1e-8


def test_one_spectrum_serves_many_dampings_without_refactorising(monkeypatch):
    grads = grads_of(40, 120)
    spectrum = obs.FisherSpectrum(grads)
    w = torch.randn(120, dtype=DT)

    def refuse(*args, **kwargs):
        raise AssertionError("a damping change factorised a matrix")

    for damp in (1e-4, 1e-2, 1.0):
        with monkeypatch.context() as patched:
            for name in ("eigh", "cholesky", "cholesky_ex", "solve_triangular"):
                patched.setattr(torch.linalg, name, refuse)
            patched.setattr(torch, "cholesky_solve", refuse)
            got = obs.single_weight_saliency(w, spectrum.at(damp))
        want = obs.single_weight_saliency(w, obs.DampedFisher(grads, damp))
        assert relative_error(got, want) < 1e-8
        # a set's update: the undamped Gram of its kept weights is reused, one Cholesky each
        for pruned in (torch.arange(120) % 3 == 0, torch.arange(120) >= 10):  # |K| < N, > N
            got = spectrum.at(damp).set_update(w, pruned)
            want = obs.DampedFisher(grads, damp).set_update(w, pruned)
            assert relative_error(got, want) < 1e-8
    assert len(spectrum._grams) == 2


def test_spectrum_diag_is_the_closed_form():
    # [H^-1]_qq = (1 - sum_n Z_nq^2 / (N damp + Lambda_n)) / damp with Z = Q^T G
    grads = grads_of(20, 50)
    spectrum = obs.FisherSpectrum(grads)
    damp = 0.03
    shifted = spectrum.eigenvalues + 20 * damp
    closed = (1 - (spectrum.z.square() / shifted.unsqueeze(1)).sum(0)) / damp
    torch.testing.assert_close(spectrum.at(damp).diag_inverse(), closed)
    k = grads @ grads.T
    torch.testing.assert_close(
        spectrum.vectors @ torch.diag(spectrum.eigenvalues) @ spectrum.vectors.T, k
    )


def test_spectrum_rejects_bad_and_unresolvable_dampings():
    grads = grads_of(20, 50)
    spectrum = obs.FisherSpectrum(grads)
    for bad in (0.0, -1.0, float("nan"), True, "0.1"):
        with pytest.raises(ValueError, match="damp"):
            spectrum.at(bad)
    with pytest.raises(ValueError, match="below what"):
        spectrum.at(1e-300)
    with pytest.raises(ValueError, match="N x d"):
        obs.FisherSpectrum(torch.zeros(5))


def test_the_cholesky_route_keeps_its_diagonal_once_computed():
    grads = grads_of(30, 80)
    idx = torch.tensor([1, 7, 79])
    before = obs.DampedFisher(grads, 1e-3).diag_inverse(idx)  # from A's columns
    fisher = obs.DampedFisher(grads, 1e-3)
    full = fisher.diag_inverse()
    full[:] = -1.0  # a copy: the kept diagonal is not the caller's to change
    after = fisher.diag_inverse(idx)  # indexed from the kept diagonal
    torch.testing.assert_close(after, before, rtol=1e-12, atol=0)
    dense = torch.linalg.inv(fisher.matrix()).diagonal()
    torch.testing.assert_close(fisher.diag_inverse(), dense, rtol=1e-8, atol=0)


def test_spectrum_equals_the_cholesky_route_on_a_trained_mlpnet_like_network():
    # chapter 4's kind of network (an MLP without biases, 64-40-20-10) and of gradients (per
    # example, float64), trained briefly, at the chapter's absolute damping and a relative one
    from conftest import seeded_mlp

    net = seeded_mlp([64, 40, 20, 10], bias=False)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(600, 64, generator=g), torch.randint(0, 10, (600,), generator=g)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    grads = obs.per_sample_grads(net, x[:200], y[:200]).double()  # N = 200 < d = 3,560
    w = obs.flatten_weights(dict(net.named_parameters())).detach().double()
    pruned = w.abs() < w.abs().quantile(0.9)
    spectrum = obs.FisherSpectrum(grads)
    for damp, relative in ((1e-3, False), (1e-4, True)):
        got, want = (
            spectrum.at(damp, relative=relative),
            obs.DampedFisher(grads, damp, relative=relative),
        )
        for a, b in [
            (got.diag_inverse(), want.diag_inverse()),
            (got.solve(w), want.solve(w)),
            (got.set_update(w, pruned), want.set_update(w, pruned)),
            (obs.woodfisher_update(w, got, pruned), obs.woodfisher_update(w, want, pruned)),
        ]:
            assert relative_error(a, b) < 1e-8
