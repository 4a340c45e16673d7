"""The networks the book prunes, written from their papers' definitions.

Every model

* registers its submodules in the order they run, so ``named_modules()`` (and therefore
  ``named_parameters()``) lists layers in forward order, and
* has an ``input_shape`` attribute: the shape of one example without the batch dimension,
  so ``torch.zeros(2, *model.input_shape)`` is a valid input.

Contents: MLPs (LeNet-300-100, LAP's FCN, CBS's MLPNet), Conv-6, CIFAR VGG, the CIFAR
ResNet of He et al. (2016) and the Wide ResNet of Zagoruyko & Komodakis (2016), plus a
name -> constructor registry, :data:`MODELS`, and :func:`get_model`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MLP",
    "LeNet300100",
    "FCN",
    "MLPNet",
    "Conv6",
    "VGG",
    "VGG_CONFIGS",
    "vgg11",
    "vgg16",
    "vgg19",
    "ResNetCIFAR",
    "resnet20",
    "resnet32",
    "WideResNet",
    "MODELS",
    "get_model",
]

MNIST_SHAPE = (1, 28, 28)
CIFAR_SHAPE = (3, 32, 32)
MNIST1D_LENGTH = 40


def _layers(dim: int) -> tuple[type[nn.Module], type[nn.Module], type[nn.Module], type[nn.Module]]:
    """Conv, BatchNorm, MaxPool and AdaptiveAvgPool classes for 1-D or 2-D inputs."""
    if dim == 1:
        return nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AdaptiveAvgPool1d
    if dim == 2:
        return nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d
    raise ValueError(f"dim must be 1 or 2, got {dim}")


def _input_shape(input_shape: Sequence[int] | None, in_channels: int, dim: int) -> tuple[int, ...]:
    """Check ``input_shape`` against ``in_channels``/``dim``; default (C, 32, 32) or (C, 40)."""
    if input_shape is None:
        return (in_channels, 32, 32) if dim == 2 else (in_channels, MNIST1D_LENGTH)
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != dim + 1 or shape[0] != in_channels:
        raise ValueError(
            f"input_shape {shape} does not fit in_channels={in_channels}, dim={dim} "
            f"(expected (in_channels, *{dim} spatial sizes))"
        )
    return shape


def _scale(width: int, factor: float) -> int:
    """``width * factor`` rounded to an int, at least 1."""
    return max(1, int(round(width * factor)))


def _kaiming_init_convs(model: nn.Module) -> None:
    """He et al. (2015) normal init, std = sqrt(2 / (k^2 * out_channels)), for every conv."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


# --------------------------------------------------------------------------------------
# Multilayer perceptrons (MNIST)
# --------------------------------------------------------------------------------------


class MLP(nn.Module):
    """Fully connected ReLU network ``widths[0] -> widths[1] -> ... -> widths[-1]``.

    Layers: ``flatten``, then ``fc1, relu1, fc2, relu2, ..., fcL`` (no ReLU after the last
    one). Parameters: ``sum(w_i * w_{i+1})``, plus ``sum(w_{i+1})`` when ``bias``.
    Image batches are flattened first, so an MLP on MNIST takes (N, 1, 28, 28).

    ``input_shape`` defaults to (1, 28, 28) when ``widths[0] == 784``, else ``(widths[0],)``.
    """

    def __init__(
        self,
        widths: Sequence[int],
        bias: bool = True,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) < 2:
            raise ValueError(f"an MLP needs at least an input and an output width, got {widths}")
        if input_shape is None:
            input_shape = MNIST_SHAPE if widths[0] == 784 else (widths[0],)
        self.input_shape = tuple(input_shape)
        if torch.Size(self.input_shape).numel() != widths[0]:
            raise ValueError(f"input_shape {self.input_shape} does not have {widths[0]} features")
        self.widths = widths
        self.flatten = nn.Flatten()
        n_layers = len(widths) - 1
        for i in range(n_layers):
            self.add_module(f"fc{i + 1}", nn.Linear(widths[i], widths[i + 1], bias=bias))
            if i < n_layers - 1:
                self.add_module(f"relu{i + 1}", nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            x = layer(x)
        return x


class LeNet300100(MLP):
    """LeNet-300-100 (LeCun et al. 1998): 784-300-100-10 with biases and ReLU.

    266,610 parameters for MNIST (``784*300+300 + 300*100+100 + 100*10+10``).
    """

    def __init__(self, num_classes: int = 10, in_features: int = 784) -> None:
        super().__init__([in_features, 300, 100, num_classes], bias=True)


class FCN(MLP):
    """The FCN of lookahead pruning (Park et al. 2020): 784-500-500-500-500-10, biases, ReLU.

    1,149,010 parameters for MNIST (``784*500+500 + 3*(500*500+500) + 500*10+10``).
    """

    def __init__(self, num_classes: int = 10, in_features: int = 784) -> None:
        super().__init__([in_features, 500, 500, 500, 500, num_classes], bias=True)


class MLPNet(MLP):
    """MLPNet of the CBS paper (Yu et al. 2022): 784-40-20-10, no biases, ReLU.

    Exactly 32,360 weights for MNIST (``784*40 + 40*20 + 20*10``).
    """

    def __init__(self, num_classes: int = 10, in_features: int = 784) -> None:
        super().__init__([in_features, 40, 20, num_classes], bias=False)


# --------------------------------------------------------------------------------------
# Conv-6 and VGG (CIFAR-10)
# --------------------------------------------------------------------------------------


class Conv6(nn.Module):
    """Conv-6 of the lottery-ticket paper (Frankle & Carbin 2019), used by LAP, for 32x32 input.

    ``features``: conv3x3 (padding 1) 64, 64, maxpool, 128, 128, maxpool, 256, 256, maxpool,
    each conv followed by ReLU; ``flatten``; ``classifier``: FC 4096 -> 256 -> 256 -> 10 with
    ReLU between. Biases everywhere. For CIFAR-10: 1,144,512 conv weights and 1,116,672 FC
    weights (2,261,184 weights; 2,262,602 parameters with biases).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.input_shape = (in_channels, 32, 32)
        layers: list[nn.Module] = []
        c_in = in_channels
        for c_out in (64, 64, "M", 128, 128, "M", 256, 256, "M"):
            if c_out == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]
                c_in = c_out
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Linear(256 * 4 * 4, 256),
            nn.ReLU(),
            nn.Linear(256, 256),
            nn.ReLU(),
            nn.Linear(256, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.features(x)))


VGG_CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M"]
    + [512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M"]
    + [512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
"""Simonyan & Zisserman (2015) conv stacks: ints are conv widths, "M" a 2x max-pool."""


class VGG(nn.Module):
    """CIFAR-style VGG: the conv stack ``cfg``, global average pool, one linear classifier.

    ``features``: for each int c in ``cfg`` a conv3x3 (padding 1) to c channels, then (if
    ``batchnorm``) BatchNorm, then ReLU; for each "M" a max-pool of 2. Convs have no bias
    when ``batchnorm`` (BN supplies the shift). Then ``pool`` (adaptive average to size 1),
    ``flatten`` and ``classifier`` = Linear(last width, num_classes).

    Parameters: ``sum(9 * c_in * c_out)`` over convs (3 per conv when ``dim=1``), plus
    ``2 * c_out`` per BN (or ``c_out`` conv bias without BN), plus ``(last+1) * num_classes``.
    VGG-16 with BN on CIFAR-10 has 14,724,042; VGG-19 20,035,018 (Frankle & Carbin: 20.0M).

    ``dim=1`` uses Conv1d/BatchNorm1d/MaxPool1d, e.g. for MNIST-1D with input_shape (1, 40).
    ``input_shape`` defaults to (in_channels, 32, 32), or (in_channels, 40) when ``dim=1``.
    """

    def __init__(
        self,
        cfg: Sequence[int | str],
        num_classes: int = 10,
        in_channels: int = 3,
        batchnorm: bool = True,
        input_shape: Sequence[int] | None = None,
        dim: int = 2,
    ) -> None:
        super().__init__()
        conv, norm, maxpool, avgpool = _layers(dim)
        self.input_shape = _input_shape(input_shape, in_channels, dim)
        layers: list[nn.Module] = []
        c_in = in_channels
        for item in cfg:
            if item == "M":
                layers.append(maxpool(2))
                continue
            c_out = int(item)
            layers.append(conv(c_in, c_out, 3, padding=1, bias=not batchnorm))
            if batchnorm:
                layers.append(norm(c_out))
            layers.append(nn.ReLU())
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = avgpool(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))


def _vgg(name: str, num_classes: int, width: float, **kwargs: Any) -> VGG:
    cfg = [c if c == "M" else _scale(int(c), width) for c in VGG_CONFIGS[name]]
    return VGG(cfg, num_classes=num_classes, **kwargs)


def vgg11(num_classes: int = 10, width: float = 1.0, **kwargs: Any) -> VGG:
    """VGG-11 (8 convs, 64..512 channels times ``width``); 9.23M parameters at width 1.

    Further keyword arguments (``in_channels``, ``batchnorm``, ``input_shape``, ``dim``)
    go to :class:`VGG`.
    """
    return _vgg("vgg11", num_classes, width, **kwargs)


def vgg16(num_classes: int = 10, width: float = 1.0, **kwargs: Any) -> VGG:
    """VGG-16 (13 convs, 64..512 channels times ``width``); 14.7M parameters at width 1."""
    return _vgg("vgg16", num_classes, width, **kwargs)


def vgg19(num_classes: int = 10, width: float = 1.0, **kwargs: Any) -> VGG:
    """VGG-19 (16 convs, 64..512 channels times ``width``); 20.0M parameters at width 1."""
    return _vgg("vgg19", num_classes, width, **kwargs)


# --------------------------------------------------------------------------------------
# CIFAR ResNet (He et al. 2016, section 4.2)
# --------------------------------------------------------------------------------------


class PadShortcut(nn.Module):
    """Parameter-free "option A" shortcut: subsample by ``stride``, append zero channels."""

    def __init__(self, stride: int, extra_channels: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


class BasicBlock(nn.Module):
    """ResNet basic block: conv3x3-BN-ReLU-conv3x3-BN, plus shortcut, then ReLU.

    The shortcut is the identity, or :class:`PadShortcut` when the shape changes.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = PadShortcut(stride, out_channels - in_channels)
        else:
            self.shortcut = nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNetCIFAR(nn.Module):
    """The CIFAR-10 ResNet of He et al. (2016): depth = 6n + 2.

    ``conv1`` (3x3, 16w channels) - ``bn1`` - ``relu``; ``layer1..3``: n basic blocks each
    with 16w, 32w, 64w channels (w = ``width``), the first block of layers 2 and 3 with
    stride 2; then ``pool`` (global average), ``flatten``, ``fc``. Shortcuts are option A
    (parameter-free), so ResNet-20 has 269,722 parameters (paper: 0.27M), ResNet-32 464,154
    (0.46M), ResNet-56 0.85M. Convs get He-normal (fan-out) init as in the paper.
    """

    def __init__(self, depth: int, width: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(
                f"CIFAR ResNet depth must be 6n+2 with n >= 1 (20, 32, ...), got {depth}"
            )
        n = (depth - 2) // 6
        widths = [16 * width, 32 * width, 64 * width]
        self.input_shape = CIFAR_SHAPE
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        c_in = widths[0]
        for i, c_out in enumerate(widths):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(c_in, c_out, stride))
                c_in = c_out
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c_in, num_classes)
        _kaiming_init_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.flatten(self.pool(x)))


def resnet20(width: int = 1, num_classes: int = 10) -> ResNetCIFAR:
    """ResNet-20 (n = 3): 0.27M parameters at width 1."""
    return ResNetCIFAR(20, width=width, num_classes=num_classes)


def resnet32(width: int = 1, num_classes: int = 10) -> ResNetCIFAR:
    """ResNet-32 (n = 5): 0.46M parameters at width 1."""
    return ResNetCIFAR(32, width=width, num_classes=num_classes)


# --------------------------------------------------------------------------------------
# Wide ResNet (Zagoruyko & Komodakis 2016)
# --------------------------------------------------------------------------------------


class WideBlock(nn.Module):
    """Pre-activation basic block of a WRN.

    ``bn1 - relu1 - conv1`` (3x3, in -> interior, stride) ``- bn2 - relu2 - conv2``
    (3x3, interior -> out), added to the shortcut: the input itself, or, when the shape
    changes, ``shortcut`` (1x1 conv, stride) applied to ``relu1(bn1(x))``.
    ``conv1 -> bn2 -> relu2 -> conv2`` is the chain that structured pruning shrinks.
    """

    def __init__(
        self, in_channels: int, interior: int, out_channels: int, stride: int, dim: int
    ) -> None:
        super().__init__()
        conv, norm, _, _ = _layers(dim)
        self.bn1 = norm(in_channels)
        self.relu1 = nn.ReLU()
        self.conv1 = conv(in_channels, interior, 3, stride, padding=1, bias=False)
        self.bn2 = norm(interior)
        self.relu2 = nn.ReLU()
        self.conv2 = conv(interior, out_channels, 3, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = conv(in_channels, out_channels, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.relu1(self.bn1(x))
        y = self.conv2(self.relu2(self.bn2(self.conv1(o))))
        return y + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(nn.Module):
    """WRN-d-k of Zagoruyko & Komodakis (2016): depth d = 6n + 4, widening factor k.

    ``conv`` (3x3, 16 channels); ``block1..3``: n :class:`WideBlock` each with output
    widths 16k, 32k, 64k and strides 1, 2, 2; then ``bn - relu - pool - flatten - fc``.
    Parameters (CIFAR-10): WRN-40-2 2.24M, WRN-16-8 10.96M, WRN-28-10 36.48M
    (paper: 2.2M, 11.0M, 36.5M). Convs get He-normal (fan-out) init; no dropout.

    Block interiors (the output width of each block's ``conv1`` = input of its ``conv2``)
    can be shrunk to build the reduced and "pruned architecture" networks of Crowley et al.
    (2019): ``interior`` multiplies the block's output width (``int(round(out * interior))``,
    at least 1); it is one float for all blocks or a list with one per block (3n entries).
    ``interior_widths`` instead gives each block's interior width explicitly (3n ints) and
    may not be combined with a non-default ``interior``.

    ``dim=1`` builds the 1-D version (Conv1d, BatchNorm1d) for MNIST-1D. ``input_shape``
    defaults to (in_channels, 32, 32), or (in_channels, 40) when ``dim=1``.
    """

    def __init__(
        self,
        depth: int,
        widen: int,
        num_classes: int = 10,
        interior: float | Sequence[float] = 1.0,
        in_channels: int = 3,
        dim: int = 2,
        input_shape: Sequence[int] | None = None,
        interior_widths: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(
                f"WRN depth must be 6n+4 with n >= 1 (10, 16, 28, 40, ...), got {depth}"
            )
        conv, norm, _, avgpool = _layers(dim)
        self.input_shape = _input_shape(input_shape, in_channels, dim)
        n = (depth - 4) // 6
        outs = [w * widen for w in (16, 32, 64) for _ in range(n)]
        self.interior_widths = self._interior_widths(outs, interior, interior_widths)

        self.conv = conv(in_channels, 16, 3, padding=1, bias=False)
        c_in, k = 16, 0
        for g in range(3):
            blocks = []
            for j in range(n):
                stride = 2 if (g > 0 and j == 0) else 1
                blocks.append(WideBlock(c_in, self.interior_widths[k], outs[k], stride, dim))
                c_in, k = outs[k], k + 1
            self.add_module(f"block{g + 1}", nn.Sequential(*blocks))
        self.bn = norm(c_in)
        self.relu = nn.ReLU()
        self.pool = avgpool(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c_in, num_classes)
        _kaiming_init_convs(self)

    @staticmethod
    def _interior_widths(
        outs: list[int],
        interior: float | Sequence[float],
        interior_widths: Sequence[int] | None,
    ) -> list[int]:
        """One interior width per block, from ``interior`` or ``interior_widths``."""
        n_blocks = len(outs)
        if interior_widths is not None:
            if not (isinstance(interior, (int, float)) and interior == 1.0):
                raise ValueError("give either interior or interior_widths, not both")
            widths = [int(w) for w in interior_widths]
            if len(widths) != n_blocks or min(widths) < 1:
                raise ValueError(
                    f"interior_widths needs {n_blocks} positive ints (one per block), "
                    f"got {list(interior_widths)}"
                )
            return widths
        if isinstance(interior, (int, float)):
            factors = [float(interior)] * n_blocks
        else:
            factors = [float(f) for f in interior]
            if len(factors) != n_blocks:
                raise ValueError(
                    f"interior needs {n_blocks} multipliers (one per block), got {len(factors)}"
                )
        return [_scale(out, f) for out, f in zip(outs, factors, strict=True)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(self.conv(x))))
        return self.fc(self.flatten(self.pool(self.relu(self.bn(x)))))


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------

MODELS: dict[str, Callable[..., nn.Module]] = {
    "lenet300100": LeNet300100,
    "fcn": FCN,
    "mlpnet": MLPNet,
    "conv6": Conv6,
    "vgg11": vgg11,
    "vgg16": vgg16,
    "vgg19": vgg19,
    "resnet20": resnet20,
    "resnet32": resnet32,
    "wrn": WideResNet,
}
"""Model name -> constructor. ``"wrn"`` needs ``depth`` and ``widen``."""


def get_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the model registered as ``name`` in :data:`MODELS` with keyword arguments ``kwargs``.

    Raises ``ValueError`` naming the unknown model and listing the valid names.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODELS)}")
    return MODELS[name](**kwargs)
