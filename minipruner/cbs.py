"""CBS-S, the selection step of the Combinatorial Brain Surgeon (Yu et al. 2022, arXiv
2203.04466): which ``n_prune`` of the ``d`` weights to remove.

With ``G`` the ``N x d`` matrix of per-sample gradients and ``F = G^T G / N`` (the
undamped empirical Fisher, see :mod:`minipruner.fisher`), pruning the set ``P`` without
updating the other weights raises the loss, to second order, by (half) the objective

    f(P) = w_P^T F_PP w_P = ||G_P w_P||^2 / N      (:func:`cbs_objective`).

CBS-S looks for a set of the wanted size with a small ``f`` by swapping weights between
the pruned and the kept set. CBS then applies the exact OBS update for that set
(:func:`minipruner.obs.multi_weight_update`). Every name here is also importable as
``minipruner.obs.<name>``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .fisher import _check_grads, _check_pruned, _check_vector

__all__ = [
    "CBSResult",
    "cbs_objective",
    "cbs_select",
]


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
