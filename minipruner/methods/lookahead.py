"""Chapter 2: lookahead pruning (LAP), Park, Lee, Mo & Shin, ICLR 2020 (arXiv 2002.04809).

Magnitude pruning minimises the Frobenius distortion of one layer (chapter 1). Lookahead
pruning looks one layer back and one layer ahead: it minimises the distortion of the
three-layer block ``W_{i+1} W_i W_{i-1}`` (activations left out) caused by pruning ``W_i``.
Zeroing a single weight ``w = W_i[j, k]`` changes ``W_i`` by ``w e_j e_k^T``, so the block
changes by the rank-one matrix ``w * W_{i+1}[:, j] W_{i-1}[k, :]``, whose Frobenius norm is

    L_i(w) = |w| * ||W_{i-1}[k, :]|| * ||W_{i+1}[:, j]||        (the lookahead score)

exactly. LAP removes, in each layer, the weights of smallest ``L_i``. Conventions used here:

* Layers are taken in forward order. For the first layer the missing ``W_{i-1}`` is the
  identity, for the last layer the missing ``W_{i+1}`` is: that factor counts as 1.
* Convolutions: ``W_{i-1}[k, :]`` is the whole filter that produces input channel ``k``
  (``W_{i-1}[k]``, all its input channels and taps) and ``W_{i+1}[:, j]`` all the kernels
  that consume output channel ``j`` (``W_{i+1}[:, j]``, all taps). The identity is exact
  for the *linearised* block in which each kernel is treated as one block entry
  (taps kept apart instead of convolved).
* A conv followed by flatten and a linear layer: the linear layer has ``C * P`` inputs for
  the conv's ``C`` channels of ``P`` positions each, and input ``c * P + p`` belongs to
  channel ``c`` (channel-major, as ``torch.flatten`` of NCHW lays them out).
* Scores use the *effective* weights (:func:`minipruner.core.masks.prunable`: pruned entries are
  zero), so re-scoring a partly pruned model is right.

Variants (all exact for the block they describe; ``s`` and ``p`` below default to 1):

* batch-norm aware: with ``s_l[u] = gamma_l[u] / sqrt(running_var_l[u] + eps)`` the scale
  of the BN that follows layer ``l`` (per output unit/channel ``u``) the block is
  ``W_{i+1} S_i W_i S_{i-1} W_{i-1}`` and the score is
  ``|w| * |s_{i-1}[k]| ||W_{i-1}[k, :]|| * |s_i[j]| ||W_{i+1}[:, j]||``; the BN after
  ``W_{i+1}`` is outside the block, as in the paper.
* activation aware (LAP-act): every ReLU is modelled as a gate that is open, independently,
  with the measured probability ``p_l[u]`` that unit ``u`` of layer ``l`` is active, and
  every weight is scaled by ``sqrt(p)`` of the unit it feeds. The score is the root mean
  square over the gates of the distortion of
  ``G_{i+1} W_{i+1} G_i W_i G_{i-1} W_{i-1}``.
* sequential: LFP prunes layer 1, re-scores layer 2 with layer 1 pruned, and so on;
  LBP runs from the last layer back.
* global pruning, as the paper's code does it (``lap_global_normalize``): each layer's
  *squared* scores divided by their L2 norm, ``L_i^2 / ||L_i^2||_2 = (L_i / ||L_i||_4)^2``,
  which ranks the weights as ``L_i / ||L_i||_4`` does (not as ``L_i / ||L_i||_2``); see
  :func:`normalized_lookahead_scores`.

A model whose prunable layers do not form a simple chain (a residual network) is read as
the paper does: neighbours along the main path in forward order, skip connections ignored;
a warning says so. How a model is read (the layer order, each layer's neighbours, batch
norms and ReLUs) lives in :mod:`minipruner.methods.layer_graph`; see :func:`lookahead_chain`.

Where this differs from the official code (github.com/alinlab/lookahead_pruning): after a
conv -> flatten step the BN factor of linear input ``c * P + p`` is that of channel ``c``
(the official code indexes channel ``(c * P + p) // C``); LAP-act uses one rate per conv
channel, averaged over positions (the official code sums ``sqrt`` of per-position rates);
sequential ratios are fractions of the whole layer, like every ratio in this package.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..core.masks import (
    apply_masks,
    current_masks,
    layer_sparsities,
    masks_from_scores,
    normalize_scores,
    prunable,
    prunable_modules,
)
from .layer_graph import (  # noqa: F401  (importable from here, as before the split)
    _CONV_TYPES,
    LayerChain,
    _analyse,
    _out_units,
    lookahead_chain,
)

__all__ = [
    "ORDERS",
    "LayerChain",
    "activation_rates",
    "batchnorm_factors",
    "lookahead_chain",
    "lookahead_prune",
    "lookahead_score",
    "lookahead_scores",
    "normalized_lookahead_scores",
    "paper_ratios",
]

ORDERS = ("oneshot", "forward", "backward")
"""Pruning orders of :func:`lookahead_prune`: LAP, LFP (forward) and LBP (backward)."""

# --------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------


def _bn_factor(bn: nn.Module) -> Tensor:
    if bn.running_var is None:
        raise ValueError(
            f"{type(bn).__name__} without running statistics (track_running_stats=False) "
            f"has no fixed scale; batch-norm aware scores need running_var"
        )
    var = bn.running_var.detach()
    gamma = bn.weight.detach() if bn.weight is not None else torch.ones_like(var)
    return gamma / torch.sqrt(var + bn.eps)


def _batchnorm_factors(model: nn.Module, chain: LayerChain) -> dict[str, Tensor]:
    modules = prunable_modules(model)
    bn_names = {id(m): n for n, m in model.named_modules()}
    out = {}
    for name in modules:
        bns = chain.batchnorms.get(name, [])
        if not bns:
            continue
        factor = None
        for bn in bns:
            if bn.num_features != _out_units(modules[name]):
                raise ValueError(
                    f"BatchNorm {bn_names.get(id(bn), '?')!r} after layer {name!r} has "
                    f"{bn.num_features} features but the layer has "
                    f"{_out_units(modules[name])} output units"
                )
            f = _bn_factor(bn)
            factor = f if factor is None else factor * f
        out[name] = factor
    return out


def batchnorm_factors(model: nn.Module, example: Tensor | None = None) -> dict[str, Tensor]:
    """Per-channel scale of the BatchNorm that follows each layer:
    ``s[j] = gamma[j] / sqrt(running_var[j] + eps)`` (product over the BNs between the layer
    and the next one, if several). Only layers followed by a BN are keys.

    "Follows" means: the BN lies on the data path from the layer to its next neighbour (or
    to the model output), with no prunable layer in between (traced as in
    :func:`lookahead_chain`; without an example input, the BNs registered between the layer
    and the next prunable layer).
    """
    return _batchnorm_factors(model, _analyse(model, example))


def _check_rates(model: nn.Module, rates: Mapping[str, Tensor]) -> dict[str, Tensor]:
    modules = prunable_modules(model)
    out = {}
    for name, r in rates.items():
        if name not in modules:
            raise ValueError(
                f"activation rate name {name!r} is not a prunable weight of "
                f"{type(model).__name__}; valid names: {list(modules)}"
            )
        r = torch.as_tensor(r).detach()
        units = _out_units(modules[name])
        if r.dim() != 1 or r.numel() != units:
            raise ValueError(
                f"activation rates for {name!r} must have shape ({units},) (one per output "
                f"unit), got {tuple(r.shape)}"
            )
        if not torch.isfinite(r).all() or (r < 0).any() or (r > 1).any():
            raise ValueError(f"activation rates for {name!r} must be probabilities in [0, 1]")
        out[name] = r
    return out


def lookahead_score(w: Tensor, next_sq: Tensor, prev_sq: Tensor) -> Tensor:
    """The lookahead score of every weight ``w = W_i[j, k]`` of one layer (chapter 2, §2.1):

        L_i(w) = |w| * ||W_{i-1}[k, :]|| * ||W_{i+1}[:, j]||,

    the Frobenius norm of the change of the block ``W_{i+1} W_i W_{i-1}`` when ``w`` alone is
    zeroed. ``next_sq[j] = ||W_{i+1}[:, j]||^2`` (what reads output unit ``j``; 1 for the last
    layer) and ``prev_sq[k] = ||W_{i-1}[k, :]||^2`` (what writes input unit ``k``; 1 for the
    first), one per unit; batch-norm scales and activation rates enter through them (see
    :func:`lookahead_scores`). A convolution's weight ``(out, in, *kernel)`` broadcasts over
    its kernel.
    """
    lead = (1,) * (w.dim() - 2)
    return w.abs() * next_sq.sqrt().view(-1, 1, *lead) * prev_sq.sqrt().view(1, -1, *lead)


@dataclass
class _Scorer:
    """Everything that stays fixed while weights are pruned: structure, BN scales, rates."""

    chain: LayerChain
    bn_sq: dict[str, Tensor]
    rates: dict[str, Tensor]

    def _unit_gain(self, name: str, like: Tensor) -> Tensor | None:
        """``s_l^2 * p_l`` over the output units of layer ``name`` (None if all 1)."""
        g = None
        for t in (self.bn_sq.get(name), self.rates.get(name)):
            if t is not None:
                t = t.to(device=like.device, dtype=like.dtype)
                g = t if g is None else g * t
        return g

    def score(self, name: str, weights: Mapping[str, Tensor]) -> Tensor:
        w = weights[name].detach()
        n_out, n_in = w.shape[0], w.shape[1]
        # Output side, per output unit j: s_i[j]^2 p_i[j] sum_o p_{i+1}[o] W_{i+1}[o, j]^2.
        row = torch.ones(n_out, device=w.device, dtype=w.dtype)
        gain = self._unit_gain(name, w)
        if gain is not None:
            row = gain.clone()
        nxt = self.chain.next[name]
        if nxt is not None:
            wn = weights[nxt].detach().to(w.dtype) ** 2
            rate = self.rates.get(nxt)
            if rate is not None:
                wn = wn * rate.to(wn).view(-1, *((1,) * (wn.dim() - 1)))
            per_input = wn.transpose(0, 1).reshape(wn.shape[1], -1).sum(1)
            per_unit = per_input.view(n_out, self.chain.units_per_channel[(name, nxt)]).sum(1)
            row = row * per_unit.to(w.device)
        # Input side, per input unit k: s_{i-1}[k]^2 p_{i-1}[k] ||W_{i-1}[k, :]||^2.
        col = torch.ones(n_in, device=w.device, dtype=w.dtype)
        prv = self.chain.prev[name]
        if prv is not None:
            wp = weights[prv].detach().to(w.dtype)
            rows = (wp**2).reshape(wp.shape[0], -1).sum(1)
            gain = self._unit_gain(prv, rows)
            if gain is not None:
                rows = rows * gain
            col = rows.repeat_interleave(self.chain.units_per_channel[(prv, name)]).to(w.device)
        return lookahead_score(w, row, col)


def _scorer(
    model: nn.Module,
    batchnorm: bool,
    rates: Mapping[str, Tensor] | None,
    example: Tensor | None,
) -> _Scorer:
    chain = _analyse(model, example, stacklevel=4)  # user -> public function -> _scorer
    bn_sq = {}
    if batchnorm:
        bn_sq = {n: f**2 for n, f in _batchnorm_factors(model, chain).items()}
    checked = _check_rates(model, rates) if rates is not None else {}
    return _Scorer(chain, bn_sq, checked)


def lookahead_scores(
    model: nn.Module,
    batchnorm: bool = False,
    activation_rates: Mapping[str, Tensor] | None = None,
    *,
    normalize: bool = False,
    example: Tensor | None = None,
) -> dict[str, Tensor]:
    """Lookahead scores (higher = keep), ``{name: tensor shaped like the weight}``.

    For ``w = W_i[j, k]`` (layers in forward order, effective weights)::

        score(w) = |w| * ||W_{i-1}[k, :]|| * ||W_{i+1}[:, j]||

    the Frobenius norm of the change of the block ``W_{i+1} W_i W_{i-1}`` when ``w`` alone
    is zeroed. A missing neighbour (first or last layer) counts as 1. Convs: the norm of
    the whole filter producing input channel ``k`` and of all kernels consuming output
    channel ``j``; a linear layer after conv + flatten: its input ``c * P + p`` belongs to
    channel ``c``.

    ``batchnorm=True``: with ``s_l = gamma / sqrt(running_var + eps)`` of the BN that
    follows layer ``l`` (1 where none does)::

        score(w) = |w| * |s_{i-1}[k]| ||W_{i-1}[k, :]|| * |s_i[j]| ||W_{i+1}[:, j]||

    the distortion of ``W_{i+1} S_i W_i S_{i-1} W_{i-1}`` (for the last layer the missing
    ``W_{i+1}`` is the identity, so its own BN still counts).

    ``activation_rates={name: p}`` (LAP-act; see :func:`activation_rates`): each weight is
    scaled by ``sqrt(p)`` of the unit it feeds (layers without rates: ``p = 1``)::

        score(w)^2 = p_i[j] w^2 * p_{i-1}[k] ||W_{i-1}[k, :]||^2
                     * sum_o p_{i+1}[o] ||W_{i+1}[o, j]||^2

    i.e. ``E ||change of G_{i+1} W_{i+1} G_i W_i G_{i-1} W_{i-1}||_F^2`` when the ReLU
    after each layer is replaced by independent gates ``G_l`` open with probability ``p_l``
    (per channel for convs). Both options combine (BN scales inside, gates as above).

    ``normalize=True`` returns instead the LAP paper's normalised score for global pruning,
    ``score_i^2 / ||score_i^2||_2`` per layer (:func:`normalized_lookahead_scores`), for
    ``masks_from_scores(scores, s, scope="global")``.

    ``example``: an example input, used only to trace the layer order (default: zeros of
    ``model.input_shape``); see :func:`lookahead_chain` (warning for non-chain models,
    ``ValueError`` for models whose layers do not fit together).
    """
    scorer = _scorer(model, batchnorm, activation_rates, example)
    weights = prunable(model)
    scores = {name: scorer.score(name, weights) for name in weights}
    return _paper_normalised(scores) if normalize else scores


def _paper_normalised(scores: Mapping[str, Tensor]) -> dict[str, Tensor]:
    # the official lap_global_normalize: the squared distortion divided by its L2 norm
    return normalize_scores({name: s**2 for name, s in scores.items()})


def normalized_lookahead_scores(
    model: nn.Module,
    batchnorm: bool = False,
    activation_rates: Mapping[str, Tensor] | None = None,
    *,
    example: Tensor | None = None,
) -> dict[str, Tensor]:
    """The LAP paper's per-layer normalised lookahead scores, for one global threshold:

        score_i(w) = L_i(w)^2 / ||L_i^2||_2 = (L_i(w) / ||L_i||_4)^2

    with ``L_i`` the lookahead score of :func:`lookahead_scores` (options as there) and the
    norm over all of layer ``i``'s entries. The official code (``LAP_Global`` with
    ``normalize=True``, ``method/global_prune.py`` of github.com/alinlab/lookahead_pruning)
    scores each weight by the squared distortion ``w^2 * ||W_{i-1}[k, :]||^2 *
    ||W_{i+1}[:, j]||^2 = L_i(w)^2`` and divides each layer's scores by their L2 norm;
    that ranks the weights as ``L_i / ||L_i||_4`` does. Dividing the unsquared ``L_i`` by
    ``||L_i||_2`` instead (``normalize_scores(lookahead_scores(model))``, what this book
    did before) is a different rule: it favours small layers more (``||L_i||_2`` grows as
    ``sqrt(n_i)`` with the layer's size, ``||L_i||_4`` as ``n_i^(1/4)``). Magnitude
    pruning's normalisation in that code is ``|w| / ||W_i||_F``
    (:func:`minipruner.methods.magnitude.magnitude_scores`)."""
    return lookahead_scores(model, batchnorm, activation_rates, normalize=True, example=example)


# --------------------------------------------------------------------------------------
# Activation rates (LAP-act)
# --------------------------------------------------------------------------------------


def _batches(data: Tensor | Iterable[Any]) -> Iterable[Tensor]:
    if isinstance(data, Tensor):
        yield data
        return
    for batch in data:
        xb = batch[0] if isinstance(batch, (tuple, list)) else batch
        if not isinstance(xb, Tensor):
            raise ValueError(f"expected batches of tensors, got {type(xb).__name__}")
        yield xb


def activation_rates(model: nn.Module, x: Tensor | Iterable[Any]) -> dict[str, Tensor]:
    """Measure, for each prunable layer, the probability that each output unit is active:
    ``p_l[u] = mean over examples (and positions, for convs) of [ReLU output > 0]``.

    The ReLU measured is the first ``nn.ReLU`` / ``nn.ReLU6`` module on the data path from
    the layer to its next neighbour (see :func:`lookahead_chain`), so for conv -> BN -> ReLU
    the rate is that of the BN output being positive (functional ``F.relu`` calls are not
    seen). ``x`` is a batch of inputs or an
    iterable of batches (tensors, or tuples whose first entry is the input). The model
    runs in eval mode (BN uses its running statistics) without gradients; its modes are
    restored afterwards. Layers followed by no ReLU module (the output layer) are not keys
    and count as always active. Raises ``ValueError`` if no ReLU module is found.
    """
    batches = iter(_batches(x))
    first = next(batches, None)
    if first is None:
        raise ValueError("activation_rates needs at least one batch of inputs")
    chain = _analyse(model, first)
    modules = prunable_modules(model)
    wanted: dict[tuple[int, int], list[str]] = {}
    for name, (m, k) in chain.activations.items():
        wanted.setdefault((id(m), k), []).append(name)  # a ReLU after a sum serves several
    if not wanted:
        raise ValueError(
            f"no nn.ReLU module follows any prunable layer of {type(model).__name__}; "
            f"activation rates are measured on ReLU modules"
        )
    counts: dict[str, Tensor] = {}
    totals: dict[str, int] = dict.fromkeys(chain.activations, 0)
    seen: dict[int, int] = {}

    def hook(module: nn.Module, args: tuple[Any, ...], output: Tensor) -> None:
        k = seen.get(id(module), 0)
        seen[id(module)] = k + 1
        for name in wanted.get((id(module), k), []):
            layer = modules[name]
            units = _out_units(layer)
            dim = -1 if isinstance(layer, nn.Linear) else 1
            out = output.detach()
            if out.dim() < 2 or out.shape[dim] != units:
                raise ValueError(
                    f"the ReLU after layer {name!r} sees shape {tuple(out.shape)}, which does "
                    f"not have the layer's {units} output units along dimension {dim}"
                )
            active = (out > 0).movedim(dim, 0).reshape(units, -1)
            c = active.sum(1).to(torch.float64).cpu()
            counts[name] = counts[name] + c if name in counts else c
            totals[name] += active.shape[1]

    relus = {id(m): m for m, _ in chain.activations.values()}
    handles = [m.register_forward_hook(hook) for m in relus.values()]
    states = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            for xb in (first, *batches):
                seen.clear()
                model(xb)
    finally:
        for h in handles:
            h.remove()
        for m, training in states.items():
            m.training = training
    return {
        name: (counts[name] / totals[name]).to(torch.float32)
        for name in modules
        if name in counts and totals[name] > 0
    }


# --------------------------------------------------------------------------------------
# Pruning: LAP (one-shot), LFP, LBP, global
# --------------------------------------------------------------------------------------


def lookahead_prune(
    model: nn.Module,
    sparsity: float | Mapping[str, float],
    order: str = "oneshot",
    batchnorm: bool = False,
    activation_rates: Mapping[str, Tensor] | None = None,
    *,
    scope: str = "layer",
    example: Tensor | None = None,
) -> dict[str, Tensor]:
    """Prune ``model`` by lookahead scores; apply the masks and return them (True = keep).

    ``sparsity``: the fraction of each layer's weights to remove (one ratio, or a
    ``{name: ratio}`` mapping naming every prunable layer, e.g. the paper's layer-wise
    ratios ``1 - (1 - r_l)^t``). Each layer ends with exactly ``round(s_l * n_l)`` of its
    ``n_l`` weights pruned (weights already masked are removed first, as long as there are
    no more of them than that).

    ``order``:

    * ``"oneshot"`` (LAP): score every layer, then prune every layer.
    * ``"forward"`` (LFP): for ``i = 1, ..., L`` in forward order, score layer ``i`` with
      layers ``< i`` already pruned, prune it (``apply_masks``), go on.
    * ``"backward"`` (LBP): the same from the last layer back, so layer ``i`` is scored with
      layers ``> i`` already pruned.

    ``scope="global"`` (with ``order="oneshot"`` and one ratio) removes ``round(s * n)``
    weights over all layers by the LAP paper's per-layer normalised scores
    ``score_i^2 / ||score_i^2||_2``, which rank as ``score_i / ||score_i||_4``
    (:func:`normalized_lookahead_scores`).
    ``batchnorm``, ``activation_rates`` and ``example`` are as in :func:`lookahead_scores`; BN
    scales and activation rates are not re-measured between layers.
    """
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; valid orders: {', '.join(ORDERS)}")
    if scope not in ("layer", "global"):
        raise ValueError(f"unknown scope {scope!r}; valid scopes: layer, global")
    if scope == "global" and order != "oneshot":
        raise ValueError("global pruning (scope='global') is one-shot: use order='oneshot'")
    scorer = _scorer(model, batchnorm, activation_rates, example)
    names = list(prunable_modules(model))
    if isinstance(sparsity, Mapping):
        ratios: float | dict[str, float] = layer_sparsities(names, sparsity)
    else:
        ratios = sparsity

    def ratio_of(name: str) -> float | dict[str, float]:
        return {name: ratios[name]} if isinstance(ratios, dict) else ratios

    old = current_masks(model)
    if order == "oneshot":
        weights = prunable(model)
        scores = {n: scorer.score(n, weights) for n in names}
        if scope == "global":
            scores = _paper_normalised(scores)
        scores = {n: s.masked_fill(~old[n].to(s.device), float("-inf")) for n, s in scores.items()}
        masks = masks_from_scores(scores, ratios, scope, model=model)
        apply_masks(model, masks)
        return masks

    seq = scorer.chain.order if order == "forward" else scorer.chain.order[::-1]
    masks = {}
    for name in seq:
        s = scorer.score(name, prunable(model))
        s = s.masked_fill(~old[name].to(s.device), float("-inf"))
        mask = masks_from_scores({name: s}, ratio_of(name), "layer")
        apply_masks(model, mask)
        masks[name] = mask[name]
    return {n: masks[n] for n in names}


def paper_ratios(
    model: nn.Module,
    t: int,
    ratio: float = 0.5,
    last_ratio: float = 0.25,
    *,
    conv_ratio: float | None = None,
) -> dict[str, float]:
    """The LAP paper's layer-wise sparsities after ``t`` pruning steps, ``1 - (1 - r)^t``, with
    ``r = last_ratio`` for the last layer, ``conv_ratio`` for convolutions (default
    ``ratio``) and ``ratio`` for the other layers (FCN: ratio 0.5, last 0.25; Conv-6: conv
    0.15, linear 0.2, last 0.1).

    >>> net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> paper_ratios(net, 2)
    {'0.weight': 0.75, '2.weight': 0.4375}
    """
    if t < 0:
        raise ValueError(f"t must be a non-negative number of steps, got {t}")
    modules = prunable_modules(model)
    last = list(modules)[-1]
    conv = ratio if conv_ratio is None else conv_ratio
    base = {
        n: last_ratio if n == last else conv if isinstance(m, _CONV_TYPES) else ratio
        for n, m in modules.items()
    }
    return {n: 1 - (1 - r) ** t for n, r in base.items()}
