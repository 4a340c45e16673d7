"""Chapter 5: structured (channel) pruning, physical compression and reduced networks.

Following Crowley, Turner, Storkey & O'Boyle (2019, "A closer look at structured pruning
for neural network compression", arXiv 1810.04622), the channels that are pruned are the
*interior* channels of a residual block: the output channels of the block's first conv,
which are the input channels of its second conv. Generally any chain

    Conv -> BatchNorm -> activation [-> channel-wise pooling/dropout] -> Conv

has such channels (:func:`prunable_channels`). The residual stream (block outputs,
shortcut convs, the stem conv) is never pruned, because removing one of its channels
would change every block that reads or writes it.

**Gates** (:mod:`minipruner.methods.channels`). A pruned channel is represented by a
:class:`~minipruner.methods.channels.ChannelGate`: it replaces the chain's activation module
(``relu2`` in a WRN block) by "activation, then multiply channel k by ``mask[k]``", so the gated
activation is ``a_k * m_k`` with ``m_k = 1`` (kept) or 0 (pruned).
:func:`~minipruner.methods.channels.compress` then removes the pruned channels physically.

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

This module holds the saliencies and the prune-and-fine-tune loop. Gates, chains and
compression live in :mod:`minipruner.methods.channels`, reduced networks and pruned architectures in
:mod:`minipruner.methods.architectures`, parameter and FLOP counts and latency in
:mod:`minipruner.core.measure`; every name is importable from here too.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset
from tqdm import tqdm

from ..core.masks import _check_sparsity, effective_weight, prunable, prunable_modules
from ..core.measure import count_flops, count_parameters
from ..core.train import default_device, epoch_batches
from .channels import _gate_map, _keys, channel_masks, compress, interior_widths

# isort: split
# Re-exported: the public names of minipruner.methods.architectures, minipruner.methods.channels and
# minipruner.core.measure stay importable from here (``st.X`` in notebook 05 and the tests), as
# before the split; the code above imports what it uses itself.
from ..core.measure import measure_latency  # noqa: F401
from .architectures import (  # noqa: F401
    matched_interior,
    pruned_architecture,
    reduced_wrn,
    wrn_parameters,
)
from .channels import (  # noqa: F401
    ACTIVATIONS,
    BLOCK_CHAINS,
    CHANNELWISE,
    CONV_TYPES,
    Chain,
    ChannelGate,
    CompressionStats,
    add_gates,
    compression_stats,
    prunable_channels,
    set_channel_masks,
)

__all__ = [
    "Chain",
    "ChannelGate",
    "CompressionStats",
    "Snapshot",
    "add_gates",
    "channel_masks",
    "channel_weight_masks",
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
    "neuron_masks",
    "prunable_channels",
    "prune_and_finetune",
    "prune_lowest",
    "pruned_architecture",
    "reduced_wrn",
    "set_channel_masks",
    "wrn_parameters",
]

SALIENCIES = ("fisher", "l1")
"""The saliencies :func:`prune_and_finetune` ranks channels by (its ``method``); the method
table (:data:`minipruner.methods.METHODS`) names the pruners built on them."""

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
    convention). Returns ``{chain: (C,) tensor}`` for every channel, pruned ones included
    (higher = keep; :func:`prune_lowest` only ever chooses among kept channels). The
    fine-tuning loop accumulates the same sums over many batches.
    """
    grads = gate_gradients(model, x, y)
    return {key: g.pow(2).sum(0) / (2 * g.shape[0]) for key, g in grads.items()}


def _accumulated_fisher(model: nn.Module) -> dict[str, Tensor]:
    out = {}
    for key, gate in _gate_map(model).items():
        if gate.fisher_count == 0:
            raise ValueError(f"no Fisher statistics accumulated for chain {key!r}")
        out[key] = gate.fisher_sum / (2 * gate.fisher_count)
    return out


def l1_saliency(model: nn.Module) -> dict[str, Tensor]:
    """L1 saliency: ``S_k = ||W1[k]||_1 = sum_{c, p} |W1[k, c, p]|`` of the first conv's
    filter ``k`` of every chain (absolute values: a large negative filter is salient).

    Returns ``{chain: (C,) tensor}`` for every channel, pruned ones included (a pruned
    channel's filter keeps its weights; :func:`prune_lowest` only chooses among kept ones).
    """
    out = {}
    for key, chain in _keys(model).items():
        w = effective_weight(model.get_submodule(chain.conv1)).detach()
        out[key] = w.abs().flatten(1).sum(1)
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
# One-shot structured masks: whole units (neurons, channels) as weight keep-masks
# --------------------------------------------------------------------------------------


def _unit_masks(
    weights: Mapping[str, Tensor], groups: list[tuple[str, str, Tensor]], sparsity: float
) -> dict[str, Tensor]:
    """Keep-masks of every prunable weight after removing whole units. ``groups`` lists, per
    layer of units, ``(weight whose rows are the units' inputs, weight whose columns are their
    outputs, saliency per unit)``. Units go lowest saliency first over all groups (ties: the
    earlier group, then the lower index), each taking its row and its column, until at least
    ``round(sparsity * d)`` of the model's ``d`` prunable weights are masked or every group is
    down to one unit. ``weights``: every prunable weight of the model, by name."""
    masks = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
    units = sorted(
        (float(score[k]), i, k) for i, (_, _, score) in enumerate(groups) for k in range(len(score))
    )
    alive = [len(score) for _, _, score in groups]
    target = round(_check_sparsity(sparsity, "") * sum(w.numel() for w in weights.values()))
    removed = 0
    for _, i, k in units:
        if removed >= target:
            break
        if alive[i] == 1:
            continue
        rows, cols, _ = groups[i]
        row, col = masks[rows][k], masks[cols][:, k]
        removed += int(row.sum()) + int(col.sum())
        row.fill_(False)
        col.fill_(False)
        alive[i] -= 1
    return masks


def neuron_masks(model: nn.Module, sparsity: float) -> dict[str, Tensor]:
    """Structured pruning of a chain of ``nn.Linear`` layers: remove whole hidden units.

    Unit ``k`` of layer ``i`` has saliency ``mean_j |W_i[k, j]|`` (the L1 norm of its
    incoming weights over the fan-in, so layers of different widths compare). Units are
    removed from the least salient up, each taking its incoming row and its outgoing column
    ``W_{i+1}[:, k]``, until at least ``round(sparsity * d)`` of the ``d`` weights are gone
    or every hidden layer is down to one unit. Returns the keep-masks (True = keep).
    """
    weights = prunable(model)
    names = list(weights)
    if len(names) < 2 or not all(
        isinstance(m, nn.Linear) for m in prunable_modules(model).values()
    ):
        raise ValueError("neuron_masks needs a chain of at least two nn.Linear layers")
    groups = [
        (names[i], names[i + 1], weights[names[i]].detach().abs().mean(1))
        for i in range(len(names) - 1)
    ]
    return _unit_masks(weights, groups, sparsity)


def channel_weight_masks(
    model: nn.Module, sparsity: float, saliency: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """One-shot channel pruning as weight keep-masks: remove whole interior channels
    (:func:`prunable_channels`), lowest ``saliency`` first over all chains (one global
    ranking; ``saliency`` as from :func:`l1_saliency` or :func:`fisher_saliency`, higher =
    keep), each taking its filter ``conv1.weight[k]`` and its input column
    ``conv2.weight[:, k]``, until at least ``round(sparsity * d)`` of the ``d`` prunable
    weights are masked or every chain keeps one channel.

    Masking the two is removing the channel: its batch-norm output is a constant that the
    masked column no longer reads. Channels are not the only weights (stem, shortcuts,
    classifier), so high sparsities may be out of reach: read the achieved sparsity from
    :func:`minipruner.core.masks.sparsity_report`. Returns the masks (True = keep).
    """
    keys = _keys(model)
    if set(saliency) != set(keys):
        raise ValueError(f"saliency must name exactly the chains {list(keys)}")
    groups = []
    for key, chain in keys.items():
        score = saliency[key].detach().float().cpu()
        width = model.get_submodule(chain.conv1).out_channels
        if score.shape != (width,):
            raise ValueError(f"saliency for {key!r} has shape {tuple(score.shape)}, not ({width},)")
        if torch.isnan(score).any():
            raise ValueError(f"saliency for {key!r} contains NaN")
        groups.append((f"{chain.conv1}.weight", f"{chain.conv2}.weight", score))
    return _unit_masks(prunable(model), groups, sparsity)


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
    pipeline: str = "loader",
) -> list[Snapshot]:
    """Crowley et al.'s prune-and-fine-tune: remove one channel every ``prune_every`` steps.

    The model (gated in place, trained in train mode) is fine-tuned by SGD (``lr``,
    ``momentum``, ``weight_decay``, ``batch_size``; the paper's K = 100, 8e-4, 0.9, 5e-4,
    128 are the defaults) on the mean cross-entropy. After every ``prune_every`` steps the
    kept channel with the lowest saliency over all chains is removed (:func:`prune_lowest`).
    Each chain keeps at least one channel: that is this book's rule, not Crowley et al.'s
    (their code takes the minimum over every open gate and lets a block empty):

    * ``"fisher"``: ``Delta_k = 1/(2N) sum_n g_nk^2`` over all N examples of the steps since
      the last removal, with per-example gate gradients of the summed loss (the backward
      pass uses ``sum_n L_n`` and the parameter gradients are divided by the batch size,
      which is the same SGD step as on the mean loss);
    * ``"l1"``: ``||W1[k]||_1`` of the first conv's filter at that moment.

    ``n_prune`` channels are removed in ``n_prune * prune_every`` steps (default: as many
    as the largest snapshot needs). A :class:`Snapshot` is taken right after the removal
    that brings the removed fraction of all chain channels to ``round(f * total)`` for each
    ``f`` in ``snapshots_at`` (``f = 0``: before any removal). Shuffling is seeded by
    ``seed``; ``pipeline`` draws the batches as :func:`~minipruner.core.train.train` does
    (``"device"``: the training set on the GPU, augmented there). Returns the snapshots, in
    order; the model is left pruned, in eval mode.
    """
    if method not in SALIENCIES:
        raise ValueError(f"unknown method {method!r}; valid saliencies: {', '.join(SALIENCIES)}")
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
    batches_of = epoch_batches(train_data, batch_size, seed, device, pipeline)
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
                for x, y in batches_of(epoch):
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
