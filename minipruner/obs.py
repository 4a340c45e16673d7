"""Chapter 4: second-order pruning (OBS, WoodFisher, CBS) on flat weight vectors.

Everything here works on the flat vector ``w`` of the prunable weights (in the order of
:func:`minipruner.masks.prunable`; see :func:`flatten_weights`) and on an ``N x d`` matrix
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from .masks import apply_masks, masks_from_scores, prunable, prunable_modules

ROUTES = ("auto", "woodbury", "direct")
METHODS = ("mp", "wf-s", "wf", "cbs-s", "cbs")

__all__ = [
    "METHODS",
    "ROUTES",
    "BlockDampedFisher",
    "CBSResult",
    "DampedFisher",
    "absolute_damp",
    "block_fisher_inverse",
    "cbs_objective",
    "cbs_select",
    "fisher_inverse",
    "flatten_weights",
    "layer_blocks",
    "multi_weight_update",
    "oneshot_prune",
    "per_sample_grads",
    "set_saliency",
    "set_flat_weights",
    "single_weight_saliency",
    "single_weight_update",
    "unflatten_weights",
    "woodbury_inverse",
    "woodfisher_update",
]


# --------------------------------------------------------------------------------------
# Flat vectors and gradients
# --------------------------------------------------------------------------------------


def flatten_weights(tensors: Mapping[str, Tensor], names: Sequence[str] | None = None) -> Tensor:
    """Concatenate ``{name: tensor}`` into one flat vector: ``w = [vec(t_1); vec(t_2); ...]``.

    The order is that of ``names`` if given, else the mapping's own order (for
    :func:`minipruner.masks.prunable` the forward order). Tensors are detached.
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
    the order of :func:`minipruner.masks.prunable`); biases and every other parameter or
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
    if not torch.isfinite(grads).all():
        raise ValueError("grads contains NaN or infinity")
    return grads.detach()


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
            k = g @ g.T
            k.diagonal().add_(self.n * self.damp)
            self._chol = _cholesky(k, f"the {self.n} x {self.n} matrix N damp I + G G^T")
        else:
            self._chol = _cholesky(self.matrix(), f"the {self.d} x {self.d} damped Fisher")
        self._a_cache: Tensor | None = None
        self._hinv: Tensor | None = None

    @property
    def _a(self) -> Tensor:
        # A = L^-1 G (N x d), computed on first use: H^-1 = (I - A^T A) / damp.
        if self._a_cache is None:
            self._a_cache = torch.linalg.solve_triangular(self._chol, self.grads, upper=False)
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
                hinv = torch.cholesky_inverse(self._chol)
            self._hinv = hinv
        return self._hinv

    def diag_inverse(self, idx: Tensor | None = None) -> Tensor:
        """``diag(H^-1)`` (entries ``idx`` only, if given): push-through
        ``[H^-1]_qq = (1 - sum_n A_nq^2) / damp``, no ``d x d`` matrix."""
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
            z = torch.cholesky_solve(self.grads @ vv, self._chol)
            out = (vv - self.grads.T @ z) / self.damp
        else:
            out = torch.cholesky_solve(vv, self._chol)
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
        return torch.cholesky_solve(e, self._chol)

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
        g = self.grads
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
# CBS-S: combinatorial selection
# --------------------------------------------------------------------------------------


class _Gram:
    """``F = G^T G / N`` through ``G`` (``O(N d)`` per product), or formed densely when
    ``d <= N`` and it is small, where products with ``F`` are cheaper."""

    def __init__(self, grads: Tensor, dense_limit: int = 1 << 24) -> None:
        self.g = grads
        self.n, self.d = grads.shape
        self.f = grads.T @ grads / self.n if self.d <= self.n and self.d**2 <= dense_limit else None

    def matvec(self, v: Tensor) -> Tensor:
        return self.f @ v if self.f is not None else self.g.T @ (self.g @ v) / self.n

    def columns_times(self, idx: Tensor, coeff: Tensor) -> Tensor:
        if self.f is not None:
            return self.f[:, idx] @ coeff
        return self.g.T @ (self.g[:, idx] @ coeff) / self.n

    def block(self, rows: Tensor, cols: Tensor) -> Tensor:
        if self.f is not None:
            return self.f[rows][:, cols]
        return self.g[:, rows].T @ self.g[:, cols] / self.n

    def diag(self) -> Tensor:
        return self.f.diagonal().clone() if self.f is not None else self.g.square().sum(0) / self.n


def cbs_objective(w: Tensor, grads: Tensor, keep: Tensor) -> float:
    """The CBS-S objective of pruning ``P = ~keep``: ``w_P^T F_PP w_P = ||G_P w_P||^2 / N``
    with ``F = G^T G / N`` (undamped), computed through ``G``."""
    grads = _check_grads(grads)
    w = _check_vector(w, grads.shape[1]).to(grads.dtype)
    keep = _check_pruned(keep, grads.shape[1], "keep")
    return float((grads @ torch.where(keep, torch.zeros_like(w), w)).square().sum()) / len(grads)


@dataclass
class CBSResult:
    """What :func:`cbs_select` did. Iterate 0 is the chosen start; iterate ``t`` follows
    ``t`` accepted swaps; ``swaps[t-1] = (i, j)``: weight ``i`` returned (kept), ``j`` pruned.

    ``keep``/``objective``: the returned keep-mask and its objective; ``chosen``: its
    iterate. ``magnitude_objective``: objective of plain magnitude pruning (start 0);
    ``start_objectives``: of every start; ``start_index``: the start searched from;
    ``objectives``: per iterate; ``iterations``: windows evaluated; ``losses``:
    ``{iterate: loss_fn value}`` when a ``loss_fn`` was given.
    """

    keep: Tensor
    objective: float
    magnitude_objective: float
    start_objectives: list[float]
    start_index: int
    objectives: list[float]
    swaps: list[tuple[int, int]]
    iterations: int
    chosen: int
    start_keep: Tensor
    losses: dict[int, float] = field(default_factory=dict)

    @property
    def start_objective(self) -> float:
        """Objective of the start the local search began from."""
        return self.objectives[0]

    def keep_at(self, t: int) -> Tensor:
        """The keep-mask of iterate ``t``."""
        if not 0 <= t < len(self.objectives):
            raise ValueError(f"iterate {t} does not exist (0..{len(self.objectives) - 1})")
        keep = self.start_keep.clone()
        for i, j in self.swaps[:t]:
            keep[i], keep[j] = True, False
        return keep


def _lowest(scores: Tensor, k: int) -> Tensor:
    # Stable ascending sort: among ties the lower index goes first, as masks_from_scores.
    return torch.sort(scores, stable=True).indices[:k]


def cbs_select(
    w: Tensor,
    grads: Tensor,
    n_prune: int,
    *,
    n_random_starts: int = 10,
    noise: float = 0.5,
    epsilon: float = 1e-4,
    rho: int = 10,
    tau: int = 20,
    max_iters: int = 1000,
    seed: int = 0,
    loss_fn: Callable[[Tensor], float] | None = None,
    loss_every: int = 10,
    return_history: bool = False,
) -> Tensor | CBSResult:
    """CBS-S (Yu et al. 2022): choose ``n_prune`` weights to remove by approximately
    minimising ``f(P) = w_P^T F_PP w_P = ||G_P w_P||^2 / N`` (``F = G^T G / N``, the
    loss increase of pruning ``P`` without update). Returns a bool keep-mask (True =
    keep) with exactly ``n_prune`` False, or a :class:`CBSResult` if ``return_history``.

    1. Starts: plain magnitude pruning (the ``n_prune`` smallest ``|w|``, ties to the
       lower index) and ``n_random_starts - 1`` randomised ones that prune the smallest
       ``|w| * exp(noise * xi)``, ``xi ~ N(0, 1)`` (seeded by ``seed``). The start with the
       lowest ``f`` wins (ties: the earlier, so magnitude pruning on a tie).
    2. Swap local search. With ``u = w * [q in P]``, ``c_q = w_q (F u)_q`` and
       ``s_q = w_q^2 F_qq``, returning ``i`` from ``P`` changes ``f`` by ``-alpha_i``,
       ``alpha_i = 2 c_i - s_i``; pruning ``j`` changes it by ``beta_j = 2 c_j + s_j``;
       swapping both changes it exactly by ``Delta_ij = -alpha_i + beta_j - 2 w_i w_j F_ij``.
       Each iteration takes the ``m`` pruned weights of largest ``alpha`` and the ``m``
       kept weights of smallest ``beta``, evaluates all ``m^2`` swaps and makes the best
       one if it lowers ``f`` by more than ``epsilon * f`` (relative threshold). The
       window is ``m = rho`` after a successful swap and grows by ``rho`` after each
       failed iteration; the search stops after ``tau`` consecutive failures (patience),
       when the window covers both sides, after ``max_iters`` iterations, or at ``f = 0``.
       Only improving swaps are made, so the result is never worse than its start, and
       so never worse than magnitude pruning. Paper's values: ``epsilon=1e-4, rho=10,
       tau=20``.
    3. If ``loss_fn`` is given, ``loss_fn(keep_mask) -> float`` (e.g. the training loss
       of the network pruned with that mask) is measured at iterate 0, every
       ``loss_every``-th iterate and the last, and the iterate of lowest loss is returned
       (the paper picks among its iterates by training loss); otherwise the last iterate.

    ``F`` is never formed unless ``d <= N`` (then products with it are cheaper).
    """
    grads = _check_grads(grads)
    n, d = grads.shape
    w = _check_vector(w, d).to(grads.dtype)
    if isinstance(n_prune, bool) or not isinstance(n_prune, int) or not 0 <= n_prune <= d:
        raise ValueError(f"n_prune must be an integer in [0, {d}], got {n_prune!r}")
    for name, value in (("n_random_starts", n_random_starts), ("rho", rho), ("tau", tau)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(max_iters, bool) or not isinstance(max_iters, int) or max_iters < 0:
        raise ValueError(f"max_iters must be a non-negative integer, got {max_iters!r}")
    if isinstance(loss_every, bool) or not isinstance(loss_every, int) or loss_every < 1:
        raise ValueError(f"loss_every must be a positive integer, got {loss_every!r}")
    if not (epsilon >= 0 and noise >= 0):
        raise ValueError(f"epsilon and noise must be non-negative, got {epsilon}, {noise}")

    gram = _Gram(grads)

    def objective(pruned_mask: Tensor) -> float:
        u = torch.where(pruned_mask, w, torch.zeros_like(w))
        if gram.f is not None:
            return float(u @ (gram.f @ u))
        return float((grads @ u).square().sum()) / n

    # 1. starts
    gen = torch.Generator().manual_seed(seed)
    mag = w.abs()
    starts, start_objs = [], []
    for k in range(n_random_starts):
        scores = mag
        if k > 0:
            xi = torch.randn(d, generator=gen, dtype=torch.float64).to(w)
            scores = mag * torch.exp(noise * xi)
        pruned = torch.zeros(d, dtype=torch.bool, device=w.device)
        pruned[_lowest(scores, n_prune)] = True
        starts.append(pruned)
        start_objs.append(objective(pruned))
    best = min(range(n_random_starts), key=lambda k: (start_objs[k], k))
    pruned = starts[best].clone()

    # 2. swap local search
    f = start_objs[best]
    objectives, swaps = [f], []
    diag_f = gram.diag()
    s = w.square() * diag_f
    u = torch.where(pruned, w, torch.zeros_like(w))
    fu = gram.matvec(u)
    failures, iters = 0, 0
    n_kept = d - n_prune
    while iters < max_iters and f > 0 and 0 < n_prune < d:
        iters += 1
        m = rho * (failures + 1)
        c = w * fu
        alpha = torch.where(pruned, 2 * c - s, torch.full_like(c, -math.inf))
        beta = torch.where(pruned, torch.full_like(c, math.inf), 2 * c + s)
        m_p, m_k = min(m, n_prune), min(m, n_kept)
        cand_p = torch.topk(alpha, m_p).indices
        cand_k = torch.topk(beta, m_k, largest=False).indices
        cross = gram.block(cand_p, cand_k)
        delta = (
            -alpha[cand_p].unsqueeze(1)
            + beta[cand_k].unsqueeze(0)
            - 2 * w[cand_p].unsqueeze(1) * w[cand_k].unsqueeze(0) * cross
        )
        flat = int(torch.argmin(delta))
        a, b = divmod(flat, m_k)
        gain = -float(delta[a, b])
        if gain > epsilon * f:
            i, j = int(cand_p[a]), int(cand_k[b])
            pruned[i], pruned[j] = False, True
            u[i], u[j] = 0.0, w[j]
            if len(swaps) % 50 == 49:
                fu = gram.matvec(u)
                f = float(u @ fu)
            else:
                fu = fu + gram.columns_times(
                    torch.tensor([i, j], device=w.device), torch.stack([-w[i], w[j]])
                )
                f = max(f - gain, 0.0)
            swaps.append((i, j))
            objectives.append(f)
            failures = 0
        else:
            failures += 1
            if failures >= tau or (m_p == n_prune and m_k == n_kept):
                break

    result = CBSResult(
        keep=~pruned,
        objective=objectives[-1],
        magnitude_objective=start_objs[0],
        start_objectives=start_objs,
        start_index=best,
        objectives=objectives,
        swaps=swaps,
        iterations=iters,
        chosen=len(objectives) - 1,
        start_keep=~starts[best],
    )
    # exact objective of the final iterate (the tracked value drifts by rounding)
    result.objective = result.objectives[-1] = objective(pruned)

    # 3. pick by measured loss
    if loss_fn is not None:
        last = len(objectives) - 1
        for t in sorted({*range(0, last + 1, loss_every), last}):
            result.losses[t] = float(loss_fn(result.keep_at(t)))
        result.chosen = min(result.losses, key=lambda t: (result.losses[t], t))
        result.keep = result.keep_at(result.chosen)
        result.objective = objective(~result.keep)
    return result if return_history else result.keep


# --------------------------------------------------------------------------------------
# One-shot pruning of a model
# --------------------------------------------------------------------------------------


def oneshot_prune(
    model: nn.Module,
    method: str,
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
    and updated by ``method``:

    * ``"mp"``: magnitude pruning, the ``k`` smallest ``|w|`` (as
      :func:`minipruner.magnitude.magnitude_prune`); no update, ``grads`` not needed.
    * ``"wf-s"``: WoodFisher selection, the ``k`` smallest ``w_q^2 / (2 [H^-1]_qq)``; no
      update.
    * ``"wf"``: the same selection plus the sum of single-weight updates
      ``-sum_q w_q H^-1 e_q / [H^-1]_qq`` (:func:`woodfisher_update`), then the pruned
      weights are set exactly to zero.
    * ``"cbs-s"``: :func:`cbs_select` (``cbs_kwargs`` go to it); no update.
    * ``"cbs"``: :func:`cbs_select` plus the exact set update :func:`multi_weight_update`.

    ``H = damp I + G^T G / N`` with ``grads`` (``N x d``, from :func:`per_sample_grads`);
    ``damp`` absolute, or relative to the mean diagonal of ``F`` with ``relative=True``
    (see the module docstring for why that matters). ``blocks`` (e.g. from
    :func:`layer_blocks`) makes ``H`` block-diagonal for WF and the CBS update; CBS-S
    always uses the full ``F``. Linear algebra runs in ``dtype`` through
    :class:`DampedFisher` (no ``d x d`` matrix when ``N < d``). The weights are updated in
    place and the masks applied with :func:`minipruner.masks.apply_masks`.

    This is a single step; the CBS paper prunes in several steps of increasing sparsity
    in some settings (call this repeatedly with new gradients to do that).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(METHODS)}")
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)):
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
    if not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    if cbs_kwargs and method not in ("cbs-s", "cbs"):
        raise ValueError(f"extra arguments {sorted(cbs_kwargs)} only apply to CBS methods")
    weights = prunable(model)
    w = flatten_weights(weights)
    d = w.numel()
    k = int(round(float(sparsity) * d))

    if method == "mp":
        masks = masks_from_scores({n: t.detach().abs() for n, t in weights.items()}, sparsity)
        apply_masks(model, masks)
        return masks

    if grads is None:
        raise ValueError(f"method {method!r} needs grads (N x {d}), e.g. from per_sample_grads")
    grads = _check_grads(grads)
    if grads.shape[1] != d:
        raise ValueError(f"grads has {grads.shape[1]} columns but the model has {d} weights")
    g = grads.to(dtype)
    w64 = w.to(dtype)
    lam = absolute_damp(g, damp, relative)

    def operator() -> DampedFisher | BlockDampedFisher:
        if blocks is None:
            return DampedFisher(g, lam)
        return BlockDampedFisher(g, lam, blocks)

    new_w = w64.clone()
    if method in ("wf-s", "wf"):
        hinv = operator()
        saliency = single_weight_saliency(w64, hinv)
        keep = flatten_weights(
            masks_from_scores(unflatten_weights(saliency, weights), sparsity)
        ).bool()
        if method == "wf":
            new_w = w64 + woodfisher_update(w64, hinv, ~keep)
    else:
        keep = cbs_select(w64, g, k, **cbs_kwargs)  # type: ignore[arg-type]
        if method == "cbs":
            new_w = w64 + multi_weight_update(w64, operator(), ~keep)
    return set_flat_weights(model, new_w, keep)


def set_flat_weights(model: nn.Module, w: Tensor, keep: Tensor) -> dict[str, Tensor]:
    """Write the flat vector ``w`` (zeroed where ``keep`` is False) into the model's prunable
    weights, in the order of :func:`minipruner.masks.prunable`, and apply ``keep`` as masks
    (:func:`minipruner.masks.apply_masks`). Returns the masks. Modifies ``model`` in place.
    """
    weights = prunable(model)
    d = sum(t.numel() for t in weights.values())
    w = _check_vector(w, d)
    keep = _check_pruned(keep, d, "keep")
    masks = {n: m.clone() for n, m in unflatten_weights(keep, weights).items()}
    updates = unflatten_weights(torch.where(keep, w, torch.zeros_like(w)), weights)
    with torch.no_grad():
        for n, module in prunable_modules(model).items():
            target = module.weight_orig if hasattr(module, "weight_orig") else module.weight
            target.copy_(updates[n].to(target.dtype).reshape(target.shape))
    apply_masks(model, masks)
    return masks
