"""The damped Fisher for many dampings: one eigendecomposition, then every damping without a
new factorisation (chapter 4's damping sweeps and its live explorer).

:class:`minipruner.methods.fisher.DampedFisher` Cholesky-factorises
``K = N damp I + G G^T`` (push-through, ``N < d``) or ``H = damp I + G^T G / N`` for one
``damp``. Here the damping-free part is diagonalised once, ``G G^T = Q Lambda Q^T`` (or
``F = Q Lambda Q^T`` when ``N >= d``), and every damping is a shift of the eigenvalues:

    (N damp I + G G^T)^-1 = Q (N damp I + Lambda)^-1 Q^T.

:meth:`FisherSpectrum.at` returns, for one damping, a :class:`DampedFisher` whose three
factor-specific steps (``K^-1 r``, ``A`` with ``A^T A = G^T K^-1 G``, the dense ``H^-1``)
read the stored eigenvectors instead of a Cholesky factor; every other method is the
Cholesky route's, and so is every result, up to rounding. Also importable as
``minipruner.methods.obs.FisherSpectrum``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor

from .fisher import DampedFisher, _cholesky, _outer_gram, absolute_damp
from .gradients import _check_grads

__all__ = ["FisherSpectrum"]


class FisherSpectrum:
    """The damping-free part of ``H = damp I + G^T G / N``, factorised once so that any
    damping costs no new factorisation.

    With ``N < d`` it diagonalises the ``N x N`` Gram matrix ``G G^T = Q Lambda Q^T`` and
    stores ``Z = Q^T G`` (``N x d``). For every ``damp``, since
    ``(N damp I + G G^T)^-1 = Q (N damp I + Lambda)^-1 Q^T``,

        H^-1 = (I - Z^T (N damp I + Lambda)^-1 Z) / damp,
        [H^-1]_qq = (1 - sum_n Z_nq^2 / (N damp + Lambda_n)) / damp,

    so ``diag(H^-1)`` costs ``O(N d)`` and ``H^-1 v`` two products with ``G`` and ``Q``. With
    ``N >= d`` it diagonalises ``F = G^T G / N = Q Lambda Q^T`` instead and
    ``H^-1 = Q (damp I + Lambda)^-1 Q^T``. The eigendecomposition (``O(N^3)``) and
    ``Q^T G`` (``O(N^2 d)``) are paid once; :meth:`at` then returns the
    :class:`DampedFisher` of a damping (same methods, same results as the Cholesky route up
    to rounding) in ``O(N d)``. Eigenvalues that rounding makes negative are set to 0
    (``G G^T`` is positive semi-definite).

    Example::

        spectrum = FisherSpectrum(G)
        for damp in (1e-5, 1e-4, 1e-3):
            saliency = w**2 / (2 * spectrum.at(damp).diag_inverse())
    """

    def __init__(self, grads: Tensor, *, dtype: torch.dtype | None = None) -> None:
        grads = _check_grads(grads)
        self.grads = grads.to(dtype) if dtype is not None else grads
        self.n, self.d = self.grads.shape
        self.pushthrough = self.n < self.d
        g = self.grads
        gram = _outer_gram(g) if self.pushthrough else g.T @ g / self.n
        values, self.vectors = torch.linalg.eigh(gram)
        self.eigenvalues = values.clamp_min(0.0)
        self.z = self.vectors.T @ g if self.pushthrough else None
        # K's eigenvalues are exact to about N eps ||K||: a damping below that is unresolved.
        self._floor = float(self.eigenvalues.max()) * torch.finfo(g.dtype).eps * len(values)
        self._grams: OrderedDict[bytes, Tensor] = OrderedDict()

    def _kept_gram(self, kept: Tensor, size: int = 4) -> Tensor:
        # The undamped G_K G_K^T (N <= |K|) or G_K^T G_K of the kept set K, for the last
        # `size` sets: a set's update at another damping then needs no product of G_K.
        key = kept.cpu().numpy().tobytes()
        if key not in self._grams:
            gk = self.grads[:, kept]
            self._grams[key] = gk @ gk.T if self.n <= gk.shape[1] else gk.T @ gk
            while len(self._grams) > size:
                self._grams.popitem(last=False)
        self._grams.move_to_end(key)
        return self._grams[key]

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the computations."""
        return self.grads.dtype

    def _diag(self, shift: float, rows: int = 16) -> Tensor:
        # 1 - sum_n Z_nq^2 / (shift + Lambda_n) for every q: one pass over Z, a band of
        # contiguous rows at a time, so that no second N x d matrix is allocated.
        weights = 1.0 / (self.eigenvalues + shift)
        total = torch.zeros(self.d, dtype=self.z.dtype, device=self.z.device)
        for a in range(0, self.n, rows):
            total.addmv_(self.z[a : a + rows].square().T, weights[a : a + rows])
        return 1.0 - total

    def at(self, damp: float, *, relative: bool = False) -> DampedFisher:
        """The :class:`DampedFisher` ``H = damp I + G^T G / N`` for this ``damp`` (absolute,
        or relative to ``trace(F) / d`` when ``relative``, as in :func:`absolute_damp`),
        computed from the stored spectrum: no factorisation. Raises ``ValueError`` when the
        damping is too small for this dtype to resolve (as the Cholesky route would)."""
        lam = absolute_damp(self.grads, damp, relative)
        shift = self.n * lam if self.pushthrough else lam
        if not shift > self._floor:
            raise ValueError(
                f"damp {lam:g} is below what {self.dtype} resolves for this Fisher (largest "
                f"eigenvalue {float(self.eigenvalues.max()):g}): increase damp, or compute in "
                "float64"
            )
        return _SpectralFisher(self, lam)


class _SpectralFisher(DampedFisher):
    """The :class:`DampedFisher` of one damping ``damp`` (absolute), computed from a
    :class:`FisherSpectrum`: ``K^-1 = Q (N damp I + Lambda)^-1 Q^T`` (push-through) or
    ``H^-1 = Q (damp I + Lambda)^-1 Q^T`` (``N >= d``) replaces the Cholesky factor, and
    ``diag(H^-1)`` and the set update read the spectrum's caches."""

    def __init__(self, spectrum: FisherSpectrum, damp: float) -> None:
        # No factorisation: the spectrum holds it.
        self.damp, self.grads = damp, spectrum.grads
        self.n, self.d, self.pushthrough = spectrum.n, spectrum.d, spectrum.pushthrough
        self._spectrum = spectrum
        self._a_cache: Tensor | None = None
        self._hinv: Tensor | None = None
        self._diag_cache: Tensor | None = None

    def _shifted(self) -> Tensor:
        # The eigenvalues of K = N damp I + G G^T (push-through) or of H.
        shift = self.n * self.damp if self.pushthrough else self.damp
        return self._spectrum.eigenvalues + shift

    def _k_solve(self, r: Tensor) -> Tensor:
        # K^-1 r (push-through) or H^-1 r (N >= d), through the stored eigenvectors.
        q = self._spectrum.vectors
        return q @ ((q.T @ r) / self._shifted().unsqueeze(1))

    def _make_a(self) -> Tensor:
        # A = (N damp I + Lambda)^-1/2 Q^T G, so that A^T A = G^T K^-1 G.
        return self._spectrum.z * self._shifted().rsqrt().unsqueeze(1)

    def _dense_inverse(self) -> Tensor:
        # H^-1 = Q (damp I + Lambda)^-1 Q^T for N >= d.
        q = self._spectrum.vectors
        return (q / self._shifted()) @ q.T

    def diag_inverse(self, idx: Tensor | None = None) -> Tensor:
        """``diag(H^-1)`` (entries ``idx`` only, if given): push-through, before ``A`` is
        formed, ``[H^-1]_qq = (1 - sum_n Z_nq^2 / (N damp + Lambda_n)) / damp``, one pass
        over ``Z = Q^T G`` per damping; otherwise as :meth:`DampedFisher.diag_inverse`."""
        if self.pushthrough and self._a_cache is None:
            if self._diag_cache is None:  # one pass over Q^T G per damping
                self._diag_cache = self._spectrum._diag(self.n * self.damp) / self.damp
            return self._diag_cache.clone() if idx is None else self._diag_cache[idx]
        return super().diag_inverse(idx)

    def _kept_update(self, w: Tensor, pruned: Tensor, kept: Tensor, n_kept: int) -> Tensor:
        # delta_K of set_update, with the undamped G_K G_K^T (or G_K^T G_K) of the last few
        # sets kept by the spectrum, so that a set's update at a new damping costs one
        # Cholesky factorisation; G is read twice.
        g = self.grads
        m = self._spectrum._kept_gram(kept).clone()
        m.diagonal().add_(self.n * self.damp)
        r = (g @ torch.where(pruned, w, 0.0)).unsqueeze(1)  # G_P w_P
        if self.n <= n_kept:
            z = torch.cholesky_solve(r, _cholesky(m, "N damp I + G_K G_K^T"))
            return (g.T @ z)[kept, 0]
        rhs = (g.T @ r)[kept]
        return torch.cholesky_solve(rhs, _cholesky(m, "N damp I + G_K^T G_K"))[:, 0]
