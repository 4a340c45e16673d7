"""Chapter 5: structured (channel) pruning, physical compression and reduced networks.

Following Crowley, Turner, Storkey & O'Boyle (2019, "A closer look at structured pruning
for neural network compression", arXiv 1810.04622), the channels that are pruned are the
*interior* channels of a residual block: the output channels of the block's first conv,
which are the input channels of its second conv. Generally any chain

    Conv -> BatchNorm -> activation [-> channel-wise pooling/dropout] -> Conv

has such channels (:func:`prunable_channels`). The residual stream (block outputs,
shortcut convs, the stem conv) is never pruned, because removing one of its channels
would change every block that reads or writes it.

**Gates.** A pruned channel is represented by a :class:`ChannelGate`: it replaces the
chain's activation module (``relu2`` in a WRN block) by "activation, then multiply channel
k by ``mask[k]``", so the gated activation is ``a_k * m_k`` with ``m_k = 1`` (kept) or 0
(pruned). :func:`compress` then removes the pruned channels physically.

**Fisher saliency** (Theis et al. 2018, arXiv 1801.05787). For example ``n`` with
per-example loss ``L_n = -log p(y_n | x_n)`` the gradient with respect to gate ``k`` at
``m_k = 1`` is

    g_nk = dL_n/dm_k = sum over spatial positions p of a_nkp * dL_n/d(a_nkp m_k),

and removing the channel (``m_k``: 1 -> 0) raises the loss by about

    Delta_k = 1/(2N) * sum_n g_nk^2,

half the empirical Fisher information of the gate. ``L_n`` is the per-example loss, not
divided by the batch size: the gradients are those of the *summed* loss ``sum_n L_n``.
In eval mode these are exactly the per-example gradients; in train mode batch-norm
statistics couple the examples of a batch and ``g_nk`` is the gradient of the batch's
summed loss with respect to example ``n``'s gate, which is what Theis et al. and Crowley
et al. compute while fine-tuning. :func:`prune_and_finetune` accumulates ``sum_n g_nk^2``
and ``N`` over all fine-tuning steps since the last removal.

**L1 saliency**: the L1 norm ``sum |W1[k]|`` of the first conv's filter ``k`` (a true norm,
with absolute values).

Convention, as everywhere in the package: a HIGHER saliency means KEEP; the channel with the
lowest saliency over all chains (one global ranking) is removed, and every chain keeps at
least one channel.

Parameter and FLOP counts and latency live in :mod:`minipruner.measure` (importable from
here too).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import Dataset
from tqdm import tqdm

from .masks import effective_weight
from .measure import (  # noqa: F401  (importable from here, as before)
    count_flops,
    count_parameters,
    measure_latency,
)
from .models import BasicBlock, WideBlock, WideResNet
from .train import batches, default_device

__all__ = [
    "METHODS",
    "Chain",
    "ChannelGate",
    "CompressionStats",
    "Snapshot",
    "add_gates",
    "channel_masks",
    "compress",
    "compression_stats",
    "count_flops",
    "count_parameters",
    "fisher_saliency",
    "gate_gradients",
    "interior_widths",
    "l1_saliency",
    "matched_interior",
    "measure_latency",
    "prunable_channels",
    "prune_and_finetune",
    "prune_lowest",
    "pruned_architecture",
    "reduced_wrn",
    "set_channel_masks",
    "wrn_parameters",
]

METHODS = ("fisher", "l1")

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

    Found are the interiors of :class:`~minipruner.models.WideBlock` (``conv1, bn2, relu2,
    conv2``) and :class:`~minipruner.models.BasicBlock` (``conv1, bn1, relu1, conv2``), and,
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
# Saliency
# --------------------------------------------------------------------------------------


def gate_gradients(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """Per-example gate gradients ``g_nk = dL_n/dm_k = sum_p a_nkp * dL/d(a_nkp m_k)``.

    ``L = sum_n L_n`` is the summed cross-entropy (``L_n = -log softmax(f(x_n))_{y_n}``,
    not divided by N). Returns ``{chain: (N, C) tensor}``. The model's mode is used as is:
    in eval mode ``g_nk`` is exactly the gradient of example ``n``'s own loss; in train mode
    batch-norm couples the batch (see the module docstring). Gates are inserted if missing;
    parameter gradients (``.grad``) and the gates' accumulated Fisher sums are not touched.
    """
    gates = _gate_map(model)
    saved = {k: (g.tracking, g.fisher_sum.clone(), g.fisher_count) for k, g in gates.items()}
    for gate in gates.values():
        gate.tracking, gate.last_gate_grad = True, None
    try:
        with torch.enable_grad():
            # Differentiate with respect to the input only: every gate lies on its path, so
            # every gate's hook fires, and no parameter's .grad is touched.
            x = x.detach().requires_grad_(True)
            loss = F.cross_entropy(model(x), y, reduction="sum")
            torch.autograd.grad(loss, x)
        out = {}
        for key, gate in gates.items():
            if gate.last_gate_grad is None:
                raise ValueError(f"chain {key!r} was not reached by the forward pass")
            out[key] = gate.last_gate_grad
    finally:  # leave the gates' running Fisher sums as they were
        for key, gate in gates.items():
            gate.tracking, sums, gate.fisher_count = saved[key]
            gate.fisher_sum.copy_(sums)
            gate.last_gate_grad = None
    return out


def fisher_saliency(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """Fisher saliency of every channel on one batch: ``Delta_k = 1/(2N) sum_n g_nk^2``.

    ``g_nk`` are the per-example gate gradients of :func:`gate_gradients` (summed-loss
    convention). Returns ``{chain: (C,) tensor}``; pruned channels get ``+inf`` so that they
    are never chosen again. The fine-tuning loop accumulates the same sums over many batches.
    """
    grads = gate_gradients(model, x, y)
    masks = channel_masks(model)
    out = {}
    for key, g in grads.items():
        s = g.pow(2).sum(0) / (2 * g.shape[0])
        out[key] = torch.where(masks[key].to(s.device), s, torch.full_like(s, math.inf))
    return out


def _accumulated_fisher(model: nn.Module) -> dict[str, Tensor]:
    out = {}
    for key, gate in _gate_map(model).items():
        if gate.fisher_count == 0:
            raise ValueError(f"no Fisher statistics accumulated for chain {key!r}")
        s = gate.fisher_sum / (2 * gate.fisher_count)
        out[key] = torch.where(gate.mask != 0, s, torch.full_like(s, math.inf))
    return out


def l1_saliency(model: nn.Module) -> dict[str, Tensor]:
    """L1 saliency: ``S_k = ||W1[k]||_1 = sum_{c, p} |W1[k, c, p]|`` of the first conv's
    filter ``k`` of every chain (absolute values: a large negative filter is salient).

    Returns ``{chain: (C,) tensor}``; pruned channels get ``+inf``.
    """
    masks = channel_masks(model)
    out = {}
    for key, chain in _keys(model).items():
        w = effective_weight(model.get_submodule(chain.conv1)).detach()
        s = w.abs().flatten(1).sum(1)
        out[key] = torch.where(masks[key].to(s.device), s, torch.full_like(s, math.inf))
    return out


def prune_lowest(
    model: nn.Module, saliency: Mapping[str, Tensor], n: int = 1
) -> list[tuple[str, int]]:
    """Remove the ``n`` kept channels with the lowest saliency over all chains (one global
    ranking), in place: ``(chain, k) = argmin S_k`` over kept channels of chains that keep
    more than one, ``n`` times; each chain keeps at least one channel.

    Ties go to the earlier chain, then the lower channel index. Returns the removed
    ``(chain, channel)`` pairs in order. Raises ``ValueError`` for NaN scores, unknown
    chains, or when fewer than ``n`` channels can be removed.
    """
    gates = _gate_map(model)
    if set(saliency) != set(gates):
        raise ValueError(f"saliency must name exactly the chains {list(gates)}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    scores = {k: saliency[k].detach().float().cpu() for k in gates}
    for key, s in scores.items():
        if s.shape != (gates[key].channels,):
            raise ValueError(f"saliency for {key!r} has shape {tuple(s.shape)}")
        if torch.isnan(s).any():
            raise ValueError(f"saliency for {key!r} contains NaN")
    removed: list[tuple[str, int]] = []
    for _ in range(n):
        best: tuple[float, int, int] | None = None
        for i, (key, gate) in enumerate(gates.items()):
            kept = (gate.mask != 0).cpu()
            if int(kept.sum()) <= 1:
                continue
            s = torch.where(kept, scores[key], torch.full_like(scores[key], math.inf))
            k = int(torch.argmin(s))  # first minimum: lowest index among ties
            cand = (float(s[k]), i, k)
            if best is None or cand < best:
                best = cand
        if best is None:
            raise ValueError("no channel left to remove: every chain keeps only one")
        key = list(gates)[best[1]]
        gates[key].mask[best[2]] = 0
        removed.append((key, best[2]))
    return removed


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


def compression_stats(model: nn.Module, x: Tensor | None = None) -> CompressionStats:
    """Parameter and FLOP counts of ``model`` and of ``compress(model)``:
    ``count_parameters`` and ``count_flops`` (input ``x``, default one example) of each."""
    small = compress(model)
    return CompressionStats(
        count_parameters(model),
        count_parameters(small),
        count_flops(model, x),
        count_flops(small, x),
    )


# --------------------------------------------------------------------------------------
# Prune and fine-tune
# --------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """The pruned network at one point of the trajectory.

    ``removed`` channels (``fraction`` of all ``total`` chain channels) are gone after
    ``step`` fine-tuning steps. ``model`` is a CPU copy of the gated network in eval mode
    (``compress(snapshot.model)`` gives the small one), ``masks`` its keep-masks,
    ``widths`` the kept channels per chain, ``parameters`` and ``flops`` those of the
    compressed network (FLOPs for one example).
    """

    step: int
    removed: int
    total: int
    widths: list[int]
    parameters: int
    flops: int | None
    masks: dict[str, Tensor] = field(repr=False)
    model: nn.Module = field(repr=False)

    @property
    def fraction(self) -> float:
        """Fraction of the chains' channels removed: ``removed / total``."""
        return self.removed / self.total


def _snapshot(model: nn.Module, step: int, removed: int, total: int) -> Snapshot:
    copy_ = copy.deepcopy(model).cpu().eval()
    for gate in _gate_map(copy_).values():
        gate.tracking = False
        gate.reset_fisher()
    small = compress(copy_)
    try:
        flops: int | None = count_flops(small)
    except ValueError:
        flops = None
    return Snapshot(
        step=step,
        removed=removed,
        total=total,
        widths=interior_widths(copy_),
        parameters=count_parameters(small),
        flops=flops,
        masks=channel_masks(copy_),
        model=copy_,
    )


def prune_and_finetune(
    model: nn.Module,
    train_data: Dataset,
    *,
    prune_every: int = 100,
    n_prune: int | None = None,
    snapshots_at: Iterable[float] = (),
    method: str = "fisher",
    lr: float = 8e-4,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    batch_size: int = 128,
    seed: int = 0,
    device: torch.device | str | None = None,
    quiet: bool = False,
) -> list[Snapshot]:
    """Crowley et al.'s prune-and-fine-tune: remove one channel every ``prune_every`` steps.

    The model (gated in place, trained in train mode) is fine-tuned by SGD (``lr``,
    ``momentum``, ``weight_decay``, ``batch_size``; the paper's K = 100, 8e-4, 0.9, 5e-4,
    128 are the defaults) on the mean cross-entropy. After every ``prune_every`` steps the
    kept channel with the lowest saliency over all chains is removed (:func:`prune_lowest`,
    each chain keeps at least one):

    * ``"fisher"``: ``Delta_k = 1/(2N) sum_n g_nk^2`` over all N examples of the steps since
      the last removal, with per-example gate gradients of the summed loss (the backward
      pass uses ``sum_n L_n`` and the parameter gradients are divided by the batch size,
      which is the same SGD step as on the mean loss);
    * ``"l1"``: ``||W1[k]||_1`` of the first conv's filter at that moment.

    ``n_prune`` channels are removed in ``n_prune * prune_every`` steps (default: as many
    as the largest snapshot needs). A :class:`Snapshot` is taken right after the removal
    that brings the removed fraction of all chain channels to ``round(f * total)`` for each
    ``f`` in ``snapshots_at`` (``f = 0``: before any removal). Shuffling is seeded by
    ``seed``. Returns the snapshots, in order; the model is left pruned, in eval mode.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    if isinstance(prune_every, bool) or not isinstance(prune_every, int) or prune_every < 1:
        raise ValueError(f"prune_every must be a positive int, got {prune_every!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if len(train_data) == 0:
        raise ValueError("cannot fine-tune on an empty dataset")
    gates = _gate_map(model)
    total = sum(g.channels for g in gates.values())
    already = sum(int((g.mask == 0).sum()) for g in gates.values())
    removable = total - len(gates) - already
    fractions = sorted(float(f) for f in snapshots_at)
    if any(not 0.0 <= f <= 1.0 for f in fractions):
        raise ValueError(f"snapshots_at must be fractions in [0, 1], got {fractions}")
    targets = sorted({int(round(f * total)) for f in fractions})
    if n_prune is None:
        if not targets:
            raise ValueError("give n_prune or snapshots_at")
        n_prune = max(0, targets[-1] - already)
    if n_prune < 0 or n_prune > removable:
        raise ValueError(
            f"n_prune must be in [0, {removable}] (each of the {len(gates)} chains keeps one "
            f"channel; {already} of {total} are already removed), got {n_prune}"
        )
    bad = [t for t in targets if t < already or t > already + n_prune]
    if bad:
        raise ValueError(
            f"snapshots_at asks for {bad} removed channels, but the run goes from {already} "
            f"to {already + n_prune} of {total}"
        )

    device = torch.device(device) if device is not None else default_device()
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr, momentum=momentum, weight_decay=weight_decay)
    for gate in gates.values():
        gate.reset_fisher()
        gate.tracking = method == "fisher"

    snapshots: list[Snapshot] = []
    removed, step, epoch = already, 0, 0
    if removed in targets:
        snapshots.append(_snapshot(model, step, removed, total))
    total_steps = n_prune * prune_every
    try:
        with tqdm(total=total_steps, desc=f"prune ({method})", disable=quiet, leave=False) as bar:
            while step < total_steps:
                for x, y in batches(train_data, batch_size, shuffle=True, seed=seed + epoch):
                    x, y = x.to(device), y.to(device)
                    loss = F.cross_entropy(model(x), y, reduction="sum")
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    for p in params:
                        if p.grad is not None:
                            p.grad /= len(y)
                    opt.step()
                    step += 1
                    bar.update()
                    if step % prune_every == 0:
                        if method == "fisher":
                            scores = _accumulated_fisher(model)
                        else:
                            scores = l1_saliency(model)
                        prune_lowest(model, scores, 1)
                        removed += 1
                        for gate in gates.values():
                            gate.reset_fisher()
                        bar.set_postfix(loss=f"{loss.item() / len(y):.3f}", removed=removed)
                        if removed in targets:
                            snapshots.append(_snapshot(model, step, removed, total))
                    if step >= total_steps:
                        break
                epoch += 1
    finally:
        for gate in gates.values():
            gate.tracking = False
            gate.reset_fisher()
    model.eval()
    return snapshots


# --------------------------------------------------------------------------------------
# Reduced networks and pruned architectures
# --------------------------------------------------------------------------------------


def reduced_wrn(
    depth: int, widen: int, *, interior: float | Sequence[float] = 1.0, **kwargs: Any
) -> WideResNet:
    """A reduced WRN of Crowley et al.: WRN-``depth``-``widen`` whose block interiors are
    ``int(round(out * interior))`` wide (uniform width scaling; ``interior = 1`` is the
    dense network), or a shallower one (smaller ``depth``). Other keyword arguments
    (``num_classes``, ``in_channels``, ``dim``, ``input_shape``) go to
    :class:`~minipruner.models.WideResNet`."""
    return WideResNet(depth, widen, interior=interior, **kwargs)


def wrn_parameters(
    depth: int, widen: int, *, interior: float | Sequence[float] = 1.0, **kwargs: Any
) -> int:
    """Parameter count of ``reduced_wrn(depth, widen, interior=interior, **kwargs)``, built
    on the meta device (no memory, no initialisation cost)."""
    with torch.device("meta"):
        model = reduced_wrn(depth, widen, interior=interior, **kwargs)
    return count_parameters(model)


def matched_interior(depth: int, widen: int, parameters: int, **kwargs: Any) -> float:
    """The uniform interior multiplier ``f`` in (0, 1] whose reduced WRN has the parameter
    count closest to ``parameters`` (ties: the smaller network), found by bisection on
    ``P(f)``, which is non-decreasing in ``f``."""
    if parameters < 1:
        raise ValueError(f"parameters must be positive, got {parameters}")

    def count(f: float) -> int:
        return wrn_parameters(depth, widen, interior=f, **kwargs)

    lo, hi = 0.0, 1.0  # P(lo) <= parameters, or lo = 0; invariant kept below
    if count(hi) <= parameters:
        return 1.0
    for _ in range(24):  # hi - lo = 6e-8, finer than any width step for widen < 10^5
        mid = (lo + hi) / 2
        if count(mid) <= parameters:
            lo = mid
        else:
            hi = mid
    if lo == 0.0:
        return hi
    below, above = count(lo), count(hi)
    return lo if parameters - below <= above - parameters else hi


def _wrn_config(model: WideResNet) -> dict[str, Any]:
    n = len(model.block1)
    first = model.block1[0]
    return {
        "depth": 6 * n + 4,
        "widen": first.conv2.out_channels // 16,
        "num_classes": model.fc.out_features,
        "in_channels": model.conv.in_channels,
        "dim": 1 if isinstance(model.conv, nn.Conv1d) else 2,
        "input_shape": model.input_shape,
    }


def pruned_architecture(model: nn.Module, seed: int | None = None) -> nn.Module:
    """The pruned network's architecture, freshly initialised ("trained from scratch").

    For a :class:`~minipruner.models.WideResNet`: ``WideResNet(..., interior_widths=w)``
    with ``w = interior_widths(model)`` (kept channels per block) and its usual init. For
    any other model: ``compress(model)`` with every parameter re-initialised by its
    module's ``reset_parameters`` and batch-norm statistics reset. ``seed`` seeds the init.
    """
    if seed is not None:
        torch.manual_seed(seed)
    if isinstance(model, WideResNet):
        return WideResNet(**_wrn_config(model), interior_widths=interior_widths(model))
    new = compress(model)
    for m in new.modules():
        if hasattr(m, "reset_running_stats"):
            m.reset_running_stats()
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return new
