"""Tests for minipruner.core.models: parameter counts (paper and exact), shapes, layer order."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch
from torch import nn

from minipruner.core.models import (
    FCN,
    MODELS,
    VGG,
    VGG_CONFIGS,
    Conv6,
    LeNet300100,
    MLPNet,
    ResNetCIFAR,
    WideResNet,
    get_model,
    resnet20,
    resnet32,
    vgg11,
    vgg16,
    vgg19,
)

CONVS = (nn.Conv1d, nn.Conv2d)


# ---- independent parameter counts, from layer widths only --------------------------------


def linear(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def conv(c_in: int, c_out: int, kernel: int, bias: bool = False) -> int:
    """``kernel`` = number of kernel taps (9 for 3x3, 3 for 1-D size 3, 1 for 1x1)."""
    return c_in * c_out * kernel + (c_out if bias else 0)


def bn(c: int) -> int:
    return 2 * c


def mlp_count(widths: list[int], bias: bool) -> int:
    return sum(linear(a, b, bias) for a, b in pairwise(widths))


def conv6_count(bias: bool = True) -> int:
    convs = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256)]
    fcs = [(256 * 4 * 4, 256), (256, 256), (256, 10)]
    return sum(conv(a, b, 9, bias) for a, b in convs) + sum(linear(a, b, bias) for a, b in fcs)


def vgg_count(cfg: list, in_ch: int = 3, classes: int = 10, bnorm: bool = True, k: int = 9) -> int:
    total, c_in = 0, in_ch
    for c in cfg:
        if c == "M":
            continue
        total += conv(c_in, c, k, bias=not bnorm) + (bn(c) if bnorm else 0)
        c_in = c
    return total + linear(c_in, classes)


def resnet_count(depth: int, width: int = 1) -> int:
    n = (depth - 2) // 6
    total = conv(3, 16 * width, 9) + bn(16 * width)
    c_in = 16 * width
    for c in (16 * width, 32 * width, 64 * width):
        for _ in range(n):  # option A shortcuts have no parameters
            total += conv(c_in, c, 9) + bn(c) + conv(c, c, 9) + bn(c)
            c_in = c
    return total + linear(c_in, 10)


def wrn_count(depth: int, k: int, interiors: list[int] | None = None, in_ch=3, taps=9) -> int:
    n = (depth - 4) // 6
    outs = [16 * k] * n + [32 * k] * n + [64 * k] * n
    interiors = outs if interiors is None else interiors
    total, c_in = conv(in_ch, 16, taps), 16
    for i, (mid, out) in enumerate(zip(interiors, outs, strict=True)):
        stride = 2 if i in (n, 2 * n) else 1
        total += bn(c_in) + conv(c_in, mid, taps) + bn(mid) + conv(mid, out, taps)
        if stride != 1 or c_in != out:
            total += conv(c_in, out, 1)
        c_in = out
    return total + bn(c_in) + linear(c_in, 10)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def on_meta(build):
    """Build without allocating memory: enough for counting parameters of big models."""
    with torch.device("meta"):
        return build()


# ---- parameter counts --------------------------------------------------------------------

# (builder, exact count from the definition, published count in millions, digits published)
# Sources: Frankle & Carbin 2019 Fig. 2 (LeNet-300-100 266K, VGG-19 20.0M); He et al. 2016
# Table 6 (ResNet-20 0.27M, ResNet-32 0.46M); Zagoruyko & Komodakis 2016 (WRN-40-2 2.2M,
# WRN-16-8 11.0M, WRN-28-10 36.5M); Simonyan & Zisserman conv stacks (VGG-11 9.2M, VGG-16
# 14.7M with a single classifier layer). FCN, MLPNet and Conv-6 totals are the ones their
# layer widths give (Conv-6's published 1.1M conv weights are checked separately).
COUNTS = {
    "lenet300100": (LeNet300100, mlp_count([784, 300, 100, 10], True), 0.27, 2),
    "fcn": (FCN, mlp_count([784, 500, 500, 500, 500, 10], True), 1.15, 2),
    "mlpnet": (MLPNet, mlp_count([784, 40, 20, 10], False), 0.03236, 5),
    "conv6": (Conv6, conv6_count(), 2.26, 2),
    "vgg11": (vgg11, vgg_count(VGG_CONFIGS["vgg11"]), 9.2, 1),
    "vgg16": (vgg16, vgg_count(VGG_CONFIGS["vgg16"]), 14.7, 1),
    "vgg19": (vgg19, vgg_count(VGG_CONFIGS["vgg19"]), 20.0, 1),
    "resnet20": (resnet20, resnet_count(20), 0.27, 2),
    "resnet32": (resnet32, resnet_count(32), 0.46, 2),
    "wrn-40-2": (lambda: WideResNet(40, 2), wrn_count(40, 2), 2.2, 1),
    "wrn-16-8": (lambda: WideResNet(16, 8), wrn_count(16, 8), 11.0, 1),
    "wrn-28-10": (lambda: WideResNet(28, 10), wrn_count(28, 10), 36.5, 1),
}


@pytest.mark.parametrize("name", COUNTS)
def test_parameter_count(name):
    build, exact, paper_m, digits = COUNTS[name]
    count = n_params(on_meta(build))
    assert count == exact
    assert round(count / 1e6, digits) == pytest.approx(paper_m)


def test_stated_exact_counts():
    assert mlp_count([784, 300, 100, 10], True) == 266_610
    assert mlp_count([784, 500, 500, 500, 500, 10], True) == 1_149_010
    assert mlp_count([784, 40, 20, 10], False) == 32_360
    assert n_params(MLPNet()) == 32_360
    assert all(m.bias is None for m in MLPNet().modules() if isinstance(m, nn.Linear))


def test_conv6_weights():
    model = Conv6()
    conv_w = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))
    fc_w = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    assert round(conv_w / 1e6, 1) == 1.1  # Frankle & Carbin (2019), Fig. 2: 1.1M conv weights
    assert conv_w == 9 * (3 * 64 + 64 * 64 + 64 * 128 + 128 * 128 + 128 * 256 + 256 * 256)
    assert fc_w == 4096 * 256 + 256 * 256 + 256 * 10
    assert conv_w + fc_w == 2_261_184


def test_vgg_without_batchnorm_has_conv_biases():
    cfg = [8, "M", 16]
    model = VGG(cfg, batchnorm=False)
    assert n_params(model) == vgg_count(cfg, bnorm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))
    assert all(m.bias is None for m in VGG(cfg).modules() if isinstance(m, nn.Conv2d))


def test_vgg_width_scales_channels():
    model = vgg11(width=0.5)
    widths = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert widths == [32, 64, 128, 128, 256, 256, 256, 256]
    tiny = vgg11(width=1e-3)
    assert all(m.out_channels == 1 for m in tiny.modules() if isinstance(m, nn.Conv2d))
    assert n_params(on_meta(lambda: vgg16(width=0.25))) == vgg_count(
        [c if c == "M" else c // 4 for c in VGG_CONFIGS["vgg16"]]
    )


def test_resnet_width():
    assert n_params(on_meta(lambda: ResNetCIFAR(20, width=2))) == resnet_count(20, 2)


# ---- forward pass and layer order --------------------------------------------------------

SMALL = {
    "lenet300100": LeNet300100,
    "fcn": FCN,
    "mlpnet": MLPNet,
    "conv6": Conv6,
    "vgg11-narrow": lambda: vgg11(width=0.25),
    "resnet20": resnet20,
    "wrn-10-1": lambda: WideResNet(10, 1),
    "wrn-16-2": lambda: WideResNet(16, 2),
    "wrn-16-2-reduced": lambda: WideResNet(16, 2, interior=0.25),
    "vgg-1d": lambda: VGG([8, "M", 16, "M", 32], in_channels=1, dim=1),
    "vgg11-1d": lambda: vgg11(width=0.125, in_channels=1, dim=1, input_shape=(1, 40)),
    "wrn-16-2-1d": lambda: WideResNet(16, 2, in_channels=1, dim=1, input_shape=(1, 40)),
}


@pytest.mark.parametrize("name", SMALL)
def test_forward_shape(name):
    torch.manual_seed(0)
    model = SMALL[name]().eval()
    x = torch.randn(3, *model.input_shape)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (3, 10)
    assert torch.isfinite(y).all()


def test_input_shapes():
    for mlp in (LeNet300100(), FCN(), MLPNet()):
        assert mlp.input_shape == (1, 28, 28)
    assert LeNet300100(in_features=40).input_shape == (40,)
    assert Conv6().input_shape == (3, 32, 32)
    assert Conv6(in_channels=1).input_shape == (1, 32, 32)
    assert resnet20().input_shape == (3, 32, 32)
    assert VGG([4], in_channels=1, dim=1).input_shape == (1, 40)
    assert WideResNet(10, 1, in_channels=1, dim=1).input_shape == (1, 40)
    with pytest.raises(ValueError):
        WideResNet(10, 1, dim=1, input_shape=(3, 32, 32))
    with pytest.raises(ValueError):
        VGG([4], dim=3)


def test_mlp_accepts_flat_and_image_batches():
    model = LeNet300100().eval()
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(model(x), model(x.flatten(1)))


@pytest.mark.parametrize("name", SMALL)
def test_registration_order_is_execution_order(name):
    model = SMALL[name]().eval()
    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]
    calls: list[str] = []
    handles = [m.register_forward_hook(lambda *_, n=n: calls.append(n)) for n, m in leaves]
    with torch.no_grad():
        model(torch.zeros(2, *model.input_shape))
    for h in handles:
        h.remove()
    assert calls == [n for n, _ in leaves]  # every leaf runs once, in registration order
    weighted = [n for n, m in leaves if isinstance(m, (nn.Linear, *CONVS))]
    assert [n for n in calls if n in weighted] == weighted
    names = [n.rsplit(".", 1)[0] for n, _ in model.named_parameters() if n.endswith("weight")]
    assert [n for n in names if n in weighted] == weighted


# ---- Wide ResNet interiors ---------------------------------------------------------------

INTERIOR = ("conv1.weight", "bn2.weight", "bn2.bias", "conv2.weight")
INTERIOR_BUFFERS = ("bn2.running_mean", "bn2.running_var")


def shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {n: tuple(t.shape) for n, t in model.state_dict().items()}


def blocks(model: WideResNet):
    return [m for g in (model.block1, model.block2, model.block3) for m in g]


def check_interiors(model: WideResNet, expected: list[int], depth: int = 16, k: int = 2):
    base = shapes(WideResNet(depth, k))
    new = shapes(model)
    assert base.keys() == new.keys()
    changed = {n for n in base if base[n] != new[n]}
    assert all(n.endswith(INTERIOR + INTERIOR_BUFFERS) for n in changed)
    for block, mid in zip(blocks(model), expected, strict=True):
        assert block.conv1.out_channels == mid
        assert block.bn2.num_features == mid
        assert block.conv2.in_channels == mid
    assert model.interior_widths == expected
    assert n_params(model) == wrn_count(depth, k, expected)
    model.eval()
    with torch.no_grad():
        assert model(torch.zeros(2, *model.input_shape)).shape == (2, 10)


def test_wrn_interior_multiplier():
    model = WideResNet(16, 2, interior=0.5)
    check_interiors(model, [16, 16, 32, 32, 64, 64])
    base = WideResNet(16, 2)
    for b, r in zip(blocks(base), blocks(model), strict=True):
        assert r.conv1.in_channels == b.conv1.in_channels
        assert r.conv2.out_channels == b.conv2.out_channels
        assert (r.shortcut is None) == (b.shortcut is None)
    assert WideResNet(16, 2, interior=1e-3).interior_widths == [1] * 6
    assert WideResNet(16, 2, interior=0.3).interior_widths == [10, 10, 19, 19, 38, 38]


def test_wrn_interior_per_block():
    model = WideResNet(16, 2, interior=[1.0, 0.5, 0.25, 1.0, 0.125, 0.5])
    check_interiors(model, [32, 16, 16, 64, 16, 64])


def test_wrn_interior_widths():
    widths = [3, 7, 11, 5, 2, 100]
    check_interiors(WideResNet(16, 2, interior_widths=widths), widths)
    full = WideResNet(16, 2, interior_widths=[32, 32, 64, 64, 128, 128])
    assert shapes(full) == shapes(WideResNet(16, 2))


def test_wrn_interior_widths_1d():
    model = WideResNet(10, 2, in_channels=1, dim=1, interior_widths=[5, 6, 7])
    assert n_params(model) == wrn_count(10, 2, [5, 6, 7], in_ch=1, taps=3)
    assert all(isinstance(m, nn.Conv1d) for m in model.modules() if isinstance(m, CONVS))
    assert model(torch.zeros(4, 1, 40)).shape == (4, 10)


def test_wrn_bad_arguments():
    with pytest.raises(ValueError, match="6n\\+4"):
        WideResNet(15, 2)
    with pytest.raises(ValueError, match="6 multipliers"):
        WideResNet(16, 2, interior=[0.5] * 5)
    with pytest.raises(ValueError, match="interior_widths"):
        WideResNet(16, 2, interior_widths=[4] * 7)
    with pytest.raises(ValueError, match="interior_widths"):
        WideResNet(16, 2, interior_widths=[4, 4, 4, 4, 4, 0])
    with pytest.raises(ValueError, match="not both"):
        WideResNet(16, 2, interior=0.5, interior_widths=[4] * 6)


def test_one_d_variants():
    x = torch.randn(5, 1, 40)
    for model in (VGG([8, "M", 16], in_channels=1, dim=1), WideResNet(10, 1, in_channels=1, dim=1)):
        assert not any(isinstance(m, nn.Conv2d) for m in model.modules())
        assert model.eval()(x).shape[0] == 5
    model = VGG([8, "M", 16], num_classes=4, in_channels=1, dim=1)
    assert n_params(model) == vgg_count([8, "M", 16], in_ch=1, classes=4, k=3)


# ---- ResNet details, registry ------------------------------------------------------------


@pytest.mark.parametrize("depth", [0, 2, 19, 21, 28])
def test_resnet_bad_depth(depth):
    with pytest.raises(ValueError, match="6n\\+2"):
        ResNetCIFAR(depth)


def test_resnet_option_a_shortcut():
    model = resnet20()
    assert not any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) for m in model.modules())
    block = model.layer2[0]
    x = torch.randn(2, 16, 8, 8)
    s = block.shortcut(x)
    assert s.shape == (2, 32, 4, 4)
    torch.testing.assert_close(s[:, :16], x[:, :, ::2, ::2])
    assert (s[:, 16:] == 0).all()


def test_registry_names():
    assert set(MODELS) == {
        "lenet300100", "fcn", "mlpnet", "conv6", "vgg11", "vgg16", "vgg19",
        "resnet20", "resnet32", "wrn",
    }  # fmt: skip


@pytest.mark.parametrize("name", sorted(MODELS))
def test_get_model_builds(name):
    kwargs = {"depth": 16, "widen": 2} if name == "wrn" else {}
    model = on_meta(lambda: get_model(name, num_classes=7, **kwargs))
    assert isinstance(model, nn.Module)
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    assert last.out_features == 7
    assert hasattr(model, "input_shape")


def test_get_model_unknown_name():
    with pytest.raises(ValueError) as info:
        get_model("resnet18")
    message = str(info.value)
    assert "resnet18" in message
    assert all(name in message for name in MODELS)
