"""What CBS-S minimises, and the pieces both of its searches are built from.

With ``G`` the ``N x d`` matrix of per-sample gradients and ``F = G^T G / N`` (the undamped
empirical Fisher, see :mod:`minipruner.methods.fisher`), pruning the set ``P`` without
updating the other weights raises the loss, to second order, by (half) the objective

    f(P) = w_P^T F_PP w_P = ||G_P w_P||^2 / N      (:func:`cbs_objective`).

The searches, :func:`minipruner.methods.cbs.cbs_select` (the released one) and
:func:`minipruner.methods.cbs_window.cbs_select_window` (a variant), evaluate ``f``, its swap
gains and the entries of ``F`` they need through ``_Gram``, which reads ``G`` (``O(N d)`` per
product) unless ``F`` is small enough to form; they share the checks of their counts and
the stable magnitude order of their starts (``_lowest``), kept here too.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .gradients import _check_grads, _check_pruned, _check_vector

__all__ = ["cbs_objective"]


# --------------------------------------------------------------------------------------
# The objective, through G
# --------------------------------------------------------------------------------------


def _transposed(g: Tensor, rows: int = 64) -> Tensor:
    """``g.T`` as a contiguous tensor, copied a band of rows at a time (several times faster
    than ``g.T.contiguous()`` for a large ``g``)."""
    out = torch.empty(g.shape[1], g.shape[0], dtype=g.dtype, device=g.device)
    for i in range(0, g.shape[0], rows):
        out[:, i : i + rows] = g[i : i + rows].T
    return out


class _Gram:
    """``F = G^T G / N`` through ``G`` (``O(N d)`` per product), or formed densely when
    ``d <= N`` and it is small, where products with ``F`` are cheaper.

    ``G`` is kept transposed (``d x N``, contiguous), so that the columns ``G[:, idx]`` a
    search reads are contiguous rows; ``diag(F)`` is computed once."""

    def __init__(self, grads: Tensor, dense_limit: int = 1 << 24) -> None:
        self.n, self.d = grads.shape
        dense = self.d <= self.n and self.d**2 <= dense_limit
        self.f = grads.T @ grads / self.n if dense else None
        self.gt = None if dense else _transposed(grads)
        if self.f is not None:
            self._diag = self.f.diagonal().clone()
        else:
            self._diag = torch.linalg.vector_norm(self.gt, dim=1).square() / self.n

    def matvec(self, v: Tensor) -> Tensor:
        return self.f @ v if self.f is not None else self.gt @ (self.gt.T @ v) / self.n

    def columns_times(self, idx: Tensor, coeff: Tensor) -> Tensor:
        if self.f is not None:
            return self.f[:, idx] @ coeff
        return self.gt @ (self.gt[idx].T @ coeff) / self.n

    def block(self, rows: Tensor, cols: Tensor) -> Tensor:
        if self.f is not None:
            return self.f[rows][:, cols]
        return self.gt[rows] @ self.gt[cols].T / self.n

    def diag(self) -> Tensor:
        return self._diag

    def objective(self, u: Tensor) -> float:
        """``u^T F u``: ``||G u||^2 / N``."""
        return float(self.objectives(u.unsqueeze(1))[0])

    def objectives(self, u: Tensor) -> Tensor:
        """``u_k^T F u_k`` for every column ``u_k`` of the ``d x K`` matrix ``u`` (one pass
        over ``G`` for all of them)."""
        if self.f is not None:
            return (u * (self.f @ u)).sum(0)
        return (self.gt.T @ u).square().sum(0) / self.n


def cbs_objective(w: Tensor, grads: Tensor, keep: Tensor) -> float:
    """The CBS-S objective of pruning ``P = ~keep``: ``w_P^T F_PP w_P = ||G_P w_P||^2 / N``
    with ``F = G^T G / N`` (undamped), computed through ``G``."""
    grads = _check_grads(grads)
    w = _check_vector(w, grads.shape[1]).to(grads.dtype)
    keep = _check_pruned(keep, grads.shape[1], "keep")
    return float((grads @ torch.where(keep, torch.zeros_like(w), w)).square().sum()) / len(grads)


# --------------------------------------------------------------------------------------
# Checks and the magnitude order, shared by the searches
# --------------------------------------------------------------------------------------


def _lowest(scores: Tensor, k: int) -> Tensor:
    # Stable ascending sort: among ties the lower index goes first, as masks_from_scores.
    return torch.sort(scores, stable=True).indices[:k]


def _check_count(n_prune: int, d: int) -> int:
    if isinstance(n_prune, bool) or not isinstance(n_prune, int) or not 0 <= n_prune <= d:
        raise ValueError(
            f"n_prune (the number of weights to remove, round(sparsity * d)) must be an "
            f"integer in [0, {d}], i.e. a sparsity in [0, 1]; got {n_prune!r}"
        )
    return n_prune


def _check_weights(w: Tensor) -> int:
    """``d`` for a non-empty weight vector ``w``; a ``ValueError`` for anything else."""
    if not isinstance(w, Tensor) or w.dim() != 1 or w.numel() < 1:
        shape = tuple(w.shape) if isinstance(w, Tensor) else type(w).__name__
        raise ValueError(f"w must be a non-empty vector, got {shape}")
    return w.numel()


def _check_positive_int(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value
