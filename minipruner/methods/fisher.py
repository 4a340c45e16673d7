"""The damped empirical Fisher of chapter 4 and the routes to its inverse.

Everything here works on the flat vector ``w`` of the prunable weights and on the ``N x d``
matrix ``G`` whose rows are per-sample (or per-mini-batch) gradients ``g_n`` of the loss with
respect to ``w``, both built in :mod:`minipruner.methods.gradients`. The damped empirical
Fisher is

    H = damp * I + F,    F = G^T G / N = (1/N) sum_n g_n g_n^T.

The OBS updates that use ``H^-1`` are in :mod:`minipruner.methods.obs`, the CBS selection in
:mod:`minipruner.methods.cbs`; the public names here are also importable as
``minipruner.methods.obs.<name>``.

Inverting ``H``
---------------
Three equal routes, all in :func:`fisher_inverse`, and a fourth for many dampings:

* Woodbury recursion (WoodFisher): ``H_0^-1 = I / damp`` and for each gradient
  ``H_n^-1 = H_{n-1}^-1 - u u^T / (N + g_n^T u)`` with ``u = H_{n-1}^-1 g_n``
  (one rank-one update per gradient, ``O(N d^2)``; :func:`woodbury_inverse`).
* Push-through (``N < d``): ``H^-1 = (I - G^T (N damp I_N + G G^T)^-1 G) / damp``: one
  ``N x N`` Cholesky factorisation. The same identity gives ``diag(H^-1)``, ``H^-1 v``,
  columns of ``H^-1`` and the exact set update without ever forming a ``d x d`` matrix
  (:class:`DampedFisher`).
* Dense (``N >= d``): form ``H``, Cholesky-factorise it, invert.
* Spectrum, for many dampings: ``G G^T = Q Lambda Q^T`` once, then
  ``(N damp I + G G^T)^-1 = Q (N damp I + Lambda)^-1 Q^T`` for every ``damp`` with no new
  factorisation (:class:`minipruner.methods.fisher_spectrum.FisherSpectrum`, whose ``at``
  gives the :class:`DampedFisher` of one damping).

Damping
-------
``damp`` must be positive. With ``relative=True`` it is taken relative to the Fisher's
scale: the absolute damping is ``damp * trace(F) / d``, ``damp`` times the mean diagonal
entry of ``F`` (:func:`absolute_damp`). This matters: on a training set that the network
has memorised the gradients are tiny (trace of ``F`` about 0.01 for MLPNet on 4,000 MNIST
images), an absolute damping of 1e-3 then dominates ``F``, ``H^-1`` is nearly
``I / damp`` and every second-order method collapses to magnitude pruning. A relative
damping of 1e-6 to 1e-4 keeps ``F`` in charge; compute in float64 then (``dtype``), as
float32 factorisations fail for ``damp`` below about 1e-7 of ``F``'s largest eigenvalue.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from .gradients import _check_grads, _check_pruned, _check_vector

ROUTES = ("auto", "woodbury", "direct")

__all__ = [
    "ROUTES",
    "BlockDampedFisher",
    "DampedFisher",
    "HInverse",
    "absolute_damp",
    "block_fisher_inverse",
    "fisher_inverse",
    "woodbury_inverse",
]


# --------------------------------------------------------------------------------------
# Damping and factorising
# --------------------------------------------------------------------------------------


def _outer_gram(g: Tensor, bands: int = 8) -> Tensor:
    """``G G^T`` (``N x N``), computing only the blocks on and below the diagonal, in
    ``bands`` bands of rows, and mirroring the rest: about ``(bands + 1) / (2 bands)`` of the
    work of ``g @ g.T`` (the product dominates the cost of a :class:`DampedFisher`)."""
    n = g.shape[0]
    step = max(1, -(-n // bands))
    k = torch.empty(n, n, dtype=g.dtype, device=g.device)
    for a in range(0, n, step):
        b = min(n, a + step)
        band = g[a:b] @ g[:b].T
        k[a:b, :a], k[:a, a:b] = band[:, :a], band[:, :a].T
        square = band[:, a:b]
        k[a:b, a:b] = square.tril() + square.tril(-1).T  # exactly symmetric
    return k


def _check_damp(damp: float) -> float:
    if isinstance(damp, bool) or not isinstance(damp, (int, float)):
        raise ValueError(f"damp must be a positive number, got {damp!r}")
    if not (math.isfinite(damp) and damp > 0):
        raise ValueError(f"damp must be positive and finite, got {damp}")
    return float(damp)


def absolute_damp(grads: Tensor, damp: float, relative: bool = False) -> float:
    """The absolute damping ``lambda`` of ``H = lambda I + F``, ``F = G^T G / N``.

    ``relative=False``: ``lambda = damp``. ``relative=True``: ``lambda = damp * trace(F) / d
    = damp * ||G||_F^2 / (N d)``, i.e. ``damp`` times the mean diagonal entry of ``F``.
    ``damp`` must be positive; a relative damping of an all-zero ``G`` is an error.
    """
    damp = _check_damp(damp)
    if not relative:
        return damp
    grads = _check_grads(grads)
    scale = float(grads.double().square().sum()) / (grads.shape[0] * grads.shape[1])
    if scale <= 0:
        raise ValueError("relative damping needs a nonzero Fisher, but every gradient is zero")
    return damp * scale


def _cholesky(matrix: Tensor, what: str) -> Tensor:
    chol, info = torch.linalg.cholesky_ex(matrix)
    if int(info) != 0 or not torch.isfinite(chol).all():
        raise ValueError(
            f"cannot factorise {what} (not numerically positive definite in "
            f"{matrix.dtype}): increase damp, or compute in float64"
        )
    return chol


# --------------------------------------------------------------------------------------
# The damped Fisher and its inverse
# --------------------------------------------------------------------------------------


class DampedFisher:
    """``H = damp I + G^T G / N`` as an operator that never needs the ``d x d`` matrix.

    With ``N < d`` it factorises ``K = N damp I_N + G G^T = L L^T`` and, when first needed,
    ``A = L^-1 G`` (``N x d``), so that by the push-through identity
    ``H^-1 = (I - A^T A) / damp``. With ``N >= d`` it factorises ``H`` itself.
    ``damp`` is absolute unless ``relative`` (see :func:`absolute_damp`); the absolute
    value is ``self.damp``. Computations run in ``dtype`` (default: that of ``grads``).
    (:meth:`minipruner.methods.fisher_spectrum.FisherSpectrum.at` gives the same operator
    from an eigendecomposition instead of a Cholesky factor.)

    Accepted as ``hinv`` by :func:`multi_weight_update`, :func:`woodfisher_update`,
    :func:`single_weight_saliency` and friends.
    """

    def __init__(
        self,
        grads: Tensor,
        damp: float,
        *,
        relative: bool = False,
        dtype: torch.dtype | None = None,
    ) -> None:
        grads = _check_grads(grads)
        self.damp = absolute_damp(grads, damp, relative)
        self.grads = grads.to(dtype) if dtype is not None else grads
        self.n, self.d = self.grads.shape
        self.pushthrough = self.n < self.d
        g = self.grads
        if self.pushthrough:
            k = _outer_gram(g)
            k.diagonal().add_(self.n * self.damp)
            chol = _cholesky(k, f"the {self.n} x {self.n} matrix N damp I + G G^T")
        else:
            chol = _cholesky(self.matrix(), f"the {self.d} x {self.d} damped Fisher")
        self._chol = chol
        self._a_cache: Tensor | None = None
        self._diag_cache: Tensor | None = None
        self._hinv: Tensor | None = None

    # The factor-specific steps: a subclass that holds another factor of K (push-through)
    # or H (N >= d) replaces these three and inherits everything else.

    def _k_solve(self, r: Tensor) -> Tensor:
        # K^-1 r (push-through) or H^-1 r (N >= d), from the Cholesky factor.
        return torch.cholesky_solve(r, self._chol)

    def _make_a(self) -> Tensor:
        # A = L^-1 G (N x d), so that A^T A = G^T K^-1 G and H^-1 = (I - A^T A) / damp.
        return torch.linalg.solve_triangular(self._chol, self.grads, upper=False)

    def _dense_inverse(self) -> Tensor:
        # H^-1 for N >= d, from the Cholesky factor of H.
        return torch.cholesky_inverse(self._chol)

    @property
    def _a(self) -> Tensor:
        # A, computed on first use.
        if self._a_cache is None:
            self._a_cache = self._make_a()
        return self._a_cache

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the computations."""
        return self.grads.dtype

    def matrix(self) -> Tensor:
        """The dense ``d x d`` matrix ``H = damp I + G^T G / N`` (small ``d`` only)."""
        h = self.grads.T @ self.grads / self.n
        h.diagonal().add_(self.damp)
        return h

    def inverse(self) -> Tensor:
        """The dense ``d x d`` inverse ``H^-1`` (push-through: ``(I - A^T A) / damp``).

        Cached and shared with later calls: clone it before modifying it."""
        if self._hinv is None:
            if self.pushthrough:
                hinv = self._a.T @ self._a
                hinv.neg_()
                hinv.diagonal().add_(1.0)
                hinv.div_(self.damp)
            else:
                hinv = self._dense_inverse()
            self._hinv = hinv
        return self._hinv

    def diag_inverse(self, idx: Tensor | None = None) -> Tensor:
        """``diag(H^-1)`` (entries ``idx`` only, if given): push-through
        ``[H^-1]_qq = (1 - sum_n A_nq^2) / damp``, no ``d x d`` matrix. The whole diagonal is
        kept once computed, and later calls (with or without ``idx``) index it instead of
        passing over ``A`` (``N x d``) again."""
        if self.pushthrough:
            if self._diag_cache is not None:
                return self._diag_cache.clone() if idx is None else self._diag_cache[idx]
            if idx is None:
                self._diag_cache = (1.0 - self._a.square().sum(0)) / self.damp
                return self._diag_cache.clone()
            return (1.0 - self._a[:, idx].square().sum(0)) / self.damp
        diag = self.inverse().diagonal()
        return diag.clone() if idx is None else diag[idx]

    def solve(self, v: Tensor) -> Tensor:
        """``H^-1 v`` for a vector or a ``d x k`` matrix: push-through
        ``(v - G^T (N damp I + G G^T)^-1 G v) / damp`` (one ``N x N`` Cholesky solve, no
        ``d x d`` matrix), else a Cholesky solve with ``H``."""
        v = v.to(self.dtype)
        vv = v.unsqueeze(1) if v.dim() == 1 else v
        if self.pushthrough:
            z = self._k_solve(self.grads @ vv)
            out = (vv - self.grads.T @ z) / self.damp
        else:
            out = self._k_solve(vv)
        return out.squeeze(1) if v.dim() == 1 else out

    def inverse_columns(self, idx: Tensor) -> Tensor:
        """Columns ``H^-1[:, idx]`` (``d x |idx|``): push-through
        ``(E_idx - A^T A[:, idx]) / damp``."""
        idx = torch.as_tensor(idx, dtype=torch.long, device=self.grads.device).reshape(-1)
        if self.pushthrough:
            cols = self._a.T @ self._a[:, idx]
            cols.neg_()
            cols[idx, torch.arange(len(idx), device=cols.device)] += 1.0
            return cols.div_(self.damp)
        if self._hinv is not None:
            return self._hinv[:, idx]
        e = torch.zeros(self.d, len(idx), dtype=self.dtype, device=self.grads.device)
        e[idx, torch.arange(len(idx), device=e.device)] = 1.0
        return self._k_solve(e)

    def set_update(self, w: Tensor, pruned: Tensor) -> Tensor:
        """Exact OBS update for the set ``P = pruned``, without ``H^-1``.

        Fixing ``delta_P = -w_P`` and minimising ``1/2 delta^T H delta`` over the kept
        weights ``K`` is ridge regression: ``delta_K = argmin damp ||x||^2 +
        ||G_K x - r||^2 / N`` with ``r = G_P w_P``, i.e.
        ``delta_K = (N damp I + G_K^T G_K)^-1 G_K^T r = G_K^T (N damp I + G_K G_K^T)^-1 r``,
        solved in whichever of the ``|K| x |K|`` and ``N x N`` spaces is smaller.
        """
        w = _check_vector(w, self.d).to(self.dtype)
        pruned = _check_pruned(pruned, self.d)
        delta = torch.zeros_like(w)
        delta[pruned] = -w[pruned]
        kept = ~pruned
        n_kept = int(kept.sum())
        if n_kept == 0 or not bool(pruned.any()):
            return delta
        delta[kept] = self._kept_update(w, pruned, kept, n_kept)
        return delta

    def _kept_update(self, w: Tensor, pruned: Tensor, kept: Tensor, n_kept: int) -> Tensor:
        # delta_K of set_update, from G_K itself.
        g = self.grads
        gk = g[:, kept]
        r = g[:, pruned] @ w[pruned]
        if self.n <= n_kept:
            m = gk @ gk.T
            m.diagonal().add_(self.n * self.damp)
            z = torch.cholesky_solve(r.unsqueeze(1), _cholesky(m, "N damp I + G_K G_K^T"))
            return gk.T @ z.squeeze(1)
        m = gk.T @ gk
        m.diagonal().add_(self.n * self.damp)
        rhs = (gk.T @ r).unsqueeze(1)
        return torch.cholesky_solve(rhs, _cholesky(m, "N damp I + G_K^T G_K"))[:, 0]


class BlockDampedFisher:
    """The block-diagonal part of ``H = damp I + G^T G / N``: one :class:`DampedFisher` per
    block of indices (``blocks``: ``[(start, stop), ...]`` covering ``0..d`` in order, e.g.
    from :func:`layer_blocks`). The cross-block entries of ``F`` are dropped, so every
    operation splits into independent per-block ones.

    With ``relative=True`` one absolute damping, ``damp * trace(F) / d`` of the whole
    Fisher, is used for every block. Accepted as ``hinv`` wherever :class:`DampedFisher`
    is.
    """

    def __init__(
        self,
        grads: Tensor,
        damp: float,
        blocks: Iterable[tuple[int, int]],
        *,
        relative: bool = False,
        dtype: torch.dtype | None = None,
    ) -> None:
        grads = _check_grads(grads)
        self.d = grads.shape[1]
        self.blocks = _check_blocks(blocks, self.d)
        self.damp = absolute_damp(grads, damp, relative)
        self.parts = [DampedFisher(grads[:, a:b], self.damp, dtype=dtype) for a, b in self.blocks]
        self.n = grads.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the computations."""
        return self.parts[0].dtype

    def block_inverses(self) -> list[Tensor]:
        """The dense inverse of each block."""
        return [p.inverse() for p in self.parts]

    def matrix(self) -> Tensor:
        """The dense block-diagonal ``d x d`` matrix (small ``d`` only)."""
        return torch.block_diag(*[p.matrix() for p in self.parts])

    def inverse(self) -> Tensor:
        """The dense block-diagonal ``d x d`` inverse (small ``d`` only)."""
        return torch.block_diag(*self.block_inverses())

    def diag_inverse(self, idx: Tensor | None = None) -> Tensor:
        """``diag(H^-1)``, block by block (entries ``idx`` only, if given)."""
        diag = torch.cat([p.diag_inverse() for p in self.parts])
        return diag if idx is None else diag[idx]

    def solve(self, v: Tensor) -> Tensor:
        """``H^-1 v`` for a vector or a ``d x k`` matrix, block by block."""
        return torch.cat(
            [p.solve(v[a:b]) for p, (a, b) in zip(self.parts, self.blocks, strict=True)]
        )

    def inverse_columns(self, idx: Tensor) -> Tensor:
        """Columns ``H^-1[:, idx]`` (``d x |idx|``); zero outside each column's block."""
        idx = torch.as_tensor(idx, dtype=torch.long).reshape(-1)
        e = torch.zeros(self.d, len(idx), dtype=self.dtype, device=self.parts[0].grads.device)
        e[idx, torch.arange(len(idx))] = 1.0
        return self.solve(e)

    def set_update(self, w: Tensor, pruned: Tensor) -> Tensor:
        """Exact OBS set update; the constraint and ``H`` split by block, so it is
        :meth:`DampedFisher.set_update` in every block."""
        w = _check_vector(w, self.d)
        pruned = _check_pruned(pruned, self.d)
        return torch.cat(
            [
                p.set_update(w[a:b], pruned[a:b])
                for p, (a, b) in zip(self.parts, self.blocks, strict=True)
            ]
        )


HInverse = Tensor | DampedFisher | BlockDampedFisher


def _check_blocks(blocks: Iterable[tuple[int, int]], d: int) -> list[tuple[int, int]]:
    out, expected = [], 0
    for block in blocks:
        try:
            a, b = (int(block[0]), int(block[1]))
        except (TypeError, ValueError, IndexError):
            raise ValueError(f"a block must be a (start, stop) pair, got {block!r}") from None
        if a != expected or b <= a:
            raise ValueError(
                f"blocks must be non-empty consecutive ranges covering 0..{d} in order; "
                f"got ({a}, {b}) where a block starting at {expected} was expected"
            )
        out.append((a, b))
        expected = b
    if expected != d:
        raise ValueError(f"blocks cover 0..{expected} but the gradients have d = {d}")
    return out


def woodbury_inverse(
    grads: Tensor,
    damp: float,
    *,
    scale_n: int | None = None,
    init: Tensor | None = None,
) -> Tensor:
    """WoodFisher's Woodbury recursion, one rank-one update per gradient:

        H_0^-1 = I / damp,   u = H_{n-1}^-1 g_n,
        H_n^-1 = H_{n-1}^-1 - u u^T / (S + g_n^T u),

    so that after all ``N`` rows ``H_N^-1 = (damp I + G^T G / S)^-1``. ``S = scale_n``
    defaults to ``N``; pass the full count to run the recursion over a subset of the
    gradients (e.g. to time part of it), and ``init`` to continue from an earlier
    ``H^-1`` (then ``damp`` is unused). ``damp`` is absolute here. ``O(N d^2)`` time and
    one ``d x d`` matrix, updated in place.
    """
    grads = _check_grads(grads)
    d = grads.shape[1]
    s = float(grads.shape[0] if scale_n is None else scale_n)
    if s <= 0:
        raise ValueError(f"scale_n must be positive, got {scale_n}")
    if init is None:
        damp = _check_damp(damp)
        hinv = torch.zeros(d, d, dtype=grads.dtype, device=grads.device)
        hinv.diagonal().fill_(1.0 / damp)
    else:
        if init.shape != (d, d):
            raise ValueError(f"init must be {d} x {d}, got {tuple(init.shape)}")
        hinv = init.to(grads.dtype).clone()
    for g in grads:
        u = hinv @ g
        denom = s + float(g @ u)
        if not denom > 0:
            raise ValueError("Woodbury recursion lost positive definiteness: increase damp")
        hinv.addr_(u, u, alpha=-1.0 / denom)
    return hinv


def fisher_inverse(
    grads: Tensor,
    damp: float,
    *,
    route: str = "auto",
    relative: bool = False,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """The dense inverse ``(damp I + G^T G / N)^-1`` of the damped empirical Fisher.

    Routes (identical results up to rounding):

    * ``"woodbury"``: :func:`woodbury_inverse`, one rank-one update per gradient.
    * ``"direct"`` (and ``"auto"``): for ``N < d`` the push-through identity
      ``(I - G^T (N damp I + G G^T)^-1 G) / damp`` (one ``N x N`` Cholesky), for
      ``N >= d`` a Cholesky factorisation of the ``d x d`` matrix.

    ``damp`` > 0 is absolute, or relative to the mean diagonal of ``F`` when
    ``relative`` (:func:`absolute_damp`). Computed in ``dtype`` (default: that of
    ``grads``). A matrix that cannot be factorised raises ``ValueError`` ("increase damp").
    Returns a ``d x d`` matrix: 4.2 GB in float32 at ``d = 32,360``; for large ``d``
    prefer the operator :class:`DampedFisher`.
    """
    if route not in ROUTES:
        raise ValueError(f"unknown route {route!r}; valid routes: {', '.join(ROUTES)}")
    grads = _check_grads(grads)
    lam = absolute_damp(grads, damp, relative)
    if dtype is not None:
        grads = grads.to(dtype)
    if route == "woodbury":
        return woodbury_inverse(grads, lam)
    return DampedFisher(grads, lam).inverse()


def block_fisher_inverse(
    grads: Tensor,
    damp: float,
    blocks: Iterable[tuple[int, int]],
    *,
    route: str = "auto",
    relative: bool = False,
    dtype: torch.dtype | None = None,
) -> list[Tensor]:
    """Inverses of the diagonal blocks of ``H = damp I + G^T G / N``: for each block
    ``B = [start, stop)``, ``(damp I + G_B^T G_B / N)^-1``, by ``route`` as in
    :func:`fisher_inverse`. ``blocks`` must cover ``0..d`` in order (see
    :func:`layer_blocks`: one block per layer, or fixed-size chunks within a layer).
    ``torch.block_diag(*result)`` is the inverse of the block-diagonal approximation.
    With ``relative``, one damping ``damp * trace(F) / d`` of the whole Fisher is used.
    """
    if route not in ROUTES:
        raise ValueError(f"unknown route {route!r}; valid routes: {', '.join(ROUTES)}")
    grads = _check_grads(grads)
    blocks = _check_blocks(blocks, grads.shape[1])
    lam = absolute_damp(grads, damp, relative)
    return [fisher_inverse(grads[:, a:b], lam, route=route, dtype=dtype) for a, b in blocks]
