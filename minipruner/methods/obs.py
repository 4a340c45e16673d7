"""Chapter 4: second-order pruning (OBS, WoodFisher, CBS) on flat weight vectors.

Everything here works on the flat vector ``w`` of the prunable weights (in the order of
:func:`minipruner.core.masks.prunable`; see :func:`flatten_weights`) and on an ``N x d`` matrix
``G`` whose rows are per-sample (or per-mini-batch) gradients ``g_n`` of the loss with
respect to ``w`` (see :func:`per_sample_grads`).

The quadratic model
-------------------
Around a trained ``w`` the loss change of a step ``delta`` is modelled as
``dL(delta) = 1/2 delta^T H delta`` with the damped empirical Fisher

    H = damp * I + F,    F = G^T G / N = (1/N) sum_n g_n g_n^T.

Pruning a set ``P`` of weights means ``delta_P = -w_P``. Minimising ``dL`` under that
constraint (Optimal Brain Surgeon, Hassibi & Stork 1993, for a set) gives, with ``E`` the
``d x |P|`` columns of the identity for ``P``,

    delta = -H^-1 E (E^T H^-1 E)^-1 E^T w,    dL = 1/2 w_P^T [(H^-1)_PP]^-1 w_P,

and for one weight ``q`` the classic ``delta = -w_q H^-1 e_q / [H^-1]_qq`` with saliency
``w_q^2 / (2 [H^-1]_qq)``. WoodFisher (Singh & Alistarh 2020) ranks by that single-weight
saliency and, when pruning many weights at once, adds up their single-weight updates.
The Combinatorial Brain Surgeon (Yu et al. 2022, arXiv 2203.04466) chooses the set ``P``
by a local search on ``w_P^T F_PP w_P`` (CBS-S, :func:`cbs_select`) and then applies the
exact set update above (CBS-U, :func:`multi_weight_update`).

Masks: one polarity
-------------------
Every mask this module returns or accepts is a keep-mask (``True`` = keep), as everywhere
in the package (:func:`select`, :func:`update`, :func:`cbs_select`, :func:`oneshot_prune`,
:func:`set_flat_weights`). The three formulas written over the pruned set ``P``,
:func:`woodfisher_update`, :func:`multi_weight_update` and :func:`set_saliency`, take ``P``
itself and name it ``pruned`` (``pruned = ~keep``), so the code reads like the formula.

The flat vectors and per-sample gradients live in :mod:`minipruner.methods.gradients`, the
Fisher, its damping and the routes to its inverse in :mod:`minipruner.methods.fisher` and
:mod:`minipruner.methods.fisher_spectrum`, the CBS selection in :mod:`minipruner.methods.cbs`
(and :mod:`minipruner.methods.cbs_window`); the names of theirs that the chapters, notebook
and tests use are re-exported here as ``minipruner.methods.obs.<name>``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..core.masks import apply_masks, keep_mask, prunable, prunable_modules, weight_parameter
from ..core.train import evaluate
from .cbs import cbs_select
from .fisher import BlockDampedFisher, DampedFisher, HInverse, _cholesky, absolute_damp
from .gradients import (
    _check_grads,
    _check_pruned,
    _check_vector,
    flatten_weights,
    unflatten_weights,
)

# isort: split
# Re-exported: the names of the Fisher, CBS and gradient modules that the chapters, notebook 04,
# the tests and the benchmarks read as ``obs.X`` (``mp.obs.X``); the code above imports what
# it uses itself.
from .cbs import CBSSearchResult, chunk_quotas, release_start_kept
from .cbs_objective import cbs_objective
from .cbs_window import cbs_select_window
from .fisher import block_fisher_inverse, fisher_inverse, woodbury_inverse
from .fisher_spectrum import FisherSpectrum
from .gradients import layer_blocks, per_sample_grads

SELECTIONS = ("magnitude", "woodfisher", "cbs")
"""The selections :func:`select` knows: which weights go."""
UPDATES = (None, "single", "set")
"""The updates :func:`update` knows: how the kept weights move (``None`` = not at all).
Chapter 4's methods are pairs ``(selection, update)`` of these; the method table
(:attr:`minipruner.methods.Method.steps`) is the one place that names them by id."""

__all__ = [
    "SELECTIONS",
    "UPDATES",
    "BlockDampedFisher",
    "CBSSearchResult",
    "DampedFisher",
    "FisherSpectrum",
    "absolute_damp",
    "block_fisher_inverse",
    "cbs_objective",
    "cbs_select",
    "cbs_select_window",
    "chunk_quotas",
    "fisher_inverse",
    "flatten_weights",
    "layer_blocks",
    "multi_weight_update",
    "masked_loss",
    "oneshot_prune",
    "pruned_copy",
    "per_sample_grads",
    "release_start_kept",
    "select",
    "set_saliency",
    "set_flat_weights",
    "single_weight_saliency",
    "single_weight_update",
    "unflatten_weights",
    "update",
    "woodbury_inverse",
    "woodfisher_update",
]

# --------------------------------------------------------------------------------------
# OBS updates and saliencies
# --------------------------------------------------------------------------------------


def _hinv_size(hinv: HInverse) -> int:
    if isinstance(hinv, (DampedFisher, BlockDampedFisher)):
        return hinv.d
    if isinstance(hinv, Tensor) and hinv.dim() == 2 and hinv.shape[0] == hinv.shape[1]:
        return hinv.shape[0]
    shape = tuple(hinv.shape) if isinstance(hinv, Tensor) else type(hinv).__name__
    raise ValueError(
        f"hinv must be a square matrix, DampedFisher or BlockDampedFisher; got {shape}"
    )


def _diag_of(hinv: HInverse, idx: Tensor | None = None) -> Tensor:
    if isinstance(hinv, Tensor):
        diag = hinv.diagonal()
        return diag if idx is None else diag[idx]
    return hinv.diag_inverse(idx)


def single_weight_saliency(w: Tensor, hinv: HInverse | Tensor) -> Tensor:
    """OBS saliency of removing each weight alone: ``rho_q = w_q^2 / (2 [H^-1]_qq)``, the
    predicted loss increase of the optimal single-weight update.

    ``hinv`` is a dense ``d x d`` ``H^-1``, a :class:`DampedFisher` /
    :class:`BlockDampedFisher` (only ``diag(H^-1)`` is used), or directly the vector
    ``diag(H^-1)``. Higher = keep (WF-S keeps the largest).
    """
    d = w.numel() if isinstance(hinv, Tensor) and hinv.dim() == 1 else _hinv_size(hinv)
    w = _check_vector(w, d)
    diag = hinv if isinstance(hinv, Tensor) and hinv.dim() == 1 else _diag_of(hinv)
    if diag.shape != (d,):
        raise ValueError(f"diag(H^-1) must have length {d}, got {tuple(diag.shape)}")
    if not bool((diag > 0).all()):
        raise ValueError("diag(H^-1) has non-positive entries: increase damp")
    return w.to(diag.dtype).square() / (2 * diag)


def single_weight_update(w: Tensor, hinv: HInverse, q: int) -> Tensor:
    """The OBS update for removing weight ``q`` alone: ``delta = -w_q H^-1 e_q / [H^-1]_qq``
    (so ``delta_q = -w_q``). ``hinv``: dense ``H^-1`` or an operator (one column used)."""
    d = _hinv_size(hinv)
    w = _check_vector(w, d)
    if not 0 <= int(q) < d:
        raise ValueError(f"q must be in [0, {d}), got {q}")
    col = hinv[:, int(q)] if isinstance(hinv, Tensor) else hinv.inverse_columns([int(q)])[:, 0]
    return -w[int(q)].to(col.dtype) * col / col[int(q)]


def woodfisher_update(w: Tensor, hinv: HInverse, pruned: Tensor) -> Tensor:
    """WoodFisher's update for pruning a set at once: the sum of the single-weight OBS
    updates, ``delta = -sum_{q in P} w_q H^-1 e_q / [H^-1]_qq = -H^-1 c`` with
    ``c_q = w_q / [H^-1]_qq`` on ``P`` and 0 elsewhere.

    Not exact for a set (``delta_P != -w_P`` in general): set the pruned weights to zero
    afterwards, as :func:`oneshot_prune` does. ``hinv``: dense ``H^-1`` or an operator
    (then only ``diag(H^-1)_P`` and one solve are needed).
    """
    d = _hinv_size(hinv)
    w = _check_vector(w, d)
    pruned = _check_pruned(pruned, d)
    idx = pruned.nonzero().squeeze(1)
    diag = _diag_of(hinv, idx)
    coeff = torch.zeros(d, dtype=diag.dtype, device=diag.device)
    coeff[idx] = w[idx].to(diag.dtype) / diag
    if isinstance(hinv, Tensor):
        return -(hinv[:, idx] @ coeff[idx])
    return -hinv.solve(coeff)


def multi_weight_update(w: Tensor, hinv: HInverse, pruned: Tensor) -> Tensor:
    """Exact OBS update for removing the set ``P = pruned`` (bool mask) together:

        delta = -H^-1 E (E^T H^-1 E)^-1 E^T w,

    the minimiser of ``1/2 delta^T H delta`` subject to ``delta_P = -w_P`` (Hassibi &
    Stork 1993, for a set; CBS-U of Yu et al. 2022). ``delta[pruned] == -w[pruned]``
    exactly (set after solving).

    ``hinv`` is either a dense ``d x d`` ``H^-1`` (a ``|P| x |P|`` Cholesky solve of
    ``(H^-1)_PP``), or a :class:`DampedFisher` / :class:`BlockDampedFisher`, which solve
    the same problem as ridge regression in an ``N x N`` or ``|K| x |K|`` space (see
    :meth:`DampedFisher.set_update`) without any ``d x d`` matrix.
    """
    d = _hinv_size(hinv)
    w = _check_vector(w, d)
    pruned = _check_pruned(pruned, d)
    if not isinstance(hinv, Tensor):
        return hinv.set_update(w, pruned)
    w = w.to(hinv.dtype)
    delta = torch.zeros_like(w)
    if not bool(pruned.any()):
        return delta
    idx = pruned.nonzero().squeeze(1)
    chol = _cholesky(hinv[idx.unsqueeze(1), idx], "the pruned block of H^-1")
    z = torch.cholesky_solve(w[idx].unsqueeze(1), chol).squeeze(1)
    delta = -(hinv[:, idx] @ z)
    delta[idx] = -w[idx]
    return delta


def set_saliency(w: Tensor, hinv: HInverse, pruned: Tensor) -> float:
    """Predicted loss increase of removing the set ``P`` with the exact OBS update:
    ``1/2 w_P^T [(H^-1)_PP]^-1 w_P = 1/2 delta^T H delta`` (one weight:
    ``w_q^2 / (2 [H^-1]_qq)``). Dense ``H^-1`` or a :class:`DampedFisher` (there computed
    as ``1/2 (damp ||delta||^2 + ||G delta||^2 / N)``)."""
    d = _hinv_size(hinv)
    w = _check_vector(w, d)
    pruned = _check_pruned(pruned, d)
    if isinstance(hinv, Tensor):
        idx = pruned.nonzero().squeeze(1)
        if len(idx) == 0:
            return 0.0
        wp = w[idx].to(hinv.dtype)
        chol = _cholesky(hinv[idx.unsqueeze(1), idx], "the pruned block of H^-1")
        return 0.5 * float(wp @ torch.cholesky_solve(wp.unsqueeze(1), chol).squeeze(1))
    delta = hinv.set_update(w, pruned)
    parts = [hinv] if isinstance(hinv, DampedFisher) else hinv.parts
    blocks = [(0, d)] if isinstance(hinv, DampedFisher) else hinv.blocks
    total = 0.0
    for p, (a, b) in zip(parts, blocks, strict=True):
        db = delta[a:b].to(p.dtype)
        total += p.damp * float(db @ db) + float((p.grads @ db).square().sum()) / p.n
    return 0.5 * total


# --------------------------------------------------------------------------------------
# One-shot pruning of a model
# --------------------------------------------------------------------------------------


def select(
    selection: str,
    w: Tensor,
    sparsity: float,
    hinv: HInverse | None = None,
    grads: Tensor | None = None,
    **cbs_kwargs: object,
) -> Tensor:
    """Which of the flat weights ``w`` to keep (bool, ``True`` = keep) when exactly
    ``k = round(sparsity * d)`` go, by ``selection``:

    * ``"magnitude"``: the ``k`` smallest ``|w_q|``;
    * ``"woodfisher"``: the ``k`` smallest single-weight saliencies
      ``w_q^2 / (2 [H^-1]_qq)`` (:func:`single_weight_saliency`; needs ``hinv``);
    * ``"cbs"``: :func:`cbs_select`, the released swap search on ``w_P^T F_PP w_P`` (needs
      ``grads``, the rows of ``F = G^T G / N``; ``cbs_kwargs`` go to it).

    Ties go as in :func:`minipruner.core.masks.masks_from_scores` (lower index removed first).
    """
    if selection == "magnitude":
        return keep_mask(w.abs(), sparsity)
    if selection == "woodfisher":
        if hinv is None:
            raise ValueError("the WoodFisher selection needs hinv")
        return keep_mask(single_weight_saliency(w, hinv), sparsity)
    if selection == "cbs":
        if grads is None:
            raise ValueError("the CBS selection needs grads")
        return cbs_select(w, grads, int(round(float(sparsity) * w.numel())), **cbs_kwargs)  # type: ignore[arg-type]
    raise ValueError(f"unknown selection {selection!r}; valid: {', '.join(SELECTIONS)}")


def update(kind: str | None, w: Tensor, hinv: HInverse | None, keep: Tensor) -> Tensor:
    """The flat weights after removing ``~keep`` with the update ``kind``:

    * ``None``: none, ``w`` as it is (the pruned entries are zeroed by the mask);
    * ``"single"``: the sum of single-weight OBS updates, ``w - sum_q w_q H^-1 e_q /
      [H^-1]_qq`` over the pruned ``q`` (WoodFisher, :func:`woodfisher_update`);
    * ``"set"``: the exact OBS update for the set,
      ``w - H^-1 E (E^T H^-1 E)^-1 E^T w`` (:func:`multi_weight_update`).
    """
    if kind is None:
        return w
    if hinv is None:
        raise ValueError(f"the {kind!r} update needs hinv")
    if kind == "single":
        return w + woodfisher_update(w, hinv, ~keep)
    if kind == "set":
        return w + multi_weight_update(w, hinv, ~keep)
    raise ValueError(f"unknown update {kind!r}; valid: None, 'single', 'set'")


def oneshot_prune(
    model: nn.Module,
    steps: tuple[str, str | None],
    sparsity: float,
    grads: Tensor | None = None,
    damp: float = 1e-3,
    *,
    relative: bool = False,
    blocks: Iterable[tuple[int, int]] | None = None,
    dtype: torch.dtype = torch.float64,
    **cbs_kwargs: object,
) -> dict[str, Tensor]:
    """One-shot global pruning of all prunable weights of ``model``; returns the masks.

    Exactly ``k = round(sparsity * d)`` of the ``d`` prunable weights are removed, chosen
    by the selection and moved by the update of ``steps = (selection, update)``
    (:func:`select`, :func:`update`; a chapter-4 entry of the method table carries its pair
    as :attr:`minipruner.methods.Method.steps`):

    * ``("magnitude", None)`` (MP): the ``k`` smallest ``|w|`` (as
      :func:`minipruner.methods.magnitude.magnitude_prune`); no update, ``grads`` not needed.
    * ``("magnitude", "set")`` (MP+U): the same selection plus the exact set update.
    * ``("woodfisher", None)`` (WF-S): the ``k`` smallest ``w_q^2 / (2 [H^-1]_qq)``; no
      update.
    * ``("woodfisher", "single")`` (WF): the same selection plus the sum of single-weight
      updates ``-sum_q w_q H^-1 e_q / [H^-1]_qq`` (:func:`woodfisher_update`), then the
      pruned weights are set exactly to zero.
    * ``("cbs", None)`` (CBS-S): :func:`cbs_select`, the search as the CBS authors released
      it (``cbs_kwargs`` go to it: pass ``loss_fn`` and ``select_loss_fn``, the losses of
      the masked network that pick its start and its iterate, to follow the release;
      without them ``f`` picks both); no update.
    * ``("cbs", "set")`` (CBS): the same selection plus the exact set update
      :func:`multi_weight_update`.

    ``H = damp I + G^T G / N`` with ``grads`` (``N x d``, from :func:`per_sample_grads`);
    ``damp`` absolute, or relative to the mean diagonal of ``F`` with ``relative=True``
    (see the module docstring for why that matters). ``blocks`` (e.g. from
    :func:`layer_blocks`) makes ``H`` block-diagonal for WF and the CBS update; CBS-S
    always uses the full ``F``. Linear algebra runs in ``dtype`` through
    :class:`DampedFisher` (no ``d x d`` matrix when ``N < d``). The weights are updated in
    place and the masks applied with :func:`minipruner.core.masks.apply_masks`.

    This is a single step; the CBS paper prunes in several steps of increasing sparsity
    in some settings (call this repeatedly with new gradients to do that).
    """
    if not (isinstance(steps, tuple) and len(steps) == 2):
        raise ValueError(
            f"steps must be a pair (selection, update), e.g. get_method('wf').steps; got {steps!r}"
        )
    selection, kind = steps
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; valid: {', '.join(SELECTIONS)}")
    if kind not in UPDATES:
        raise ValueError(f"unknown update {kind!r}; valid: None, 'single', 'set'")
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)):
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
    if not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    if cbs_kwargs and selection != "cbs":
        raise ValueError(f"extra arguments {sorted(cbs_kwargs)} only apply to CBS methods")
    weights = prunable(model)
    w = flatten_weights(weights)
    d = w.numel()
    if steps == ("magnitude", None):
        keep = select("magnitude", w.detach(), sparsity)
        masks = {n: m.clone() for n, m in unflatten_weights(keep, weights).items()}
        apply_masks(model, masks)
        return masks

    if grads is None:
        raise ValueError(f"steps {steps!r} need grads (N x {d}), e.g. from per_sample_grads")
    grads = _check_grads(grads)
    if grads.shape[1] != d:
        raise ValueError(f"grads has {grads.shape[1]} columns but the model has {d} weights")
    g = grads.to(dtype)
    w64 = w.detach().to(dtype)
    lam = absolute_damp(g, damp, relative)
    hinv: HInverse | None = None
    if selection == "woodfisher" or kind is not None:
        hinv = DampedFisher(g, lam) if blocks is None else BlockDampedFisher(g, lam, blocks)
    keep = select(selection, w64, sparsity, hinv, g, **cbs_kwargs)
    return set_flat_weights(model, update(kind, w64, hinv, keep), keep)


def pruned_copy(model: nn.Module, w: Tensor, keep: Tensor) -> nn.Module:
    """A copy of ``model`` with flat weights ``w`` (zeroed where ``keep`` is False) and its
    masks applied (:func:`set_flat_weights`); ``model`` is left as it is."""
    net = copy.deepcopy(model)
    set_flat_weights(net, w, keep)
    return net


def masked_loss(model: nn.Module, w: Tensor, data: Dataset) -> Callable[[Tensor], float]:
    """``keep -> L(w * keep)``: the mean loss on ``data`` of ``model`` with flat weights ``w``
    pruned to ``keep``, without update (:func:`pruned_copy`). The real loss by which the
    released CBS search picks its start and its iterate (``loss_fn``, ``select_loss_fn`` of
    :func:`cbs_select`)."""
    return lambda keep: evaluate(pruned_copy(model, w, keep), data).loss


def set_flat_weights(model: nn.Module, w: Tensor, keep: Tensor) -> dict[str, Tensor]:
    """Write the flat vector ``w`` (zeroed where ``keep`` is False) into the model's prunable
    weights, in the order of :func:`minipruner.core.masks.prunable`, and apply ``keep`` as masks
    (:func:`minipruner.core.masks.apply_masks`). Returns the masks. Modifies ``model`` in place.
    """
    weights = prunable(model)
    d = sum(t.numel() for t in weights.values())
    w = _check_vector(w, d)
    keep = _check_pruned(keep, d, "keep")
    masks = {n: m.clone() for n, m in unflatten_weights(keep, weights).items()}
    updates = unflatten_weights(torch.where(keep, w, torch.zeros_like(w)), weights)
    with torch.no_grad():
        for n, module in prunable_modules(model).items():
            target = weight_parameter(module)
            target.copy_(updates[n].to(target.dtype).reshape(target.shape))
    apply_masks(model, masks)
    return masks
