"""Chapter 1: the magnitude scorer, the Frobenius distortion, and brute-force agreement."""

import pytest
import torch
from torch import nn

import minipruner as mp
from minipruner.methods.magnitude import brute_force_masks, spectral_distortion


def test_magnitude_scores_are_absolute_values_of_effective_weights():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))
    scores = mp.magnitude_scores(net)
    assert list(scores) == ["0.weight", "2.weight"]
    assert torch.equal(scores["0.weight"], net[0].weight.detach().abs())
    assert (scores["2.weight"] >= 0).all()
    scores["0.weight"].zero_()  # a copy: the model is untouched
    assert net[0].weight.abs().sum() > 0
    # after pruning, pruned weights score zero (the effective weight is used)
    mp.magnitude_prune(net, 0.5)
    after = mp.magnitude_scores(net)
    masks = mp.current_masks(net)
    assert all((after[k][~masks[k]] == 0).all() for k in after)


def test_frobenius_distortion_is_root_sum_of_removed_squares():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 7, generator=g)
    mask = torch.rand(6, 7, generator=g) > 0.4
    expected = (w[~mask] ** 2).sum().sqrt()
    assert torch.allclose(mp.frobenius_distortion(w, mask), expected)
    assert torch.allclose(mp.frobenius_distortion(w, mask), torch.linalg.norm(w - w * mask))
    assert mp.frobenius_distortion(w, torch.ones_like(mask)) == 0
    with pytest.raises(ValueError, match="shape"):
        mp.frobenius_distortion(w, mask.T)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_magnitude_pruning_matches_brute_force_for_every_k(seed):
    w = torch.randn(3, 4, generator=torch.Generator().manual_seed(seed))
    for k in range(w.numel()):  # sparsity k/n < 1
        mp_mask = mp.masks_from_scores({"w": w.abs()}, k / w.numel(), scope="layer")["w"]
        assert int((~mp_mask).sum()) == k
        best_mask, best = brute_force_masks(w, k, "fro")
        assert torch.allclose(mp.frobenius_distortion(w, mp_mask), best)
        assert torch.equal(mp_mask, best_mask)  # continuous weights: the minimiser is unique


def test_magnitude_pruning_does_not_minimise_the_spectral_norm():
    # the two smallest weights share a row; removing the anti-diagonal costs less
    w = torch.tensor([[1.0, 1.0], [1.1, 3.0]])
    mp_mask = mp.masks_from_scores({"w": w.abs()}, 0.5, scope="layer")["w"]
    best_mask, best = brute_force_masks(w, 2, "spectral")
    assert spectral_distortion(w, mp_mask) == pytest.approx(2**0.5)
    assert best == pytest.approx(1.1)
    assert torch.equal(best_mask, torch.tensor([[True, False], [False, True]]))


def test_output_error_bounds_hold():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(8, 10, generator=g)
    mask = mp.masks_from_scores({"w": w.abs()}, 0.6)["w"]
    x = torch.randn(10, 50, generator=g)
    err = ((w - w * mask) @ x).norm(dim=0)
    assert (err <= spectral_distortion(w, mask) * x.norm(dim=0) + 1e-5).all()
    assert spectral_distortion(w, mask) <= mp.frobenius_distortion(w, mask) + 1e-6


def test_brute_force_bad_input():
    with pytest.raises(ValueError, match="at most 20"):
        brute_force_masks(torch.randn(5, 5), 2)
    with pytest.raises(ValueError, match="k must be"):
        brute_force_masks(torch.randn(2, 2), 5)
    with pytest.raises(ValueError, match="unknown norm"):
        brute_force_masks(torch.randn(2, 2), 1, "nuclear")


def test_magnitude_prune_global_and_per_layer_ratios():
    torch.manual_seed(0)
    net = mp.get_model("mlpnet")
    masks = mp.magnitude_prune(
        net, {"fc1.weight": 0.5, "fc2.weight": 0.25, "fc3.weight": 0.1}, "layer"
    )
    assert int((~masks["fc1.weight"]).sum()) == round(0.5 * 784 * 40)
    assert int((~masks["fc2.weight"]).sum()) == round(0.25 * 40 * 20)
    assert int((~masks["fc3.weight"]).sum()) == round(0.1 * 20 * 10)
    net = mp.get_model("mlpnet")
    mp.magnitude_prune(net, 0.9)
    assert mp.sparsity_report(net).sparsity == pytest.approx(round(0.9 * 32360) / 32360)


def test_chapter_claims_on_synthetic_results(tmp_path):
    """chapter.claims turns a Results shaped like run's output into Claims with verdicts."""
    import numpy as np

    from minipruner.book.chapters import magnitude as chapter
    from minipruner.book.claims import VERDICTS, Claim
    from minipruner.experiments.records import Results

    settings = chapter.settings("quick")
    rng = np.random.default_rng(0)
    records = []
    for config in chapter.configurations(settings):
        if config["experiment"] == "distortion":
            rows = [
                {"kind": kind, "sparsity": s, "distortion": s * f, "loss_increase": s * f}
                for kind, f in (("magnitude", 0.5), ("random", 1.0))
                for s in settings["layer_sparsities"]
            ]
            records.append({**config, "rows": rows})
            continue
        drop = config["sparsity"] ** 4 * (0.3 if config["method"] == "global" else 0.6)
        records.append(
            {
                **config,
                "acc_dense": 0.95,
                "acc_pruned": 0.95 - drop + 0.005 * rng.standard_normal(),
                "acc_retrained": 0.95 - drop / 2 + 0.005 * rng.standard_normal(),
                "density": {"fc1": 0.1, "fc2": 0.2, "fc3": 0.5},
            }
        )
    claims = chapter.claims(Results("01_magnitude", "quick", settings, records, tmp_path))
    assert claims and all(isinstance(c, Claim) and c.verdict in VERDICTS for c in claims)


def test_normalised_magnitude_scores_rescale_each_layer_to_unit_norm():
    # the LAP paper's mp_global_normalize: |w| / ||W||_F per layer, so a layer's share of a
    # global budget no longer depends on its scale
    net = nn.Sequential(nn.Linear(4, 3, bias=False), nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        net[1].weight.mul_(100.0)  # a layer 100 times larger
    raw = mp.magnitude_scores(net)
    norm = mp.magnitude_scores(net, normalize=True)
    for name, score in raw.items():
        assert torch.allclose(norm[name], score / torch.linalg.matrix_norm(score))
        assert torch.linalg.matrix_norm(norm[name]).item() == pytest.approx(1.0)
    # plain global pruning at 50 % removes only the small layer; normalised, both lose weights
    plain = mp.masks_from_scores(raw, 0.5)
    normed = mp.masks_from_scores(norm, 0.5)
    assert bool(plain["1.weight"].all()) and not bool(normed["1.weight"].all())
    zero = {"a": torch.zeros(3), "b": torch.tensor([3.0, 4.0])}
    assert torch.equal(mp.normalize_scores(zero)["a"], zero["a"])
