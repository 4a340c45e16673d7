"""Chapter 5 (minipruner.methods.structured): which chains are prunable, physical compression
against the masked model, Fisher saliency against finite differences, L1 with absolute values,
prune-and-fine-tune removing one channel every K steps, reduced networks, latency, and bad
inputs."""

import pytest
import torch
from conftest import seeded_wrn
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import TensorDataset

from minipruner.core.models import MLP, ResNetCIFAR, WideResNet
from minipruner.methods import structured as st

DT = torch.float64


def resnet() -> nn.Module:
    torch.manual_seed(0)
    model = ResNetCIFAR(8)
    model.input_shape = (3, 8, 8)
    return model


def sequential() -> nn.Module:
    """Two overlapping chains (0,1,2,[3],4) and (4,5,6,7); conv 4 is in both."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, bias=True),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 4, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 5),
    )
    model.input_shape = (3, 8, 8)
    return model


def randomise(model: nn.Module, seed: int) -> nn.Module:
    """Random BN statistics and affine parameters, so that channel removal is really tested."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g))
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.weight.copy_(torch.randn(c, generator=g))
                m.bias.copy_(torch.randn(c, generator=g))
    return model


def random_masks(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Random keep-masks; the first chain keeps exactly one channel."""
    g = torch.Generator().manual_seed(seed)
    masks = {}
    for i, (key, m) in enumerate(st.channel_masks(model).items()):
        c = m.numel()
        keep = 1 if i == 0 else int(torch.randint(1, c + 1, (1,), generator=g))
        mask = torch.zeros(c, dtype=torch.bool)
        mask[torch.randperm(c, generator=g)[:keep]] = True
        masks[key] = mask
    return masks


# ----------------------------------------------------------------------- prunable chains


def test_wrn_chains_are_block_interiors_only():
    model = seeded_wrn(1, depth=16)
    chains = st.prunable_channels(model)
    assert [c.block for c in chains] == [f"block{g}.{j}" for g in (1, 2, 3) for j in (0, 1)]
    assert chains[0] == st.Chain(
        "block1.0", "block1.0.conv1", "block1.0.bn2", "block1.0.conv2", "block1.0.relu2"
    )
    names = {n for c in chains for n in c}
    assert not any("shortcut" in n for n in names) and "conv" not in names


def test_sequential_chains_and_non_chains():
    keys = list(st.channel_masks(sequential()))
    assert keys == ["0", "4"]
    grouped = nn.Sequential(
        nn.Conv2d(4, 4, 3, groups=2), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1)
    )
    linear_next = nn.Sequential(nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    for model in (grouped, linear_next, MLP([4, 3, 2])):
        with pytest.raises(ValueError, match="no prunable channel chain"):
            st.prunable_channels(model)


def test_gates_keep_outputs_and_masks_round_trip():
    model = randomise(seeded_wrn(2), 1).eval()
    x = torch.randn(3, *model.input_shape)
    before = model(x)
    st.add_gates(model)
    st.add_gates(model)  # idempotent
    assert sum(isinstance(m, st.ChannelGate) for m in model.modules()) == 3
    torch.testing.assert_close(model(x), before, rtol=0, atol=0)
    masks = random_masks(model, 0)
    st.set_channel_masks(model, masks)
    assert all(torch.equal(st.channel_masks(model)[k], m) for k, m in masks.items())
    assert st.interior_widths(model) == [int(m.sum()) for m in masks.values()]


# ---------------------------------------------------------------------------- compress


@pytest.mark.parametrize(
    "build",
    [lambda: seeded_wrn(1, depth=16), lambda: seeded_wrn(2), resnet, sequential],
    ids=["wrn1d", "wrn2d", "resnet", "seq"],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_compress_preserves_outputs_and_shrinks_every_coupled_layer(build, seed):
    model = randomise(build(), seed).to(DT).eval()
    chains = st.prunable_channels(model)
    masks = random_masks(model, seed)
    st.set_channel_masks(model, masks)
    original = {k: v.clone() for k, v in model.state_dict().items()}
    small = st.compress(model)

    x = torch.randn(4, *model.input_shape, dtype=DT)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), rtol=1e-10, atol=1e-10)
    assert not any(isinstance(m, st.ChannelGate) for m in small.modules())
    into = {c.conv2: m.nonzero().squeeze(1) for c, m in zip(chains, masks.values(), strict=True)}
    for chain, mask in zip(chains, masks.values(), strict=True):
        keep, kept = mask.nonzero().squeeze(1), int(mask.sum())
        conv1, bn = small.get_submodule(chain.conv1), small.get_submodule(chain.bn)
        conv2 = small.get_submodule(chain.conv2)
        assert conv1.out_channels == kept and conv1.weight.shape[0] == kept
        assert bn.num_features == kept and bn.running_var.shape == (kept,)
        assert conv2.in_channels == kept and conv2.weight.shape[1] == kept
        expected = original[f"{chain.conv1}.weight"][keep]
        if chain.conv1 in into:  # also the previous chain's second conv (Sequential case)
            expected = expected[:, into[chain.conv1]]
        torch.testing.assert_close(conv1.weight, expected)
        torch.testing.assert_close(bn.running_mean, original[f"{chain.bn}.running_mean"][keep])
    # the masked model itself is unchanged
    assert all(torch.equal(v, original[k]) for k, v in model.state_dict().items())
    # everything outside the chains (the residual stream) is untouched
    coupled = {n for c in chains for n in (c.conv1, c.bn, c.act)}
    for k, v in small.state_dict().items():
        module = k.rpartition(".")[0]
        if module in coupled:
            continue
        if module in {c.conv2 for c in chains} and k.endswith("weight"):
            assert v.shape[0] == original[k].shape[0]  # output channels kept
            continue
        assert torch.equal(v, original[k]), k
    stats = st.compression_stats(model)
    assert stats.params_after == st.count_parameters(small) < stats.params_before
    assert stats.flops_after < stats.flops_before


def test_compress_matches_pruned_architecture_and_train_mode():
    model = randomise(seeded_wrn(1, depth=16), 3)
    st.set_channel_masks(model, random_masks(model, 3))
    small = st.compress(model)
    fresh = st.pruned_architecture(model, seed=0)
    assert isinstance(fresh, WideResNet)
    assert fresh.interior_widths == small.interior_widths == st.interior_widths(model)
    assert st.count_parameters(small) == st.count_parameters(fresh)
    assert {k: v.shape for k, v in small.state_dict().items()} == {
        k: v.shape for k, v in fresh.state_dict().items()
    }
    # batch norm is per channel, so the train-mode outputs agree as well
    x = torch.randn(6, *model.input_shape)
    torch.testing.assert_close(small.train()(x), model.train()(x), rtol=1e-5, atol=1e-5)
    # for other models: the compressed shapes, re-initialised
    seq = sequential()
    st.set_channel_masks(seq, random_masks(seq, 0))
    assert st.count_parameters(st.pruned_architecture(seq)) == st.count_parameters(st.compress(seq))


# ------------------------------------------------------------------------------ saliency


def test_fisher_gate_gradient_matches_finite_differences():
    model = randomise(seeded_wrn(1, depth=10, interior=0.25), 5).to(DT).eval()
    masks = random_masks(model, 5)
    masks["block1.0"][:] = True
    st.set_channel_masks(model, masks)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, *model.input_shape, generator=g, dtype=DT)
    y = torch.randint(0, 5, (4,), generator=g)
    grads = st.gate_gradients(model, x, y)
    gates = {c.block: model.get_submodule(c.act) for c in st.prunable_channels(model)}
    eps = 1e-6

    def losses() -> torch.Tensor:  # per-example losses L_n, not averaged
        with torch.no_grad():
            return nn.functional.cross_entropy(model(x), y, reduction="none")

    for key, gate in gates.items():
        assert grads[key].shape == (4, gate.channels)
        for k in range(gate.channels):
            if gate.mask[k] == 0:
                continue
            gate.mask[k] = 1 + eps
            up = losses()
            gate.mask[k] = 1 - eps
            down = losses()
            gate.mask[k] = 1
            torch.testing.assert_close(
                grads[key][:, k], (up - down) / (2 * eps), rtol=1e-6, atol=1e-8
            )

    sal = st.fisher_saliency(model, x, y)
    for key, s in sal.items():
        kept = masks[key]
        expected = grads[key].pow(2).sum(0) / (2 * len(x))  # 1/(2N) sum_n g_nk^2
        torch.testing.assert_close(s, expected)  # pruned channels too: no +inf sentinel
        assert torch.isfinite(s[~kept]).all()
    assert all(p.grad is None for p in model.parameters())


def test_fisher_accumulates_over_batches():
    model = randomise(seeded_wrn(1, interior=0.25), 2).eval()
    st.add_gates(model)
    x, y = torch.randn(10, 1, 12), torch.randint(0, 5, (10,))
    whole = st.gate_gradients(model, x, y)
    gates = {c.block: model.get_submodule(c.act) for c in st.prunable_channels(model)}
    assert all(g.fisher_count == 0 and not g.tracking for g in gates.values())  # undisturbed
    for gate in gates.values():
        gate.tracking = True
    for part in (slice(0, 3), slice(3, 10)):
        nn.functional.cross_entropy(model(x[part]), y[part], reduction="sum").backward()
    for key, gate in gates.items():
        assert gate.fisher_count == 10
        torch.testing.assert_close(gate.fisher_sum, whole[key].pow(2).sum(0))
        gate.reset_fisher()
        assert gate.fisher_count == 0 and not gate.fisher_sum.any()


def test_l1_uses_absolute_values():
    model = seeded_wrn(2, interior=0.25)
    chain = st.prunable_channels(model)[1]
    w = model.get_submodule(chain.conv1).weight
    with torch.no_grad():
        w.mul_(0.01)
        w[0] = -1.0  # large negative filter: signed sum lowest, L1 norm highest
    scores = st.l1_saliency(model)
    torch.testing.assert_close(scores[chain.block], w.detach().abs().flatten(1).sum(1))
    assert int(torch.argmax(scores[chain.block])) == 0
    removed = st.prune_lowest(model, scores, n=8)
    assert (chain.block, 0) not in removed
    assert st.channel_masks(model)[chain.block][0]


def test_prune_lowest_is_global_and_keeps_one_per_chain():
    model = seeded_wrn(1, interior=0.25)  # interior widths 4, 8, 16
    sal = {
        "block1.0": torch.tensor([0.0, 0.0, 0.0, 0.0]),
        "block2.0": torch.full((8,), 5.0),
        "block3.0": torch.arange(16.0) + 1,
    }
    removed = st.prune_lowest(model, sal, n=5)
    # three zeros of block1 (ties: lowest index first), never its last, then block3's lowest
    assert removed == [("block1.0", 0), ("block1.0", 1), ("block1.0", 2), ("block3.0", 0)] + [
        ("block3.0", 1)
    ]
    assert st.interior_widths(model) == [1, 8, 14]
    with pytest.raises(ValueError, match="NaN"):
        st.prune_lowest(model, {**sal, "block2.0": torch.full((8,), float("nan"))})


# ----------------------------------------------------------------- prune and fine-tune


@pytest.mark.parametrize("method", ["fisher", "l1"])
def test_prune_and_finetune_removes_one_channel_every_k_steps(method):
    model = seeded_wrn(1, interior=0.125)  # 2 + 4 + 8 = 14 interior channels, 11 removable
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(
        torch.randn(48, 1, 12, generator=g), torch.randint(0, 5, (48,), generator=g)
    )
    residual = {k: v.clone() for k, v in model.state_dict().items() if "shortcut" in k}
    n_prune = 11 if method == "fisher" else 4
    snaps = st.prune_and_finetune(
        model,
        data,
        prune_every=2,
        n_prune=n_prune,
        snapshots_at=[k / 14 for k in range(n_prune + 1)],
        method=method,
        batch_size=16,
        quiet=True,
        device="cpu",
    )
    assert [s.removed for s in snaps] == list(range(n_prune + 1))
    assert [s.step for s in snaps] == [2 * k for k in range(n_prune + 1)]
    for before, after in zip(snaps, snaps[1:], strict=False):
        diff = [a - b for a, b in zip(before.widths, after.widths, strict=True)]
        assert sorted(diff) == [0, 0, 1]  # exactly one channel, from one chain
    assert all(min(s.widths) >= 1 and sum(s.widths) == 14 - s.removed for s in snaps)
    if method == "fisher":
        assert snaps[-1].widths == [1, 1, 1]  # every block keeps its last channel
    last = snaps[-1]
    small = st.compress(last.model)
    assert st.count_parameters(small) == last.parameters
    assert small.interior_widths == last.widths == st.interior_widths(model)
    x = torch.randn(3, 1, 12)
    torch.testing.assert_close(small(x), last.model(x))
    # the residual stream keeps its shape (it is trained, never pruned)
    state = model.state_dict()
    assert all(state[k].shape == v.shape for k, v in residual.items())


def test_prune_and_finetune_bad_inputs():
    model = seeded_wrn(1, interior=0.25)
    data = TensorDataset(torch.randn(8, 1, 12), torch.randint(0, 5, (8,)))
    kw = {"quiet": True, "device": "cpu"}
    with pytest.raises(ValueError, match="method"):
        st.prune_and_finetune(model, data, n_prune=1, method="taylor", **kw)
    with pytest.raises(ValueError, match="n_prune"):
        st.prune_and_finetune(model, data, n_prune=26, **kw)
    with pytest.raises(ValueError, match="snapshots_at"):
        st.prune_and_finetune(model, data, n_prune=2, snapshots_at=[0.5], **kw)
    with pytest.raises(ValueError, match="n_prune or snapshots_at"):
        st.prune_and_finetune(model, data, **kw)
    with pytest.raises(ValueError, match="prune_every"):
        st.prune_and_finetune(model, data, n_prune=1, prune_every=0, **kw)
    with pytest.raises(ValueError, match="empty"):
        st.prune_and_finetune(
            model, TensorDataset(torch.zeros(0, 1, 12), torch.zeros(0)), n_prune=1, **kw
        )


def test_bad_masks_and_models_raise():
    model = seeded_wrn(1, interior=0.25)
    with pytest.raises(ValueError, match="keep at least one"):
        st.set_channel_masks(model, {"block1.0": torch.zeros(4, dtype=torch.bool)})
    with pytest.raises(ValueError, match="unknown chain"):
        st.set_channel_masks(model, {"block9.0": torch.ones(4, dtype=torch.bool)})
    with pytest.raises(ValueError, match="shape"):
        st.set_channel_masks(model, {"block1.0": torch.ones(5, dtype=torch.bool)})
    model.get_submodule("block1.0.relu2").mask[0] = 0.5
    with pytest.raises(ValueError, match="0/1"):
        st.compress(model)
    for fn in (st.compress, st.l1_saliency, st.add_gates):
        with pytest.raises(ValueError, match="no prunable"):
            fn(MLP([4, 3, 2]))


# --------------------------------------------------------- reduced networks and latency


def test_reduced_networks_and_matched_width():
    kw = {"dim": 1, "in_channels": 1, "input_shape": (1, 12), "num_classes": 5}
    half = st.reduced_wrn(16, 1, interior=0.5, **kw)
    assert half.interior_widths == [8, 8, 16, 16, 32, 32]
    assert st.wrn_parameters(16, 1, interior=0.5, **kw) == st.count_parameters(half)
    assert st.count_parameters(st.reduced_wrn(10, 1, **kw)) < st.count_parameters(
        st.reduced_wrn(16, 1, **kw)
    )
    target = st.count_parameters(half)
    f = st.matched_interior(16, 1, target, **kw)
    assert st.wrn_parameters(16, 1, interior=f, **kw) == target
    assert st.matched_interior(16, 1, 10**9, **kw) == 1.0


def test_measure_latency():
    model = seeded_wrn(1, interior=0.25).train()
    threads = torch.get_num_threads()
    t = st.measure_latency(model, batch_size=2, threads=1, warmup=1, repeats=3)
    assert 0 < t < 5
    assert torch.get_num_threads() == threads and model.training
    with pytest.raises(ValueError, match="repeats"):
        st.measure_latency(model, repeats=0)


def test_counts_and_timing_live_in_measure_and_stay_importable_here():
    from minipruner.core import experiment, measure

    for name in ("count_parameters", "count_flops", "measure_latency"):
        assert getattr(st, name) is getattr(measure, name)
    assert experiment.measure_cost is measure.measure_cost


def test_channels_and_architectures_live_in_their_own_modules_and_stay_importable_here():
    from minipruner.methods import architectures, channels

    for name in channels.__all__:
        assert getattr(st, name) is getattr(channels, name)
    for name in architectures.__all__:
        assert getattr(st, name) is getattr(architectures, name)
