"""Pruning at init: GraSP's Hg against an explicit Hessian, score signs, chunking, SNIP,
random, prune_at_init, layer collapse and the class-balanced scoring batch."""

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import seeded_mlp, seeded_sequential
from torch import nn
from torch.func import functional_call, grad, jvp
from torch.utils.data import TensorDataset

import minipruner as mp
from minipruner.core.models import MLP, VGG
from minipruner.methods import get_method
from minipruner.methods import init_pruning as ip

INIT_METHODS = ("grasp", "snip", "random", "magnitude-global")
"""Chapter 3's four methods, as ids of the method table (whose scorers prune_at_init takes)."""


def tiny_mlp() -> nn.Module:
    """6-5-4-3 MLP with biases (biases must stay out of g and H), in float64."""
    return seeded_mlp([6, 5, 4, 3], dtype=torch.float64)


def tanh_net() -> nn.Module:
    """6-8-5-3 tanh network with biases, float64: smooth, so no weight has a zero score."""
    return seeded_sequential([6, 8, 5, 3], activation=nn.Tanh, dtype=torch.float64)


def mlp_batch(n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 6, generator=g, dtype=torch.float64), torch.arange(n) % 3


def tiny_vgg() -> nn.Module:
    """1-D VGG with BatchNorm: conv 1->4, pool, conv 4->8, GAP, linear 8->3."""
    torch.manual_seed(0)
    return VGG([4, "M", 8], num_classes=3, in_channels=1, dim=1)


def vgg_batch(n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return torch.randn(n, 1, 40, generator=g), torch.arange(n) % 3


def explicit_hg(model: nn.Module, x, y, temperature: float):
    """Flattened theta, g, H g from torch.autograd.functional.hessian, and Hg by
    forward-over-reverse (jvp of grad), over the prunable weights only."""
    weights = {k: v.detach() for k, v in mp.prunable(model).items()}
    shapes = {k: v.shape for k, v in weights.items()}
    theta = torch.cat([v.reshape(-1) for v in weights.values()])

    def loss(flat: torch.Tensor) -> torch.Tensor:
        params, start = {}, 0
        for k, shape in shapes.items():
            n = shape.numel()
            params[k] = flat[start : start + n].reshape(shape)
            start += n
        return F.cross_entropy(functional_call(model, params, (x,)) / temperature, y)

    hessian = torch.autograd.functional.hessian(loss, theta)
    g = grad(loss)(theta)
    _, hg_fwd_rev = jvp(grad(loss), (theta,), (g,))
    return theta, g, hessian @ g, hg_fwd_rev


def flat(scores: dict) -> torch.Tensor:
    return torch.cat([s.reshape(-1) for s in scores.values()])


@pytest.mark.parametrize("make_model", [tiny_mlp, tanh_net])
@pytest.mark.parametrize("temperature", [1.0, 200.0])
def test_hg_matches_explicit_hessian_and_forward_over_reverse(temperature, make_model):
    model, (x, y) = make_model(), mlp_batch()
    theta, g, hg, hg_fwd_rev = explicit_hg(model, x, y, temperature)
    torch.testing.assert_close(hg, hg_fwd_rev, rtol=1e-9, atol=1e-14)
    assert hg.abs().max() > 0

    ours = ip.hessian_gradient_product(model, x, y, temperature)
    assert list(ours) == list(mp.prunable(model))  # keyed like prunable, no biases
    torch.testing.assert_close(flat(ours), hg, rtol=1e-9, atol=1e-14)
    scores = ip.grasp_scores(model, x, y, temperature)
    torch.testing.assert_close(flat(scores), theta * hg, rtol=1e-9, atol=1e-16)
    for name, w in mp.prunable(model).items():
        assert scores[name].shape == w.shape


def test_temperature_changes_the_scores_beyond_a_scale():
    model, (x, y) = tiny_mlp(), mlp_batch()
    s1 = flat(ip.grasp_scores(model, x, y, temperature=1.0))
    s200 = flat(ip.grasp_scores(model, x, y, temperature=200.0))
    assert not torch.allclose(s1 / s1.norm(), s200 / s200.norm(), atol=1e-3)
    assert not torch.equal(s1.argsort(), s200.argsort())


def test_grasp_sign_keep_highest_removes_the_top_of_minus_theta_hg():
    model, (x, y) = tanh_net(), mlp_batch()
    theta = {k: v.detach() for k, v in mp.prunable(model).items()}
    hg = ip.hessian_gradient_product(model, x, y)
    scores = ip.grasp_scores(model, x, y)
    for name in theta:  # theta * Hg, not negated
        assert torch.equal(scores[name], theta[name] * hg[name])
    assert (flat(scores) < 0).any() and (flat(scores) > 0).any()
    assert len(set(flat(scores).float().tolist())) == flat(scores).numel()  # no ties

    sparsity = 0.4
    masks = mp.masks_from_scores(scores, sparsity)
    removal_score = -flat(theta) * flat(hg)  # GraSP's S(-theta): remove the largest
    k = round(sparsity * removal_score.numel())
    expected = set(torch.topk(removal_score, k).indices.tolist())
    removed = set(torch.nonzero(~flat(masks)).flatten().tolist())
    assert removed == expected


@pytest.mark.parametrize("chunk_size", [1, 5, 7, 12, 100])
def test_chunking_does_not_change_the_scores(chunk_size):
    model, (x, y) = tiny_mlp(), mlp_batch()
    for scorer in (ip.grasp_scores, ip.snip_scores):
        whole = flat(scorer(model, x, y))
        chunked = flat(scorer(model, x, y, chunk_size=chunk_size))
        torch.testing.assert_close(chunked, whole, rtol=1e-10, atol=1e-18)


def test_chunking_invariance_for_a_batchnorm_cnn_in_eval_mode():
    model, (x, y) = tiny_vgg(), vgg_batch()
    model.eval()
    whole = flat(ip.grasp_scores(model, x, y))
    chunked = flat(ip.grasp_scores(model, x, y, chunk_size=5))
    torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-6 * whole.abs().max().item())


def test_snip_matches_hand_computation_and_is_nonnegative():
    model, (x, y) = tiny_mlp(), mlp_batch()
    reference = copy.deepcopy(model)
    F.cross_entropy(reference(x), y).backward()  # plain loss, T = 1
    scores = ip.snip_scores(model, x, y)
    for name, w in mp.prunable(reference).items():
        torch.testing.assert_close(scores[name], (w.detach() * w.grad).abs())
        assert (scores[name] >= 0).all()


def test_random_scores_are_deterministic_per_seed_and_differ_across_seeds():
    model = tiny_vgg()
    a, b, c = ip.random_scores(model, 3), ip.random_scores(model, 3), ip.random_scores(model, 4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(flat(a), flat(c))
    assert ((flat(a) >= 0) & (flat(a) < 1)).all()
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in mp.prunable(model).items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_scores_are_independent_of_the_initial_weights_of_the_same_seed(seed):
    """A network initialised after torch.manual_seed(seed) draws its uniform weights from the
    stream a torch.Generator seeded with seed would give random_scores; the scores must not
    follow the weights (the earlier torch.rand scores had correlation 1 in the first layer,
    and the "random" mask kept the most positive initial weights)."""
    vgg = [64, 64, "M", 128, 128, "M", 256, 256]  # a VGG-6, wider than chapter 3's quick one
    for make in (lambda: MLP([784, 300, 100, 10]), lambda: VGG(vgg, in_channels=1)):
        torch.manual_seed(seed)
        model = make()
        scores = ip.random_scores(model, seed)
        for name, w in mp.prunable(model).items():
            pair = torch.stack([w.detach().flatten(), scores[name].flatten()])
            assert abs(torch.corrcoef(pair)[0, 1]) < 4 / w.numel() ** 0.5, name  # 4 sd
        first, w = next(iter(scores.items()))
        keep = mp.masks_from_scores({first: w}, 0.9, scope="layer")[first]
        positive = (mp.prunable(model)[first][keep] > 0).float().mean()
        assert 0.4 < positive < 0.6  # a random tenth keeps both signs


@pytest.mark.parametrize("train_mode", [True, False])
def test_scoring_leaves_the_model_untouched(train_mode):
    model, (x, y) = tiny_vgg(), vgg_batch()
    model.train(train_mode)
    model.classifier.weight.grad = torch.full_like(model.classifier.weight, 7.0)
    model.features[0].weight.requires_grad_(False)
    before = copy.deepcopy(model.state_dict())
    for scorer in (
        lambda: ip.grasp_scores(model, x, y),
        lambda: ip.grasp_scores(model, x, y, chunk_size=5),
        lambda: ip.snip_scores(model, x, y),
        lambda: ip.random_scores(model),
    ):
        scorer()
        after = model.state_dict()  # BatchNorm running statistics included
        assert all(torch.equal(before[k], after[k]) for k in before)
        assert all(m.training == train_mode for m in model.modules())
        assert torch.equal(
            model.classifier.weight.grad, torch.full_like(before["classifier.weight"], 7.0)
        )
        assert all(p.grad is None for n, p in model.named_parameters() if n != "classifier.weight")
        assert not model.features[0].weight.requires_grad


@pytest.mark.parametrize("method", INIT_METHODS)
def test_prune_at_init_removes_exactly_the_global_count(method):
    model, data = tiny_vgg(), vgg_batch()
    n = sum(w.numel() for w in mp.prunable(model).values())
    masks = ip.prune_at_init(model, get_method(method).scorer, 0.7, data)
    assert sum(int(m.sum()) for m in masks.values()) == n - round(0.7 * n)
    for name, module in mp.prunable_modules(model).items():
        assert torch.equal(module.weight_mask.bool(), masks[name])
    densities = ip.layer_densities(masks)
    assert list(densities) == list(mp.prunable(model))
    assert all(0.0 <= d <= 1.0 for d in densities.values())


def test_prune_at_init_uses_the_scorer_it_names():
    model, (x, y) = tiny_vgg(), vgg_batch()
    scores = ip.grasp_scores(model, x, y, temperature=50.0)
    masks = ip.prune_at_init(model, get_method("grasp").scorer, 0.5, (x, y), temperature=50.0)
    expected = mp.masks_from_scores(scores, 0.5)
    assert all(torch.equal(masks[k], expected[k]) for k in masks)


def test_prune_at_init_passes_its_seed_to_random_scores():
    model = tiny_vgg()
    expected = mp.masks_from_scores(ip.random_scores(model, 3), 0.5)
    masks = ip.prune_at_init(model, get_method("random").scorer, 0.5, seed=3)
    assert all(torch.equal(masks[k], expected[k]) for k in masks)


def test_grasp_sign_variants_are_grasp_scores_transformed():
    model, (x, y) = tanh_net(), mlp_batch()
    grasp = ip.grasp_scores(model, x, y, 20.0)
    opposite = ip.grasp_opposite_scores(model, x, y, 20.0)
    absolute = get_method("grasp-abs").scorer(model, (x, y), temperature=20.0)
    assert all(torch.equal(opposite[k], -grasp[k]) for k in grasp)
    assert all(torch.equal(absolute[k], grasp[k].abs()) for k in grasp)


def test_prune_at_init_rejects_a_method_name_and_says_what_to_pass():
    with pytest.raises(ValueError, match="get_method"):
        ip.prune_at_init(tiny_vgg(), "obd", 0.5, vgg_batch())
    with pytest.raises(ValueError, match="chunk_size"):
        ip.snip_scores(tiny_mlp(), *mlp_batch(), chunk_size=0)
    with pytest.raises(ValueError, match="temperature"):
        ip.grasp_scores(tiny_mlp(), *mlp_batch(), temperature=0.0)


def test_layer_collapse_names_the_empty_layer():
    model = tiny_vgg()
    masks = {k: torch.ones_like(w, dtype=torch.bool) for k, w in mp.prunable(model).items()}
    masks["features.4.weight"][:] = False
    masks["classifier.weight"][0] = False
    assert ip.layer_collapse(masks) == ["features.4.weight"]
    densities = ip.layer_densities(masks)
    assert densities["features.4.weight"] == 0.0 and densities["features.0.weight"] == 1.0
    assert densities["classifier.weight"] == pytest.approx(2 / 3)
    mp.apply_masks(model, masks)
    assert ip.layer_collapse(model) == ["features.4.weight"]
    assert ip.layer_densities(model) == pytest.approx(densities)


def test_prune_at_init_warns_when_magnitude_at_init_empties_a_tiny_layer():
    model = tiny_vgg()
    with torch.no_grad():
        model.classifier.weight.mul_(1e-3)  # smallest init scale: removed first
    with pytest.warns(UserWarning, match=r"layer collapse.*classifier\.weight"):
        masks = ip.prune_at_init(model, get_method("magnitude-global").scorer, 0.5, None)
    assert ip.layer_collapse(masks) == ["classifier.weight"]
    assert ip.layer_collapse(model) == ["classifier.weight"]


@pytest.mark.parametrize("method", ["snip", "grasp"])
def test_prune_at_init_scores_a_class_balanced_batch(method):
    counts = [30, 9, 17]  # unbalanced classes
    y = torch.cat([torch.full((c,), k) for k, c in enumerate(counts)])
    x = torch.randn(len(y), 1, 40, generator=torch.Generator().manual_seed(0))
    x[:, 0, 0] = y.float()  # the label is readable from the input
    seen = []
    model = tiny_vgg()
    model.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0][:, 0, 0].clone()))
    ip.prune_at_init(
        model, get_method(method).scorer, 0.5, TensorDataset(x, y), per_class=4, seed=1
    )
    labels = seen[0].round().long()  # first forward: the whole scoring batch
    assert labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert torch.equal(seen[0], mp.class_balanced_batch(TensorDataset(x, y), 4, 1)[0][:, 0, 0])


def test_scores_of_an_already_masked_model_are_zero_where_pruned():
    model, (x, y) = tiny_mlp(), mlp_batch()
    masks = mp.masks_from_scores(mp.magnitude_scores(model), 0.5)
    mp.apply_masks(model, masks)
    for scorer in (ip.grasp_scores, ip.snip_scores):
        scores = scorer(model, x, y)
        assert all((scores[k][~masks[k]] == 0).all() for k in masks)
        assert all((scores[k][masks[k]] != 0).any() for k in masks)


def test_shuffle_masks_keeps_every_layer_density_and_moves_weights():
    g = torch.Generator().manual_seed(0)
    masks = {"a": torch.rand(20, 30, generator=g) < 0.1, "b": torch.rand(50, generator=g) < 0.5}
    shuffled = ip.shuffle_masks(masks, seed=1)
    for name, mask in masks.items():
        assert shuffled[name].shape == mask.shape and shuffled[name].dtype == torch.bool
        assert int(shuffled[name].sum()) == int(mask.sum())
    assert not torch.equal(shuffled["a"], masks["a"])
    again = ip.shuffle_masks(masks, seed=1)
    assert all(torch.equal(again[k], shuffled[k]) for k in masks)
    assert not torch.equal(ip.shuffle_masks(masks, seed=2)["a"], shuffled["a"])


def test_grasp_paper_init_matches_the_papers_code_and_xavier_copy_leaves_the_original():
    from minipruner.methods.init_pruning import grasp_paper_init, xavier_linear_copy

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 64, 3, bias=True),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64 * 6 * 6, 512),
        nn.Linear(512, 10),
    )
    with torch.no_grad():
        net[1].weight.fill_(3.0)
    grasp_paper_init(net)
    conv, bn, fc1, fc2 = net[0], net[1], net[4], net[5]
    # Kaiming normal, fan-out: sd sqrt(2 / (3 * 3 * 64)); linear: sd 0.01; biases 0; BN 1/0
    assert conv.weight.std().item() == pytest.approx((2 / (9 * 64)) ** 0.5, rel=0.05)
    assert fc1.weight.std().item() == pytest.approx(0.01, rel=0.02)
    assert all(float(m.bias.abs().max()) == 0 for m in (conv, fc1, fc2, bn))
    assert bool((bn.weight == 1).all())
    before = {n: w.clone() for n, w in mp.prunable(net).items()}
    twin = xavier_linear_copy(net)
    for name, w in mp.prunable(net).items():
        assert torch.equal(w, before[name])  # the original is untouched
    assert torch.equal(twin[0].weight, conv.weight)  # convolutions are not redrawn
    xavier_sd = (2 / (64 * 6 * 6 + 512)) ** 0.5
    assert twin[4].weight.std().item() == pytest.approx(xavier_sd, rel=0.02)


def test_full_scale_uses_the_grasp_papers_initialisation():
    from minipruner.book.chapters import init_pruning as chapter

    full, quick = chapter.settings("full"), chapter.settings("quick")
    assert full["init"] == "grasp" and full["grasp_reinit_linear"] is True
    assert quick["init"] == "pytorch" and quick["grasp_reinit_linear"] is False


def test_under_the_grasp_papers_init_magnitude_at_init_empties_the_classifier_first():
    # why the full scale's initialisation matters (chapter 3, §3.6): with PyTorch's default
    # a convolution of VGG-19 empties first at 98 %, with the GraSP code's the linear layer
    from minipruner.methods.init_pruning import grasp_paper_init

    torch.manual_seed(0)
    net = mp.get_model("vgg19")
    default = mp.masks_from_scores(mp.magnitude_scores(net), 0.98)
    assert default["classifier.weight"].any() and not all(m.any() for m in default.values())
    paper = mp.masks_from_scores(mp.magnitude_scores(grasp_paper_init(net)), 0.98)
    assert not paper["classifier.weight"].any()
    assert all(m.any() for n, m in paper.items() if n != "classifier.weight")
