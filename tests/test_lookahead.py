"""Lookahead scores and their variants, checked against brute force on small networks."""

import contextlib
import copy
import itertools
import warnings

import pytest
import torch
from torch import nn

from minipruner.core.masks import apply_masks, current_masks, masks_from_scores, prunable
from minipruner.core.models import MLP, VGG, ResNetCIFAR, WideResNet
from minipruner.methods.lookahead import (
    activation_rates,
    batchnorm_factors,
    lookahead_chain,
    lookahead_prune,
    lookahead_scores,
    normalized_lookahead_scores,
)


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Double precision, weights and BN statistics drawn from a fixed seed."""
    g = torch.Generator().manual_seed(seed)
    model = model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 3 + 0.1)
                m.running_mean.copy_(torch.randn(m.num_features, generator=g))
    return model


@contextlib.contextmanager
def _no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# --------------------------------------------------------------------------------------
# MLPs: the score is the exact distortion of the three-layer block
# --------------------------------------------------------------------------------------


def test_mlp_score_is_block_distortion_of_zeroing_one_weight():
    net = _randomize(MLP([5, 4, 3, 3, 2], bias=False))
    ws = list(prunable(net).values())
    with _no_warnings():
        scores = lookahead_scores(net)
    assert list(scores) == list(prunable(net))
    for i, (name, w) in enumerate(prunable(net).items()):
        before = ws[i - 1] if i > 0 else torch.eye(w.shape[1], dtype=w.dtype)
        after = ws[i + 1] if i + 1 < len(ws) else torch.eye(w.shape[0], dtype=w.dtype)
        block = after @ w @ before
        assert scores[name].shape == w.shape
        for j, k in itertools.product(range(w.shape[0]), range(w.shape[1])):
            pruned = w.detach().clone()
            pruned[j, k] = 0
            change = (block - after @ pruned @ before).norm()
            torch.testing.assert_close(scores[name][j, k], change)


def test_first_and_last_layer_missing_neighbour_counts_as_one():
    net = _randomize(MLP([4, 3, 2], bias=False), seed=1)
    w1, w2 = prunable(net).values()
    scores = lookahead_scores(net)
    torch.testing.assert_close(scores["fc1.weight"], w1.abs() * w2.norm(dim=0)[:, None])
    torch.testing.assert_close(scores["fc2.weight"], w2.abs() * w1.norm(dim=1)[None, :])
    single = _randomize(nn.Sequential(nn.Linear(4, 3)))
    torch.testing.assert_close(lookahead_scores(single)["0.weight"], single[0].weight.abs())


def test_scores_of_a_masked_model_use_the_effective_weights():
    net = _randomize(MLP([6, 5, 4, 3]), seed=2)
    zeroed = copy.deepcopy(net)
    g = torch.Generator().manual_seed(0)
    masks = {n: torch.rand(w.shape, generator=g) > 0.4 for n, w in prunable(net).items()}
    apply_masks(net, masks)
    with torch.no_grad():
        for n, w in prunable(zeroed).items():
            w.mul_(masks[n])
    got, want = lookahead_scores(net), lookahead_scores(zeroed)
    for n in got:
        torch.testing.assert_close(got[n], want[n])
        assert (got[n][~masks[n]] == 0).all()


# --------------------------------------------------------------------------------------
# CNNs: filters and kernels, conv -> flatten -> linear
# --------------------------------------------------------------------------------------


class SmallCNN(nn.Module):
    """conv -> conv -> conv -> pool -> flatten -> linear -> linear, 5x5 input.

    The last conv has C = 4 channels of P = 2 * 2 positions after pooling (C != P, so a
    wrong channel index after flatten would show)."""

    def __init__(self, batchnorm: bool = False) -> None:
        super().__init__()
        self.input_shape = (2, 5, 5)
        self.conv1 = nn.Conv2d(2, 3, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(3) if batchnorm else nn.Identity()
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(3) if batchnorm else nn.Identity()
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(3, 4, (3, 2), padding=1)
        self.bn3 = nn.BatchNorm2d(4) if batchnorm else nn.Identity()
        self.relu3 = nn.ReLU()
        self.pool = nn.AdaptiveMaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * 2 * 2, 3)
        self.relu4 = nn.ReLU()
        self.out = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.flatten(self.pool(self.relu3(self.bn3(self.conv3(x)))))
        return self.out(self.relu4(self.fc(x)))


P = 4  # positions per conv3 channel seen by fc


def _explicit_cnn_scores(net: SmallCNN, s: dict[str, torch.Tensor] | None = None) -> dict:
    """The formula written out channel by channel, with explicit loops."""
    w = prunable(net)
    c1, c2, c3 = w["conv1.weight"], w["conv2.weight"], w["conv3.weight"]
    fc, out = w["fc.weight"], w["out.weight"]
    s = s or {}
    one = torch.ones(8, dtype=torch.float64)
    s1, s2, s3 = (s.get(n, one) for n in ("conv1.weight", "conv2.weight", "conv3.weight"))
    want = {n: torch.zeros_like(t) for n, t in w.items()}
    for j, k in itertools.product(range(c1.shape[0]), range(c1.shape[1])):
        nxt = s1[j].abs() * c2[:, j].norm()  # all kernels consuming channel j
        want["conv1.weight"][j, k] = c1[j, k].abs() * nxt
    for j, k in itertools.product(range(c2.shape[0]), range(c2.shape[1])):
        prv = s1[k].abs() * c1[k].norm()  # the whole filter producing channel k
        nxt = s2[j].abs() * c3[:, j].norm()
        want["conv2.weight"][j, k] = c2[j, k].abs() * prv * nxt
    for j, k in itertools.product(range(c3.shape[0]), range(c3.shape[1])):
        prv = s2[k].abs() * c2[k].norm()
        nxt = s3[j].abs() * fc[:, j * P : (j + 1) * P].norm()  # fc inputs of channel j
        want["conv3.weight"][j, k] = c3[j, k].abs() * prv * nxt
    for o, i in itertools.product(range(fc.shape[0]), range(fc.shape[1])):
        c = i // P  # fc input c * P + p belongs to channel c
        want["fc.weight"][o, i] = fc[o, i].abs() * s3[c].abs() * c3[c].norm() * out[:, o].norm()
    for o, i in itertools.product(range(out.shape[0]), range(out.shape[1])):
        want["out.weight"][o, i] = out[o, i].abs() * fc[i].norm()
    return want


def test_cnn_scores_match_explicit_channel_loops():
    net = _randomize(SmallCNN(), seed=3)
    with _no_warnings():
        chain = lookahead_chain(net)
    assert chain.is_chain and chain.traced
    assert chain.units_per_channel[("conv3.weight", "fc.weight")] == P
    got, want = lookahead_scores(net), _explicit_cnn_scores(net)
    for n in want:
        torch.testing.assert_close(got[n], want[n])


def _linearised_block(ws: list[torch.Tensor]) -> torch.Tensor:
    """Product of consecutive layers with each kernel kept as one block entry: channel
    indices are contracted, kernel taps (and flattened positions) kept as separate axes."""
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    chans = [next(letters) for _ in range(len(ws) + 1)]
    terms, kept = [], []
    for i, w in enumerate(reversed(ws)):  # outermost (last) layer first
        taps = "".join(next(letters) for _ in range(w.dim() - 2))
        terms.append(chans[i] + chans[i + 1] + taps)
        kept.append(taps)
    spec = ",".join(terms) + "->" + chans[0] + "".join(kept) + chans[-1]
    return torch.einsum(spec, *ws[::-1])


@pytest.mark.parametrize(
    ("before", "layer", "after"),
    [
        (None, "conv1.weight", "conv2.weight"),
        ("conv1.weight", "conv2.weight", "conv3.weight"),  # conv - conv - conv
        ("conv2.weight", "conv3.weight", "fc.weight"),  # conv - conv - flatten/linear
        ("conv3.weight", "fc.weight", "out.weight"),
    ],
)
def test_cnn_score_is_distortion_of_the_linearised_block(before, layer, after):
    net = _randomize(SmallCNN(), seed=4)
    scores = lookahead_scores(net)[layer]
    w = {n: t.detach() for n, t in prunable(net).items()}
    w["fc.weight"] = w["fc.weight"].view(3, 4, P)  # (out, channel, position)
    block = [w[n] for n in (before, layer, after) if n is not None]
    full = _linearised_block(block)
    target = w[layer]
    for idx in itertools.product(*map(range, target.shape)):
        pruned = target.clone()
        pruned[idx] = 0
        parts = [pruned if t is target else t for t in block]
        change = (full - _linearised_block(parts)).norm()
        flat_idx = idx if layer != "fc.weight" else (idx[0], idx[1] * P + idx[2])
        torch.testing.assert_close(scores[flat_idx], change)


def test_vgg_1d_runs_as_a_chain_with_global_pooling():
    net = _randomize(VGG([4, "M", 6], in_channels=1, input_shape=(1, 12), dim=1), seed=5)
    with _no_warnings():
        chain = lookahead_chain(net)
        scores = lookahead_scores(net, batchnorm=True)
    assert chain.is_chain
    assert chain.units_per_channel[("features.4.weight", "classifier.weight")] == 1
    assert [len(chain.batchnorms[n]) for n in ("features.0.weight", "features.4.weight")] == [1, 1]
    assert all(torch.isfinite(s).all() for s in scores.values())


# --------------------------------------------------------------------------------------
# Batch-norm aware
# --------------------------------------------------------------------------------------


def test_batchnorm_scores_match_hand_computation():
    net = _randomize(SmallCNN(batchnorm=True), seed=6)
    with torch.no_grad():
        net.bn2.weight[1] = -0.5  # a negative gamma: the factor enters by its size
    bns = {"conv1.weight": net.bn1, "conv2.weight": net.bn2, "conv3.weight": net.bn3}
    s = {n: bn.weight / torch.sqrt(bn.running_var + bn.eps) for n, bn in bns.items()}
    factors = batchnorm_factors(net)
    assert set(factors) == set(s)
    for n in s:
        torch.testing.assert_close(factors[n], s[n].detach())
    got, want = lookahead_scores(net, batchnorm=True), _explicit_cnn_scores(net, s)
    for n in want:
        torch.testing.assert_close(got[n], want[n].detach())
    plain = lookahead_scores(net)
    assert not torch.allclose(got["fc.weight"], plain["fc.weight"])


def test_batchnorm_score_is_distortion_of_block_with_bn_scales():
    net = _randomize(
        nn.Sequential(
            nn.Linear(4, 3, bias=False),
            nn.BatchNorm1d(3),
            nn.ReLU(),
            nn.Linear(3, 3, bias=False),
            nn.BatchNorm1d(3),
            nn.ReLU(),
            nn.Linear(3, 2, bias=False),
        ),
        seed=7,
    )
    w1, w2, w3 = (t.detach() for t in prunable(net).values())
    s1 = torch.diag(net[1].weight / torch.sqrt(net[1].running_var + net[1].eps)).detach()
    s2 = torch.diag(net[4].weight / torch.sqrt(net[4].running_var + net[4].eps)).detach()
    scores = lookahead_scores(net, batchnorm=True)["3.weight"]
    block = w3 @ s2 @ w2 @ s1 @ w1
    for j, k in itertools.product(range(3), range(3)):
        pruned = w2.clone()
        pruned[j, k] = 0
        torch.testing.assert_close(scores[j, k], (block - w3 @ s2 @ pruned @ s1 @ w1).norm())


def test_batchnorm_found_without_an_example_input_too():
    traced = _randomize(SmallCNN(batchnorm=True), seed=8)
    seq = nn.Sequential(traced.conv1, traced.bn1, traced.relu1, traced.conv2, traced.bn2)
    with _no_warnings():
        assert not lookahead_chain(seq).traced
        factors = batchnorm_factors(seq)
    assert set(factors) == {"0.weight", "3.weight"}
    torch.testing.assert_close(factors["3.weight"], batchnorm_factors(traced)["conv2.weight"])


# --------------------------------------------------------------------------------------
# Activation aware (LAP-act)
# --------------------------------------------------------------------------------------


def test_activation_rates_measured_on_a_tiny_linear_case():
    net = nn.Sequential(nn.Linear(2, 3, bias=False), nn.ReLU(), nn.Linear(3, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]))
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    rates = activation_rates(net, x)
    assert list(rates) == ["0.weight"]  # the output layer has no ReLU: always active
    torch.testing.assert_close(rates["0.weight"], torch.tensor([0.5, 0.25, 0.0]))
    batches = activation_rates(net, [(x[:1], 0), (x[1:], 0)])  # (input, label) batches
    torch.testing.assert_close(batches["0.weight"], rates["0.weight"])


def test_activation_rates_of_conv_channels_average_over_positions():
    net = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False), nn.ReLU(inplace=True))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
    x = torch.tensor([[[[1.0, -1.0], [2.0, 0.0]]], [[[-3.0, 0.0], [0.0, 0.0]]]])
    torch.testing.assert_close(activation_rates(net, x)["0.weight"], torch.tensor([0.25, 0.25]))


def test_activation_rates_follow_batchnorm_and_lie_in_unit_interval():
    net = _randomize(SmallCNN(batchnorm=True), seed=9)
    rates = activation_rates(net, torch.randn(6, 2, 5, 5, dtype=torch.float64))
    assert list(rates) == ["conv1.weight", "conv2.weight", "conv3.weight", "fc.weight"]
    for n, r in rates.items():
        assert r.shape == (prunable(net)[n].shape[0],)
        assert ((r >= 0) & (r <= 1)).all()
    assert net.training  # the model's mode is restored


def test_activation_aware_score_is_rms_distortion_over_relu_gates():
    net = _randomize(MLP([3, 3, 3, 2, 2], bias=False), seed=10)
    w1, w2, w3, _ = (t.detach() for t in prunable(net).values())
    g = torch.Generator().manual_seed(1)
    p = {n: torch.rand(k, generator=g, dtype=torch.float64) for n, k in
         [("fc1.weight", 3), ("fc2.weight", 3), ("fc3.weight", 2)]}  # fmt: skip
    scores = lookahead_scores(net, activation_rates=p)["fc2.weight"]
    probs = torch.cat([p["fc1.weight"], p["fc2.weight"], p["fc3.weight"]])
    expected = torch.zeros(3, 3, dtype=torch.float64)
    for gates in itertools.product([0.0, 1.0], repeat=8):  # every on/off pattern of 8 ReLUs
        gate = torch.tensor(gates, dtype=torch.float64)
        prob = torch.where(gate > 0, probs, 1 - probs).prod()
        d1, d2, d3 = torch.diag(gate[:3]), torch.diag(gate[3:6]), torch.diag(gate[6:])
        for j, k in itertools.product(range(3), range(3)):
            delta = torch.zeros(3, 3, dtype=torch.float64)
            delta[j, k] = w2[j, k]
            expected[j, k] += prob * (d3 @ w3 @ d2 @ delta @ d1 @ w1).norm() ** 2
    torch.testing.assert_close(scores, expected.sqrt())


def test_activation_aware_formula_on_a_cnn_and_rate_checks():
    net = _randomize(SmallCNN(), seed=11)
    rates = activation_rates(net, torch.randn(5, 2, 5, 5, dtype=torch.float64))
    got = lookahead_scores(net, activation_rates=rates)
    c2, c3, fc = (prunable(net)[n] for n in ("conv2.weight", "conv3.weight", "fc.weight"))
    p2, p3, pf = (rates[n] for n in ("conv2.weight", "conv3.weight", "fc.weight"))
    j, k = 2, 1
    prv = (p2[k] * c2[k].pow(2).sum()).sqrt()
    nxt = (pf[:, None] * fc[:, j * P : (j + 1) * P].pow(2)).sum().sqrt()
    want = c3[j, k].abs() * p3[j].sqrt() * prv * nxt
    torch.testing.assert_close(got["conv3.weight"][j, k], want.detach())
    with pytest.raises(ValueError, match="shape"):
        lookahead_scores(net, activation_rates={"conv1.weight": torch.ones(4)})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        lookahead_scores(net, activation_rates={"conv1.weight": torch.full((3,), 1.5)})
    with pytest.raises(ValueError, match="not a prunable"):
        lookahead_scores(net, activation_rates={"nope": torch.ones(3)})
    with pytest.raises(ValueError, match="no nn.ReLU"):
        activation_rates(nn.Sequential(nn.Linear(2, 2)), torch.ones(1, 2))


# --------------------------------------------------------------------------------------
# LFP / LBP / one-shot, exact counts, global pruning
# --------------------------------------------------------------------------------------


def _constructed_net() -> MLP:
    """2 -> 3 -> 1 where pruning layer 1 reverses the order of two row norms of W1."""
    net = MLP([2, 3, 1], bias=False)
    with torch.no_grad():
        net.fc1.weight.copy_(torch.tensor([[2.0, 2.0], [1.2, 1.2], [1.6, 0.3]]))
        net.fc2.weight.copy_(torch.tensor([[5.0, 1.0, 1.0]]))
    return net


def test_sequential_pruning_differs_from_one_shot_in_a_constructed_case():
    ratios = {"fc1.weight": 2 / 6, "fc2.weight": 1 / 3}
    one = lookahead_prune(_constructed_net(), ratios, order="oneshot")
    lfp = lookahead_prune(_constructed_net(), ratios, order="forward")
    lbp = lookahead_prune(_constructed_net(), ratios, order="backward")
    # fc1 scores |w| * |W2[0, j]|: 0.3 and 1.2 (row 1) go; rows then have norms 2.83, 1.2, 1.6
    assert one["fc1.weight"].tolist() == [[True, True], [False, True], [True, False]]
    assert lfp["fc1.weight"].tolist() == one["fc1.weight"].tolist()
    assert one["fc2.weight"].tolist() == [[True, True, False]]  # unpruned rows 1.70 > 1.63
    assert lfp["fc2.weight"].tolist() == [[True, False, True]]  # pruned rows 1.2 < 1.6
    # LBP prunes fc2 first (column 2), which leaves row 2 of fc1 with score 0
    assert lbp["fc2.weight"].tolist() == [[True, True, False]]
    assert lbp["fc1.weight"].tolist() == [[True, True], [True, True], [False, False]]


@pytest.mark.parametrize("order", ["oneshot", "forward", "backward"])
def test_lookahead_prune_removes_exact_counts(order):
    net = _randomize(MLP([20, 16, 12, 8]), seed=12)
    g = torch.Generator().manual_seed(0)
    old = {n: torch.rand(w.shape, generator=g) > 0.1 for n, w in prunable(net).items()}
    apply_masks(net, old)
    ratios = {"fc1.weight": 0.5, "fc2.weight": 0.7, "fc3.weight": 0.25}
    masks = lookahead_prune(net, ratios, order=order, batchnorm=True)
    assert list(masks) == list(prunable(net))
    for n, m in masks.items():
        assert int((~m).sum()) == round(ratios[n] * m.numel())
        assert not (m & ~old[n]).any()  # pruned weights stay pruned
        assert torch.equal(current_masks(net)[n], m)
    with pytest.raises(ValueError, match="missing"):
        lookahead_prune(net, {"fc1.weight": 0.5}, order=order)


def test_oneshot_lookahead_prune_equals_masks_from_scores():
    net = _randomize(MLP([10, 8, 6, 4]), seed=13)
    scores = lookahead_scores(net)
    masks = lookahead_prune(copy.deepcopy(net), 0.6)
    for n, s in scores.items():
        kept, dropped = s[masks[n]], s[~masks[n]]
        assert int((~masks[n]).sum()) == round(0.6 * s.numel())
        assert dropped.max() <= kept.min()


def test_normalized_scores_and_global_pruning():
    net = _randomize(MLP([12, 10, 8, 4]), seed=14)
    raw = lookahead_scores(net)
    norm = normalized_lookahead_scores(net)
    for n in raw:  # the paper's code: squared score over its L2 norm = (L / ||L||_4)^2
        torch.testing.assert_close(norm[n].norm(), torch.tensor(1.0, dtype=torch.float64))
        torch.testing.assert_close(norm[n], raw[n] ** 2 / (raw[n] ** 2).norm())
        torch.testing.assert_close(norm[n], (raw[n] / raw[n].norm(p=4)) ** 2)
    assert all(torch.equal(norm[n], lookahead_scores(net, normalize=True)[n]) for n in raw)
    masks = lookahead_prune(net, 0.7, scope="global")
    total = sum(m.numel() for m in masks.values())
    assert sum(int((~m).sum()) for m in masks.values()) == round(0.7 * total)
    with pytest.raises(ValueError, match="one-shot"):
        lookahead_prune(net, 0.5, order="forward", scope="global")
    with pytest.raises(ValueError, match="unknown order"):
        lookahead_prune(net, 0.5, order="sideways")


# --------------------------------------------------------------------------------------
# Non-chain models and models that cannot be read
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [lambda: ResNetCIFAR(8), lambda: WideResNet(10, 1), lambda: WideResNet(10, 2, dim=1)],
    ids=["resnet8", "wrn-10-1", "wrn-10-2-1d"],
)
def test_residual_networks_warn_and_still_score(build):
    net = build()
    with pytest.warns(UserWarning, match="do not form a simple chain") as record:
        chain = lookahead_chain(net)
    assert "->" in str(record[0].message)
    assert not chain.is_chain and chain.ignored
    off = [n for n in chain.order if n not in chain.main_path]
    assert all("shortcut" in n for n in off)  # 1x1 shortcut convs are the skip path
    for n in off:
        assert chain.prev[n] is not None and chain.next[n] is not None
    with pytest.warns(UserWarning, match="simple chain"):
        scores = lookahead_scores(net, batchnorm=True)
    weights = prunable(net)
    assert all(s.shape == weights[n].shape and torch.isfinite(s).all() for n, s in scores.items())


def test_mismatched_layers_raise_naming_both():
    net = nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Linear(7, 3))
    with pytest.raises(ValueError, match=r"'0\.weight'.*'2\.weight'"):
        lookahead_scores(net)
    flat = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Flatten(), nn.Linear(10, 2))
    with pytest.raises(ValueError, match="not a multiple"):
        lookahead_scores(flat)
    grouped = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Conv2d(4, 2, 1))
    with pytest.raises(ValueError, match="grouped"):
        lookahead_scores(grouped)
    broken = nn.Sequential(nn.Linear(4, 3))
    broken.input_shape = (5,)
    with pytest.raises(ValueError, match="could not run"):
        lookahead_scores(broken)


def test_paper_ratios_give_the_papers_surviving_fractions():
    from minipruner.core.models import get_model
    from minipruner.methods.lookahead import paper_ratios

    fcn = get_model("fcn")
    sizes = {n: w.numel() for n, w in prunable(fcn).items()}
    survive = []
    for t in range(4, 11):
        r = paper_ratios(fcn, t)
        kept = sum(sizes[n] * (1 - r[n]) for n in sizes)
        survive.append(round(100 * kept / sum(sizes.values()), 2))
    assert survive == [6.36, 3.21, 1.63, 0.84, 0.43, 0.23, 0.12]
    with pytest.raises(ValueError, match="non-negative"):
        paper_ratios(fcn, -1)


def test_lookahead_score_is_the_formula_lookahead_scores_apply():
    from minipruner.methods.lookahead import lookahead_score

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 5, bias=False), nn.ReLU(), nn.Linear(5, 4, bias=False))
    net = nn.Sequential(*net, nn.ReLU(), nn.Linear(4, 3, bias=False))
    a, b, c = (net[i].weight.detach() for i in (0, 2, 4))
    formula = lookahead_score(b, c.square().sum(0), a.square().sum(1))
    assert torch.equal(formula, lookahead_scores(net, example=torch.zeros(1, 6))["2.weight"])
    j, k = 1, 3
    expected = b[j, k].abs() * a[k].norm() * c[:, j].norm()
    assert torch.isclose(formula[j, k], expected)


def test_the_layer_graph_lives_in_its_own_module_and_stays_importable_here():
    from minipruner.methods import layer_graph, lookahead

    assert lookahead.lookahead_chain is layer_graph.lookahead_chain
    assert lookahead.LayerChain is layer_graph.LayerChain


def _official_global_lap_scores(weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """The official ``LAP_Global(normalize=True)`` score of a chain of linear layers, written
    out: ``W**2 * prev * next`` with ``prev[k] = sum_m W_{i-1}[k, m]^2`` and ``next[j] =
    sum_o W_{i+1}[o, j]^2`` (1 at the ends), each layer's score divided by its L2 norm."""
    out = []
    for i, w in enumerate(weights):
        prev = torch.ones(w.shape[1], dtype=w.dtype)
        nxt = torch.ones(w.shape[0], dtype=w.dtype)
        if i > 0:
            prev = torch.stack([(weights[i - 1][k] ** 2).sum() for k in range(w.shape[1])])
        if i + 1 < len(weights):
            nxt = torch.stack([(weights[i + 1][:, j] ** 2).sum() for j in range(w.shape[0])])
        score = torch.empty_like(w)
        for j, k in itertools.product(range(w.shape[0]), range(w.shape[1])):
            score[j, k] = w[j, k] ** 2 * prev[k] * nxt[j]
        out.append(score / score.norm())
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_global_lap_is_the_official_codes_and_ranks_by_L_over_its_4_norm(seed):
    # layers of very different sizes, so that the normalisation decides each layer's share
    net = _randomize(MLP([30, 16, 8, 3], bias=False), seed=seed)
    names = list(prunable(net))
    weights = [w.detach() for w in prunable(net).values()]
    official = dict(zip(names, _official_global_lap_scores(weights), strict=True))
    raw = lookahead_scores(net)
    by_l4 = {n: s / s.norm(p=4) for n, s in raw.items()}  # L / ||L||_4
    by_l2 = {n: s / s.norm() for n, s in raw.items()}  # L / ||L||_2: the book's old rule
    for n in names:
        torch.testing.assert_close(normalized_lookahead_scores(net)[n], official[n])
    for sparsity in (0.5, 0.8, 0.9):
        want = masks_from_scores(official, sparsity)
        same_rank = masks_from_scores(by_l4, sparsity)
        got = lookahead_prune(copy.deepcopy(net), sparsity, scope="global")
        old = masks_from_scores(by_l2, sparsity)
        for n in names:
            assert torch.equal(got[n], want[n]) and torch.equal(same_rank[n], want[n])
        # the per-layer densities follow the official rule, and the L2 rule keeps more of the
        # small layers (their norms shrink as sqrt(n) rather than n^(1/4))
        density = [float(got[n].double().mean()) for n in names]
        assert density == [float(want[n].double().mean()) for n in names]
        if sparsity == 0.9:
            assert float(old[names[-1]].double().mean()) > density[-1]
