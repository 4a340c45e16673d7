"""Channels as the unit of pruning (chapter 5): the interior channels of a residual block (or
of any ``Conv -> BatchNorm -> activation -> Conv`` chain), gates that switch them off, and
:func:`compress`, which removes closed channels physically.

A pruned channel is a :class:`ChannelGate`: it replaces the chain's activation module by
"activation, then multiply channel ``k`` by ``mask[k]``" (``a_k * m_k``, ``m_k`` 1 or 0).
Saliencies and the prune-and-fine-tune loop are in :mod:`minipruner.methods.structured`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..core.masks import effective_weight
from ..core.measure import count_flops, count_parameters
from ..core.models import BasicBlock, WideBlock, WideResNet

__all__ = [
    "Chain",
    "ChannelGate",
    "CompressionStats",
    "add_gates",
    "channel_masks",
    "compress",
    "compression_stats",
    "interior_widths",
    "prunable_channels",
    "set_channel_masks",
]

CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid)
# Parameter-free, channel-wise modules that may sit between the activation and the next conv.
CHANNELWISE = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.Identity,
)
# Residual blocks whose interior chain is known by attribute name: (conv1, bn, act, conv2).
BLOCK_CHAINS: dict[type[nn.Module], tuple[str, str, str, str]] = {
    WideBlock: ("conv1", "bn2", "relu2", "conv2"),
    BasicBlock: ("conv1", "bn1", "relu1", "conv2"),
}


# --------------------------------------------------------------------------------------
# Gates and prunable chains
# --------------------------------------------------------------------------------------


class ChannelGate(nn.Module):
    """An activation followed by a per-channel gate: ``out[:, k] = activation(x)[:, k] * mask[k]``.

    ``mask`` is a float buffer (1 = keep, 0 = pruned) saved in the state dict. While
    ``tracking`` is on, every backward pass through the gate records the per-example gate
    gradient ``g_nk = sum_p a_nkp * dL/dout_nkp`` (``a`` the activation, ``p`` the spatial
    positions) in ``last_gate_grad`` (N, C) and adds ``sum_n g_nk^2`` to ``fisher_sum`` and
    ``N`` to ``fisher_count``; :meth:`reset_fisher` clears both.
    """

    def __init__(self, channels: int, activation: nn.Module | None = None) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"a gate needs at least one channel, got {channels}")
        self.activation = activation if activation is not None else nn.Identity()
        self.register_buffer("mask", torch.ones(channels))
        self.register_buffer("fisher_sum", torch.zeros(channels), persistent=False)
        self.fisher_count = 0
        self.tracking = False
        self.last_gate_grad: Tensor | None = None

    @property
    def channels(self) -> int:
        """Number of channels the gate covers (kept and pruned)."""
        return self.mask.numel()

    def reset_fisher(self) -> None:
        """Forget the accumulated ``sum_n g_nk^2`` and ``N``."""
        self.fisher_sum.zero_()
        self.fisher_count = 0

    def _record(self, a: Tensor, grad: Tensor) -> None:
        g = (a * grad).flatten(2).sum(2) if a.dim() > 2 else a * grad
        g = g.detach()
        self.last_gate_grad = g
        self.fisher_sum += g.pow(2).sum(0).to(self.fisher_sum.dtype)
        self.fisher_count += g.shape[0]

    def forward(self, x: Tensor) -> Tensor:
        a = self.activation(x)
        if a.dim() < 2 or a.shape[1] != self.channels:
            raise ValueError(
                f"ChannelGate over {self.channels} channels got input of shape {tuple(a.shape)}"
            )
        out = a * self.mask.view(1, -1, *([1] * (a.dim() - 2)))
        if self.tracking and out.requires_grad:
            a_detached = a.detach()
            out.register_hook(lambda grad: self._record(a_detached, grad))
        return out

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kept={int((self.mask != 0).sum())}"


class Chain(NamedTuple):
    """One prunable chain ``conv1 -> bn -> act -> conv2``, by full module names.

    ``block`` is the module that holds the four (a residual block, or an ``nn.Sequential``);
    ``act`` is where the :class:`ChannelGate` goes. The prunable channels are ``conv1``'s
    output channels = ``bn``'s features = ``conv2``'s input channels.
    """

    block: str
    conv1: str
    bn: str
    conv2: str
    act: str


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _is_activation(m: nn.Module) -> bool:
    return isinstance(m, (*ACTIVATIONS, ChannelGate))


def _chain_fits(conv1: nn.Module, bn: nn.Module, act: nn.Module, conv2: nn.Module) -> bool:
    if not (isinstance(conv1, CONV_TYPES) and type(conv2) is type(conv1)):
        return False
    if not (isinstance(bn, _BatchNorm) and _is_activation(act)):
        return False
    c = conv1.out_channels
    if conv1.groups != 1 or conv2.groups != 1 or conv2.in_channels != c or bn.num_features != c:
        return False
    return not (isinstance(act, ChannelGate) and act.channels != c)


def prunable_channels(model: nn.Module) -> list[Chain]:
    """Every prunable chain ``conv1 -> bn -> act -> conv2`` of ``model``, in registration order.

    Found are the interiors of :class:`~minipruner.core.models.WideBlock` (``conv1, bn2, relu2,
    conv2``) and :class:`~minipruner.core.models.BasicBlock` (``conv1, bn1, relu1, conv2``), and,
    inside any ``nn.Sequential`` (assumed to run its children in order), consecutive
    children Conv -> BatchNorm -> activation -> [channel-wise pooling/dropout] -> Conv of the
    same dimension with ``groups == 1`` and matching channel counts. Removing channel ``k``
    of a chain deletes ``conv1``'s output filter ``k``, ``bn``'s entry ``k`` and ``conv2``'s
    input slice ``k``; nothing else changes, so the residual stream is never touched.

    Raises ``ValueError`` when the model has no such chain.
    """
    chains: list[Chain] = []
    for prefix, module in model.named_modules():
        names = BLOCK_CHAINS.get(type(module))
        if names is not None:
            parts = [getattr(module, n, None) for n in names]
            conv1, bn, act, conv2 = parts
            if all(p is not None for p in parts) and _chain_fits(conv1, bn, act, conv2):
                n_c1, n_bn, n_act, n_c2 = (_join(prefix, n) for n in names)
                chains.append(Chain(prefix, n_c1, n_bn, n_c2, n_act))
            continue
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for i in range(len(children) - 3):
            (n1, conv1), (nb, bn), (na, act) = children[i : i + 3]
            j = i + 3
            while j < len(children) - 1 and isinstance(children[j][1], CHANNELWISE):
                j += 1
            n2, conv2 = children[j]
            if _chain_fits(conv1, bn, act, conv2):
                chains.append(
                    Chain(
                        prefix,
                        _join(prefix, n1),
                        _join(prefix, nb),
                        _join(prefix, n2),
                        _join(prefix, na),
                    )
                )
    if not chains:
        raise ValueError(
            f"{type(model).__name__} has no prunable channel chain "
            "(Conv -> BatchNorm -> activation -> Conv, e.g. a WRN block interior)"
        )
    return chains


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)


def add_gates(model: nn.Module) -> nn.Module:
    """Insert a :class:`ChannelGate` (all channels kept, ``m_k = 1``) at every chain's
    activation, in place; chains already gated are left alone. Returns the model.

    Outputs are unchanged: ``a_k * 1 = a_k``.
    """
    for chain in prunable_channels(model):
        act = model.get_submodule(chain.act)
        if isinstance(act, ChannelGate):
            continue
        conv1 = model.get_submodule(chain.conv1)
        gate = ChannelGate(conv1.out_channels, act)
        gate.to(device=conv1.weight.device, dtype=conv1.weight.dtype)
        _set_module(model, chain.act, gate)
    return model


def _keys(model: nn.Module) -> dict[str, Chain]:
    chains = prunable_channels(model)
    blocks = [c.block for c in chains]
    out = {}
    for c in chains:
        key = c.block if blocks.count(c.block) == 1 and c.block else c.conv1
        out[key] = c
    return out


def _gate_map(model: nn.Module) -> dict[str, ChannelGate]:
    keys = _keys(model)
    add_gates(model)
    return {k: model.get_submodule(c.act) for k, c in keys.items()}


def channel_masks(model: nn.Module) -> dict[str, Tensor]:
    """``{chain: bool keep-mask over its channels}`` (``True`` = kept).

    Chains are named by their block (``"block1.0"``), or, where one ``nn.Sequential`` holds
    several chains, by their first conv (``"features.0"``). Ungated chains are all ``True``.
    """
    out = {}
    for key, chain in _keys(model).items():
        act = model.get_submodule(chain.act)
        if isinstance(act, ChannelGate):
            out[key] = (act.mask != 0).detach().cpu().clone()
        else:
            out[key] = torch.ones(model.get_submodule(chain.conv1).out_channels, dtype=torch.bool)
    return out


def set_channel_masks(model: nn.Module, masks: Mapping[str, Tensor]) -> nn.Module:
    """Set the gates of the named chains to ``masks`` (bool or 0/1, ``True`` = keep), in
    place, inserting gates first where needed. Chains not named keep their masks.

    Raises ``ValueError`` for unknown chains, wrong lengths, or a mask that keeps no channel
    (a chain keeps at least one). Returns the model.
    """
    gates = _gate_map(model)
    for key, mask in masks.items():
        if key not in gates:
            raise ValueError(f"unknown chain {key!r}; chains: {list(gates)}")
        mask = torch.as_tensor(mask)
        gate = gates[key]
        if mask.shape != (gate.channels,):
            raise ValueError(
                f"mask for {key!r} has shape {tuple(mask.shape)}, expected ({gate.channels},)"
            )
        if mask.dtype != torch.bool and not ((mask == 0) | (mask == 1)).all():
            raise ValueError(f"mask for {key!r} must be boolean or 0/1")
        if not mask.bool().any():
            raise ValueError(f"mask for {key!r} removes every channel; keep at least one")
        gate.mask.copy_(mask.bool().to(gate.mask))
    return model


def interior_widths(model: nn.Module) -> list[int]:
    """Number of kept channels of every chain, in order: ``sum_k [m_k != 0]``."""
    return [int(m.sum()) for m in channel_masks(model).values()]


# --------------------------------------------------------------------------------------
# Physical compression and counts
# --------------------------------------------------------------------------------------


def _new_conv(conv: nn.Module, weight: Tensor, bias: Tensor | None) -> nn.Module:
    new = type(conv)(
        weight.shape[1] * conv.groups,
        weight.shape[0],
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=bias is not None,
        padding_mode=conv.padding_mode,
        device=weight.device,
        dtype=weight.dtype,
    )
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    new.train(conv.training)
    return new


def _new_bn(bn: _BatchNorm, keep: Tensor) -> _BatchNorm:
    ref = bn.weight if bn.weight is not None else bn.running_mean
    new = type(bn)(
        int(keep.numel()),
        eps=bn.eps,
        momentum=bn.momentum,
        affine=bn.affine,
        track_running_stats=bn.track_running_stats,
        device=None if ref is None else ref.device,
        dtype=None if ref is None else ref.dtype,
    )
    with torch.no_grad():
        if bn.affine:
            new.weight.copy_(bn.weight[keep])
            new.bias.copy_(bn.bias[keep])
        if bn.track_running_stats and bn.running_mean is not None:
            new.running_mean.copy_(bn.running_mean[keep])
            new.running_var.copy_(bn.running_var[keep])
            new.num_batches_tracked.copy_(bn.num_batches_tracked)
    new.train(bn.training)
    return new


def compress(model: nn.Module) -> nn.Module:
    """A new, physically smaller copy of ``model`` without its pruned (gated-off) channels.

    For every chain with keep-indices ``K = {k : m_k = 1}``: ``conv1.weight <- W1[K]`` (and
    its bias), ``bn <- bn[K]`` (weight, bias, running mean and variance), ``conv2.weight
    <- W2[:, K]``; the gate is replaced by its bare activation. Since a pruned channel's
    gated activation is exactly 0, its contribution ``W2[:, k] * 0`` to ``conv2`` vanishes
    and the outputs equal the masked model's (to float rounding, in eval mode and, since
    batch norm is per channel, in train mode too). A WRN's ``interior_widths`` attribute is
    updated. ``model`` itself is not changed.

    Raises ``ValueError`` when the model has no prunable chain or a gate has a value other
    than 0 or 1.
    """
    chains = prunable_channels(model)
    new = copy.deepcopy(model)
    for chain in chains:
        act = new.get_submodule(chain.act)
        if not isinstance(act, ChannelGate):
            continue
        mask = act.mask.detach()
        if not ((mask == 0) | (mask == 1)).all():
            raise ValueError(f"gate of {chain.block!r} has values other than 0/1: {mask}")
        keep = (mask != 0).nonzero().squeeze(1)
        if keep.numel() == 0:
            raise ValueError(f"chain {chain.block!r} keeps no channel")
        conv1 = new.get_submodule(chain.conv1)
        conv2 = new.get_submodule(chain.conv2)
        bn = new.get_submodule(chain.bn)
        w1 = effective_weight(conv1).detach()
        w2 = effective_weight(conv2).detach()
        b1 = None if conv1.bias is None else conv1.bias.detach()[keep]
        b2 = None if conv2.bias is None else conv2.bias.detach()
        _set_module(new, chain.conv1, _new_conv(conv1, w1[keep], b1))
        _set_module(new, chain.bn, _new_bn(bn, keep.to(mask.device)))
        # conv2 may also be the next chain's conv1: read it again after replacement.
        _set_module(new, chain.conv2, _new_conv(conv2, w2[:, keep], b2))
        _set_module(new, chain.act, act.activation)
    if isinstance(new, WideResNet):
        new.interior_widths = [
            new.get_submodule(c.conv1).out_channels for c in prunable_channels(new)
        ]
    return new


@dataclass(frozen=True)
class CompressionStats:
    """Parameters and FLOPs (one example) of a gated model and of its :func:`compress` copy."""

    params_before: int
    params_after: int
    flops_before: int
    flops_after: int

    @property
    def param_ratio(self) -> float:
        """``params_after / params_before``."""
        return self.params_after / self.params_before

    @property
    def flop_ratio(self) -> float:
        """``flops_after / flops_before``."""
        return self.flops_after / self.flops_before


def compression_stats(model: nn.Module, example: Tensor | None = None) -> CompressionStats:
    """Parameter and FLOP counts of ``model`` and of ``compress(model)``:
    ``count_parameters`` and ``count_flops`` (input ``example``, default one zero example) of
    each."""
    small = compress(model)
    return CompressionStats(
        count_parameters(model),
        count_parameters(small),
        count_flops(model, example),
        count_flops(small, example),
    )
