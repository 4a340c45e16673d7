"""A variant of CBS-S: one best swap per iteration in a growing window, starts picked by the
objective (an earlier version of the book's search; chapter 4's exercise 5 compares it with
the released search, :func:`minipruner.methods.cbs.cbs_select`, which the chapters use).

It minimises the same objective ``f(P) = w_P^T F_PP w_P = ||G_P w_P||^2 / N``
(:mod:`minipruner.methods.cbs_objective`). Also importable as
``minipruner.methods.cbs.cbs_select_window`` and ``minipruner.methods.obs.cbs_select_window``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .cbs_objective import _check_count, _check_positive_int, _Gram, _lowest
from .gradients import _check_grads, _check_vector

__all__ = ["CBSResult", "cbs_select_window"]


@dataclass
class CBSResult:
    """What :func:`cbs_select_window` did. Iterate 0 is the chosen start; iterate ``t`` follows
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


def cbs_select_window(
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
    """A variant of CBS-S with one best swap per iteration in a growing window (not the
    released search: that is :func:`cbs_select`; chapters 4 and 6 used this one before
    they moved to the released search).
    Choose ``n_prune`` weights to remove by approximately minimising
    ``f(P) = w_P^T F_PP w_P = ||G_P w_P||^2 / N`` (``F = G^T G / N``, the loss increase
    of pruning ``P`` without update). Returns a bool keep-mask (True = keep) with exactly
    ``n_prune`` False, or a :class:`CBSResult` if ``return_history``.

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
       so never worse than magnitude pruning. ``rho``, ``tau`` and ``epsilon`` carry the
       names of the release's parameters but mean different things here (a window grown
       by ``rho``, a patience of ``tau`` failed iterations, a relative threshold).
    3. If ``loss_fn`` is given, ``loss_fn(keep_mask) -> float`` (e.g. the training loss
       of the network pruned with that mask) is measured at iterate 0, every
       ``loss_every``-th iterate and the last, and the iterate of lowest loss is returned
       (the paper picks among its iterates by training loss); otherwise the last iterate.

    ``F`` is never formed unless ``d <= N`` (then products with it are cheaper).
    """
    grads = _check_grads(grads)
    n, d = grads.shape
    w = _check_vector(w, d).to(grads.dtype)
    _check_count(n_prune, d)
    for name, value in (
        ("n_random_starts", n_random_starts),
        ("rho", rho),
        ("tau", tau),
        ("loss_every", loss_every),
    ):
        _check_positive_int(name, value)
    _check_positive_int("max_iters", max_iters, 0)
    if not (epsilon >= 0 and noise >= 0):
        raise ValueError(f"epsilon and noise must be non-negative, got {epsilon}, {noise}")

    gram = _Gram(grads)

    def objective(pruned_mask: Tensor) -> float:
        return gram.objective(torch.where(pruned_mask, w, torch.zeros_like(w)))

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
