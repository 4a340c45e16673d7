"""The damped empirical Fisher of chapter 4: gradients, damping, and inverting it.

Everything here works on the flat vector ``w`` of the prunable weights (in the order of
:func:`minipruner.core.masks.prunable`; see :func:`flatten_weights`) and on an ``N x d`` matrix
``G`` whose rows are per-sample (or per-mini-batch) gradients ``g_n`` of the loss with
respect to ``w`` (see :func:`per_sample_grads`). The damped empirical Fisher is

    H = damp * I + F,    F = G^T G / N = (1/N) sum_n g_n g_n^T.

The OBS updates that use ``H^-1`` are in :mod:`minipruner.methods.obs`, the CBS selection in
:mod:`minipruner.methods.cbs`; every name here is also importable as
``minipruner.methods.obs.<name>``.

Inverting ``H``
---------------
Three equal routes, all in :func:`fisher_inverse`:

* Woodbury recursion (WoodFisher): ``H_0^-1 = I / damp`` and for each gradient
  ``H_n^-1 = H_{n-1}^-1 - u u^T / (N + g_n^T u)`` with ``u = H_{n-1}^-1 g_n``
  (one rank-one update per gradient, ``O(N d^2)``).
* Push-through (``N < d``): ``H^-1 = (I - G^T (N damp I_N + G G^T)^-1 G) / damp``: one
  ``N x N`` Cholesky factorisation. The same identity gives ``diag(H^-1)``, ``H^-1 v``,
  columns of ``H^-1`` and the exact set update without ever forming a ``d x d`` matrix
  (:class:`DampedFisher`).
* Dense (``N >= d``): form ``H``, Cholesky-factorise it, invert.
* Spectrum, for many dampings: ``G G^T = Q Lambda Q^T`` once, then
  ``(N damp I + G G^T)^-1 = Q (N damp I + Lambda)^-1 Q^T`` for every ``damp`` with no new
  factorisation (:class:`FisherSpectrum`; its :meth:`~FisherSpectrum.at` gives the
  :class:`DampedFisher` of one damping).

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
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from ..core.masks import prunable, prunable_modules

ROUTES = ("auto", "woodbury", "direct")

__all__ = [
    "ROUTES",
    "BlockDampedFisher",
    "DampedFisher",
    "FisherSpectrum",
    "HInverse",
    "absolute_damp",
    "block_fisher_inverse",
    "fisher_inverse",
    "flatten_weights",
    "layer_blocks",
    "per_sample_grads",
    "unflatten_weights",
    "woodbury_inverse",
]


# --------------------------------------------------------------------------------------
# Flat vectors and gradients
# --------------------------------------------------------------------------------------


def flatten_weights(tensors: Mapping[str, Tensor], names: Sequence[str] | None = None) -> Tensor:
    """Concatenate ``{name: tensor}`` into one flat vector: ``w = [vec(t_1); vec(t_2); ...]``.

    The order is that of ``names`` if given, else the mapping's own order (for
    :func:`minipruner.core.masks.prunable` the forward order). Tensors are detached.
    """
    names = list(tensors) if names is None else list(names)
    if not names:
        raise ValueError("nothing to flatten: no tensors given")
    return torch.cat([tensors[n].detach().reshape(-1) for n in names])


def unflatten_weights(vector: Tensor, like: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Split a flat vector back into ``{name: tensor}`` shaped like ``like`` (inverse of
    :func:`flatten_weights`): entry ``name`` is ``vector[o : o + n].reshape(shape)`` where
    ``o`` is the number of entries of the tensors before it."""
    total = sum(t.numel() for t in like.values())
    if vector.dim() != 1 or vector.numel() != total:
        raise ValueError(
            f"vector of shape {tuple(vector.shape)} does not match the {total} entries of "
            f"{list(like)}"
        )
    out, start = {}, 0
    for name, t in like.items():
        out[name] = vector[start : start + t.numel()].reshape(t.shape)
        start += t.numel()
    return out


def layer_blocks(
    like: nn.Module | Mapping[str, Tensor], chunk_size: int | None = None
) -> list[tuple[int, int]]:
    """Index ranges ``[(start, stop), ...]`` of each layer in the flat vector, for the
    block-diagonal Fisher. ``like`` is a model (its prunable weights) or ``{name: tensor}``.

    With ``chunk_size`` every layer is further cut into consecutive chunks of at most
    ``chunk_size`` entries (WoodFisher's fixed-size blocks within a layer); a block never
    spans two layers.
    """
    tensors = prunable(like) if isinstance(like, nn.Module) else like
    if chunk_size is not None and (isinstance(chunk_size, bool) or int(chunk_size) < 1):
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    blocks, start = [], 0
    for t in tensors.values():
        stop = start + t.numel()
        step = t.numel() if chunk_size is None else int(chunk_size)
        for a in range(start, stop, step):
            blocks.append((a, min(a + step, stop)))
        start = stop
    return blocks


def _cross_entropy(out: Tensor, y: Tensor) -> Tensor:
    return nn.functional.cross_entropy(out, y)


def per_sample_grads(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    names: Sequence[str] | None = None,
    *,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    batch_size: int = 1,
    chunk_size: int | None = None,
) -> Tensor:
    """Per-sample gradients ``G[n] = d loss(f(x_n; w), y_n) / d w`` as an ``N x d`` matrix.

    ``w`` is the flat vector of the prunable weights ``names`` (default: all of them, in
    the order of :func:`minipruner.core.masks.prunable`); biases and every other parameter or
    buffer are held fixed. Computed with :func:`torch.func.vmap` over
    :func:`torch.func.grad` of a :func:`torch.func.functional_call`, in ``chunk_size``
    samples at a time (default: all at once) to bound memory.

    ``loss_fn(outputs, targets)`` defaults to the cross-entropy (mean over its batch).
    With ``batch_size = m > 1`` each row is the gradient of the mean loss over one
    mini-batch of ``m`` consecutive examples (``N / m`` rows; ``N`` must be divisible by
    ``m``), the per-mini-batch Fisher that WoodFisher also uses.

    The model is run in its current mode: put a model with batch norm or dropout in eval
    mode first. For a layer that carries a mask the gradient is taken with respect to
    ``weight_orig`` at the effective weight, so it is zero at pruned entries.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} examples but y has {y.shape[0]}")
    if x.shape[0] == 0:
        raise ValueError("no examples given")
    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    m = int(batch_size)
    if x.shape[0] % m:
        raise ValueError(f"{x.shape[0]} examples cannot be split into mini-batches of {m}")
    modules = prunable_modules(model)
    weights = prunable(model)
    names = list(weights) if names is None else list(names)
    unknown = [n for n in names if n not in weights]
    if unknown:
        raise ValueError(f"{unknown} are not prunable weights; valid names: {list(weights)}")
    if not names:
        raise ValueError("names is empty: no weights to differentiate")
    loss_fn = _cross_entropy if loss_fn is None else loss_fn

    keys = {}
    for n in names:
        masked = hasattr(modules[n], "weight_mask")
        keys[n] = n.removesuffix("weight") + "weight_orig" if masked else n
    params = {keys[n]: weights[n].detach() for n in names}

    def loss_of(p: dict[str, Tensor], xb: Tensor, yb: Tensor) -> Tensor:
        return loss_fn(functional_call(model, p, (xb,)), yb)

    xs = x.reshape(x.shape[0] // m, m, *x.shape[1:])
    ys = y.reshape(y.shape[0] // m, m, *y.shape[1:])
    try:
        g = vmap(grad(loss_of), in_dims=(None, 0, 0), chunk_size=chunk_size)(params, xs, ys)
    finally:
        # torch.nn.utils.prune's pre-hook stored a functional weight on masked modules;
        # recompute the real one so that the module is left as it was.
        for n in names:
            module = modules[n]
            if hasattr(module, "weight_mask"):
                module.weight = module.weight_orig * module.weight_mask
    return torch.cat([g[keys[n]].reshape(xs.shape[0], -1) for n in names], dim=1)


# --------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------


def _check_grads(grads: Tensor) -> Tensor:
    if not isinstance(grads, Tensor) or grads.dim() != 2:
        shape = tuple(grads.shape) if isinstance(grads, Tensor) else type(grads).__name__
        raise ValueError(f"grads must be an N x d matrix, got {shape}")
    if grads.shape[0] < 1 or grads.shape[1] < 1:
        raise ValueError(f"grads must have at least one row and column, got {tuple(grads.shape)}")
    if not grads.is_floating_point():
        raise ValueError(f"grads must be floating point, got {grads.dtype}")
    low, high = grads.detach().aminmax()  # NaN propagates; cheaper than isfinite on a big G
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("grads contains NaN or infinity")
    return grads.detach()


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


def _check_vector(w: Tensor, d: int, what: str = "w") -> Tensor:
    if not isinstance(w, Tensor) or w.dim() != 1 or w.numel() != d:
        shape = tuple(w.shape) if isinstance(w, Tensor) else type(w).__name__
        raise ValueError(f"{what} must be a vector of length {d}, got {shape}")
    return w.detach()


def _check_pruned(pruned: Tensor, d: int, what: str = "pruned") -> Tensor:
    if not isinstance(pruned, Tensor) or pruned.dtype != torch.bool or pruned.shape != (d,):
        desc = (
            f"{pruned.dtype} {tuple(pruned.shape)}"
            if isinstance(pruned, Tensor)
            else type(pruned).__name__
        )
        raise ValueError(f"{what} must be a bool vector of length {d}, got {desc}")
    return pruned


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
        self._chol: Tensor | None = chol
        self._spectrum: FisherSpectrum | None = None
        self._a_cache: Tensor | None = None
        self._hinv: Tensor | None = None
        self._diag_cache: Tensor | None = None

    @classmethod
    def _from_spectrum(cls, spectrum: FisherSpectrum, damp: float) -> DampedFisher:
        # The same operator, with K^-1 (or H^-1) applied through the stored eigenvectors.
        self = cls.__new__(cls)
        self.damp, self.grads = damp, spectrum.grads
        self.n, self.d, self.pushthrough = spectrum.n, spectrum.d, spectrum.pushthrough
        self._chol, self._spectrum = None, spectrum
        self._a_cache, self._hinv, self._diag_cache = None, None, None
        return self

    def _shifted(self) -> Tensor:
        # Spectrum route: the eigenvalues of K = N damp I + G G^T (push-through) or of H.
        shift = self.n * self.damp if self.pushthrough else self.damp
        return self._spectrum.eigenvalues + shift

    def _k_solve(self, r: Tensor) -> Tensor:
        # K^-1 r (push-through) or H^-1 r (N >= d), by whichever factor this operator holds.
        if self._chol is not None:
            return torch.cholesky_solve(r, self._chol)
        q = self._spectrum.vectors
        return q @ ((q.T @ r) / self._shifted().unsqueeze(1))

    @property
    def _a(self) -> Tensor:
        # A (N x d) with A^T A = G^T K^-1 G, so that H^-1 = (I - A^T A) / damp: L^-1 G from
        # the Cholesky factor, or (N damp I + Lambda)^-1/2 Q^T G from the spectrum. On first use.
        if self._a_cache is None:
            if self._chol is not None:
                self._a_cache = torch.linalg.solve_triangular(self._chol, self.grads, upper=False)
            else:
                self._a_cache = self._spectrum.z * self._shifted().rsqrt().unsqueeze(1)
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
            elif self._chol is not None:
                hinv = torch.cholesky_inverse(self._chol)
            else:
                q = self._spectrum.vectors
                hinv = (q / self._shifted()) @ q.T
            self._hinv = hinv
        return self._hinv

    def diag_inverse(self, idx: Tensor | None = None) -> Tensor:
        """``diag(H^-1)`` (entries ``idx`` only, if given): push-through
        ``[H^-1]_qq = (1 - sum_n A_nq^2) / damp``, no ``d x d`` matrix."""
        if self.pushthrough and self._chol is None and self._a_cache is None:
            if self._diag_cache is None:  # one pass over Q^T G per damping
                self._diag_cache = self._spectrum._diag(self.n * self.damp) / self.damp
            return self._diag_cache.clone() if idx is None else self._diag_cache[idx]
        if self.pushthrough:
            a = self._a if idx is None else self._a[:, idx]
            return (1.0 - a.square().sum(0)) / self.damp
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
        solved in whichever of the ``|K| x |K|`` and ``N x N`` spaces is smaller. From a
        :class:`FisherSpectrum`, the undamped ``G_K G_K^T`` (or ``G_K^T G_K``) of the last
        few sets is kept, so a set's update at a new damping costs one Cholesky factorisation.
        """
        w = _check_vector(w, self.d).to(self.dtype)
        pruned = _check_pruned(pruned, self.d)
        delta = torch.zeros_like(w)
        delta[pruned] = -w[pruned]
        kept = ~pruned
        n_kept = int(kept.sum())
        if n_kept == 0 or not bool(pruned.any()):
            return delta
        g = self.grads
        if self._spectrum is not None:  # the kept set's Gram from the cache; G read twice
            m = self._spectrum._kept_gram(kept).clone()
            m.diagonal().add_(self.n * self.damp)
            r = (g @ torch.where(pruned, w, 0.0)).unsqueeze(1)  # G_P w_P
            if self.n <= n_kept:
                z = torch.cholesky_solve(r, _cholesky(m, "N damp I + G_K G_K^T"))
                delta[kept] = (g.T @ z)[kept, 0]
            else:
                rhs = (g.T @ r)[kept]
                delta[kept] = torch.cholesky_solve(rhs, _cholesky(m, "N damp I + G_K^T G_K"))[:, 0]
            return delta
        gk = g[:, kept]
        r = g[:, pruned] @ w[pruned]
        if self.n <= n_kept:
            m = gk @ gk.T
            m.diagonal().add_(self.n * self.damp)
            z = torch.cholesky_solve(r.unsqueeze(1), _cholesky(m, "N damp I + G_K G_K^T"))
            delta[kept] = gk.T @ z.squeeze(1)
        else:
            m = gk.T @ gk
            m.diagonal().add_(self.n * self.damp)
            rhs = (gk.T @ r).unsqueeze(1)
            delta[kept] = torch.cholesky_solve(rhs, _cholesky(m, "N damp I + G_K^T G_K"))[:, 0]
        return delta


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
        return DampedFisher._from_spectrum(self, lam)


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
