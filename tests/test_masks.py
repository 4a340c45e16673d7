"""masks_from_scores (exact counts, ties, bad input), apply/remove masks, sparsity report."""

import pytest
import torch
from conftest import seeded_sequential
from torch import nn

import minipruner as mp
from minipruner.core.masks import fed_units


def tiny_net() -> nn.Module:
    return seeded_sequential([12, 8, 3], flatten=True, input_shape=(12,))


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.input_shape = (1, 8, 8)
        self.conv = nn.Conv2d(1, 4, 3)
        self.head = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x))


def test_prunable_lists_linear_and_conv_weights_in_forward_order():
    net = ConvNet()
    weights = mp.prunable(net)
    assert list(weights) == ["conv.weight", "head.2.weight"]
    assert weights["conv.weight"] is net.conv.weight


def test_prunable_rejects_model_without_prunable_layers():
    with pytest.raises(ValueError, match="nothing prunable"):
        mp.prunable(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)))


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.25, 0.5, 0.73, 0.9, 0.999])
def test_global_removes_exactly_round_sparsity_times_n(sparsity):
    g = torch.Generator().manual_seed(1)
    scores = {"a": torch.rand(7, 5, generator=g), "b": torch.rand(13, generator=g)}
    masks = mp.masks_from_scores(scores, sparsity)
    removed = sum(int((~m).sum()) for m in masks.values())
    assert removed == round(sparsity * 48)
    # the removed weights are exactly the lowest-scored ones
    kept = torch.cat([scores[k][masks[k]] for k in scores])
    gone = torch.cat([scores[k][~masks[k]] for k in scores])
    if len(gone) and len(kept):
        assert gone.max() <= kept.min()


@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.8])
def test_layer_scope_removes_exact_count_in_each_layer(sparsity):
    g = torch.Generator().manual_seed(2)
    scores = {"a": torch.rand(10, 10, generator=g), "b": torch.rand(7, generator=g) * 100}
    masks = mp.masks_from_scores(scores, sparsity, scope="layer")
    for name, s in scores.items():
        assert int((~masks[name]).sum()) == round(sparsity * s.numel())
        assert s[~masks[name]].max() <= s[masks[name]].min()


def test_layer_scope_with_per_layer_ratios():
    scores = {"a": torch.arange(100.0), "b": torch.arange(20.0)}
    masks = mp.masks_from_scores(scores, {"a": 0.5, "b": 0.25}, scope="layer")
    assert int((~masks["a"]).sum()) == 50 and int((~masks["b"]).sum()) == 5
    assert not masks["a"][:50].any() and masks["a"][50:].all()


def test_global_differs_from_layer_scope_when_scales_differ():
    scores = {"small": torch.full((10,), 0.1), "big": torch.arange(1.0, 11.0)}
    glob = mp.masks_from_scores(scores, 0.5)
    assert not glob["small"].any() and glob["big"].all()
    layer = mp.masks_from_scores(scores, 0.5, scope="layer")
    assert int(layer["small"].sum()) == 5 and int(layer["big"].sum()) == 5


def test_ties_are_broken_by_position_first_removed_first():
    scores = {"a": torch.ones(4), "b": torch.ones(4)}
    masks = mp.masks_from_scores(scores, 0.25)
    assert masks["a"].tolist() == [False, False, True, True]
    assert masks["b"].tolist() == [True, True, True, True]
    layer = mp.masks_from_scores(scores, 0.5, scope="layer")
    assert layer["b"].tolist() == [False, False, True, True]


def test_ties_are_deterministic_across_calls_and_exact_with_all_equal():
    scores = {"a": torch.zeros(1000), "b": torch.zeros(333)}
    first = mp.masks_from_scores(scores, 0.6)
    for _ in range(3):
        again = mp.masks_from_scores(scores, 0.6)
        assert all(torch.equal(first[k], again[k]) for k in scores)
    assert sum(int((~m).sum()) for m in first.values()) == round(0.6 * 1333)


def test_minus_infinity_scores_are_removed_first():
    scores = {"a": torch.tensor([5.0, -float("inf"), 1.0, 2.0])}
    assert mp.masks_from_scores(scores, 0.25)["a"].tolist() == [True, False, True, True]


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), "0.5", True, None])
def test_bad_sparsity_is_a_value_error(bad):
    with pytest.raises(ValueError, match="sparsity"):
        mp.masks_from_scores({"a": torch.rand(4)}, bad)


def test_bad_per_layer_sparsity():
    scores = {"a": torch.rand(4), "b": torch.rand(4)}
    with pytest.raises(ValueError, match="missing"):
        mp.masks_from_scores(scores, {"a": 0.5}, scope="layer")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mp.masks_from_scores(scores, {"a": 0.5, "b": 1.2}, scope="layer")
    with pytest.raises(ValueError, match="scope='layer'"):
        mp.masks_from_scores(scores, {"a": 0.5, "b": 0.5})


def test_a_layer_may_lose_every_weight():
    # a global threshold can empty a layer; its per-layer sparsity is then 1 (density 0),
    # and the layer-wise rule reproduces that mask (chapter 3's exercise 4 needs it)
    scores = {"a": torch.tensor([3.0, 1.0, 2.0]), "b": torch.tensor([0.5, 0.4])}
    masks = mp.masks_from_scores(scores, {"a": 1 / 3, "b": 1.0}, scope="layer")
    assert masks["a"].tolist() == [True, False, True] and not masks["b"].any()
    assert mp.masks_from_scores(scores, 0.4)["b"].tolist() == [False, False]
    with pytest.raises(ValueError, match=r"\[0, 1\)"):  # not the whole network
        mp.masks_from_scores(scores, 1.0, scope="layer")


def test_unknown_scope_is_a_value_error():
    with pytest.raises(ValueError, match="scope"):
        mp.masks_from_scores({"a": torch.rand(4)}, 0.5, scope="per-layer")


def test_nan_and_empty_scores_are_value_errors():
    with pytest.raises(ValueError, match="NaN"):
        mp.masks_from_scores({"a": torch.tensor([1.0, float("nan")])}, 0.5)
    with pytest.raises(ValueError, match="non-empty"):
        mp.masks_from_scores({}, 0.5)


def test_scores_not_matching_the_model_are_value_errors():
    net = tiny_net()
    good = mp.magnitude_scores(net)
    with pytest.raises(ValueError, match="not prunable weights"):
        mp.masks_from_scores({**good, "nope.weight": torch.rand(3)}, 0.5, model=net)
    with pytest.raises(ValueError, match="shape"):
        mp.masks_from_scores({"1.weight": torch.rand(8, 11)}, 0.5, model=net)
    with pytest.raises(ValueError, match="not prunable weights"):
        mp.apply_masks(net, {"1.bias": torch.ones(8, dtype=torch.bool)})
    with pytest.raises(ValueError, match="shape"):
        mp.apply_masks(net, {"1.weight": torch.ones(8, 11, dtype=torch.bool)})


def test_apply_masks_uses_torch_prune_and_zeroes_outputs_of_pruned_weights():
    net = tiny_net()
    masks = mp.masks_from_scores(mp.magnitude_scores(net), 0.75, model=net)
    mp.apply_masks(net, masks)
    layer = net[1]
    assert hasattr(layer, "weight_orig") and hasattr(layer, "weight_mask")
    assert torch.equal(layer.weight_mask.bool(), masks["1.weight"])
    assert torch.equal(mp.prunable(net)["1.weight"] == 0, ~masks["1.weight"])
    # the pruned weights stay zero through training
    x, y = torch.randn(32, 12), torch.randint(0, 3, (32,))
    data = torch.utils.data.TensorDataset(x, y)
    mp.train(net, data, epochs=3, lr=0.5, batch_size=8, quiet=True, device="cpu")
    for name, w in mp.prunable(net).items():
        assert (w[~masks[name]] == 0).all()
        assert (w[masks[name]] != 0).any()


def test_masks_combine_and_remove_masks_makes_pruning_permanent():
    net = tiny_net()
    mp.apply_masks(net, mp.masks_from_scores(mp.magnitude_scores(net), 0.5, model=net))
    first = mp.current_masks(net)
    mp.apply_masks(net, mp.masks_from_scores(mp.magnitude_scores(net), 0.8, model=net))
    second = mp.current_masks(net)
    for name in first:
        assert not (second[name] & ~first[name]).any()  # once pruned, stays pruned
    assert mp.sparsity_report(net).sparsity == pytest.approx(0.8, abs=1e-9)
    x = torch.randn(5, 12)
    before = net(x)
    mp.remove_masks(net)
    assert not any(hasattr(m, "weight_orig") for m in net.modules())
    assert isinstance(net[1].weight, nn.Parameter)
    assert torch.equal(net(x), before)
    assert mp.sparsity_report(net).sparsity == pytest.approx(0.8, abs=1e-9)


def test_sparsity_report_counts_weights_nonzeros_and_flops():
    net = ConvNet()
    mp.apply_masks(net, mp.masks_from_scores(mp.magnitude_scores(net), 0.9, model=net))
    report = mp.sparsity_report(net)
    conv, fc = report.layers
    assert (conv.weights, fc.weights) == (36, 1440)
    assert conv.flops == 2 * 36 * 36  # 6x6 output positions x 36 weights x multiply-add
    assert fc.flops == 2 * 1440
    assert report.total.weights == 1476
    assert report.total.nonzeros == 1476 - round(0.9 * 1476)
    assert fc.nonzero_flops == round(fc.flops * fc.nonzeros / fc.weights)
    text = str(report)
    assert "conv.weight" in text and "total" in text
    assert "<table>" in report._repr_html_()


def test_sparsity_report_without_input_shape_omits_flops():
    net = nn.Sequential(nn.Linear(3, 2))
    report = mp.sparsity_report(net)
    assert report.layers[0].flops is None
    assert report.total.weights == 6
    with_input = mp.sparsity_report(net, torch.zeros(1, 3))
    assert with_input.layers[0].flops == 12


def test_fed_units_marks_rows_and_channels_with_a_kept_weight():
    linear = torch.tensor([[1, 0, 0], [0, 0, 0], [0, 0, 1]], dtype=torch.bool)
    assert fed_units(linear).tolist() == [True, False, True]
    conv = torch.zeros(3, 2, 3, 3, dtype=torch.bool)
    conv[1, 1, 2, 0] = True  # one tap of one input channel feeds output channel 1
    assert fed_units(conv).tolist() == [False, True, False]


def test_weight_parameter_is_the_leaf_behind_a_pruned_weight():
    layer = torch.nn.Linear(3, 2)
    assert mp.core.masks.weight_parameter(layer) is layer.weight
    mp.apply_masks(layer, {"weight": torch.tensor([[True, False, True], [False, True, True]])})
    leaf = mp.core.masks.weight_parameter(layer)
    assert leaf is layer.weight_orig and leaf.is_leaf and leaf.requires_grad


def test_normalize_scores_divides_each_layer_by_its_p_norm():
    scores = {
        "a": torch.tensor([3.0, 4.0]),
        "b": torch.tensor([[1.0, 2.0], [2.0, 0.0]]),
        "z": torch.zeros(3),
    }
    two = mp.normalize_scores(scores)  # default p = 2: the Frobenius norm
    assert torch.allclose(two["a"], torch.tensor([0.6, 0.8]))
    assert torch.allclose(two["b"], scores["b"] / 3.0)
    four = mp.normalize_scores(scores, p=4)
    assert torch.allclose(four["a"], scores["a"] / (3.0**4 + 4.0**4) ** 0.25)
    assert torch.allclose(four["b"], scores["b"] / 33.0**0.25)
    # the LAP paper's rule: the squared score over its 2-norm is the square of score / 4-norm
    squared = mp.normalize_scores({k: v**2 for k, v in scores.items()})
    for k in scores:
        assert torch.allclose(squared[k], four[k] ** 2)
    assert torch.equal(four["z"], scores["z"])  # an all-zero layer is left as it is
    with pytest.raises(ValueError, match="positive"):
        mp.normalize_scores(scores, p=0)
