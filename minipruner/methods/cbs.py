"""CBS-S, the selection step of the Combinatorial Brain Surgeon (Yu et al. 2022, arXiv
2203.04466): which ``n_prune`` of the ``d`` weights to remove, searched as the released code
(``yuxwind/CBS``) does.

With ``G`` the ``N x d`` matrix of per-sample gradients and ``F = G^T G / N`` (the
undamped empirical Fisher, see :mod:`minipruner.methods.fisher`), pruning the set ``P`` without
updating the other weights raises the loss, to second order, by (half) the objective

    f(P) = w_P^T F_PP w_P = ||G_P w_P||^2 / N      (:func:`cbs_objective`, in
    :mod:`minipruner.methods.cbs_objective` with the pieces both searches share).

CBS-S looks for a set of the wanted size with a small ``f`` by swapping weights between
the pruned and the kept set. CBS then applies the exact OBS update for that set
(:func:`minipruner.methods.obs.multi_weight_update`). This module is the search of the
released code, read top to bottom: its starts (magnitude and perturbed chunk starts, each
keeping exactly the target count, where the release overshoots, see :func:`chunk_quotas`),
what a search records (:class:`CBSSearchResult`), one iteration (batches of
first-improving swaps in a rank window) and the search (:func:`cbs_select`: starts picked by
the real loss, the iterate picked by the real training loss).
:func:`minipruner.methods.obs.oneshot_prune` and the chapters use :func:`cbs_select`.

The variant with one best swap per iteration, :func:`cbs_select_window`, lives in
:mod:`minipruner.methods.cbs_window`; it and :func:`cbs_objective` are importable from here
too, as the tests of both searches read them (``tests/test_cbs.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .cbs_objective import (
    _check_count,
    _check_positive_int,
    _check_weights,
    _Gram,
    _lowest,
    cbs_objective,
)
from .cbs_window import cbs_select_window
from .gradients import _check_grads, _check_vector

__all__ = [
    "THRESHOLDS",
    "CBSSearchResult",
    "cbs_objective",
    "cbs_select",
    "cbs_select_window",
    "cbs_starts",
    "chunk_quotas",
    "chunk_start",
    "default_chunks",
    "release_start_kept",
]


# --------------------------------------------------------------------------------------
# Starts: magnitude pruning and perturbed chunk starts
# --------------------------------------------------------------------------------------


def default_chunks(d: int) -> int:
    """The number of chunks of a perturbed start: ``max(1, min(floor(sqrt(d)), 1000))``,
    as in the released code (179 for MLPNet's ``d = 32,360``)."""
    _check_positive_int("d", d)
    return max(1, min(math.isqrt(d), 1000))


def chunk_quotas(d: int, n_keep: int, n_chunks: int) -> tuple[list[int], list[int]]:
    """Chunk sizes and how many weights each chunk keeps, summing exactly to ``n_keep``.

    The ``d`` positions are cut into ``n_chunks`` consecutive chunks whose sizes differ by
    at most one (``s_c = floor(d / C)`` or one more). Chunk ``c`` should keep the fraction
    ``n_keep / d`` of its weights, ``q*_c = n_keep s_c / d``; it keeps ``floor(q*_c)`` plus
    one for the ``n_keep - sum_c floor(q*_c)`` chunks with the largest remainders
    ``n_keep s_c mod d`` (ties: the earlier chunk). So ``sum_c q_c = n_keep`` exactly and
    ``|q_c - q*_c| < 1``. (The released code keeps ``ceil(s (1 - sparsity))`` in each
    chunk of ``s = ceil(d / C)`` and gives the last chunk what is left, which overshoots
    the target when ``C ceil(s (1 - sparsity))`` exceeds it.) Returns ``(sizes, quotas)``.
    """
    _check_positive_int("d", d)
    _check_positive_int("n_chunks", n_chunks)
    if isinstance(n_keep, bool) or not isinstance(n_keep, int) or not 0 <= n_keep <= d:
        raise ValueError(f"n_keep must be an integer in [0, {d}], got {n_keep!r}")
    if n_chunks > d:
        raise ValueError(f"n_chunks must be at most d = {d}, got {n_chunks}")
    base, extra = divmod(d, n_chunks)
    sizes = [base + (1 if c < extra else 0) for c in range(n_chunks)]
    quotas = [n_keep * s // d for s in sizes]
    left = n_keep - sum(quotas)
    by_remainder = sorted(range(n_chunks), key=lambda c: (-(n_keep * sizes[c] % d), c))
    for c in by_remainder[:left]:
        quotas[c] += 1
    return sizes, quotas


def release_start_kept(d: int, sparsity: float, n_chunks: int | None = None) -> int:
    """How many weights a perturbed start of the released code keeps, where
    :func:`chunk_start` keeps exactly ``d - n_prune``: ``ceil(s (1 - sparsity))`` in each
    of the first ``C - 1`` chunks of ``s = ceil(d / C)`` positions (``C`` chunks, default
    :func:`default_chunks`), and in the last chunk what is left of its target
    ``int(d (1 - sparsity))``, if anything. For MLPNet (``d = 32,360``, ``C = 179``): 3,382
    at 90 % instead of 3,236, 1,780 at 95 % instead of 1,618, 712 at 98 % instead of 647.
    """
    _check_positive_int("d", d)
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)):
        raise ValueError(f"sparsity must be a number in [0, 1], got {sparsity!r}")
    if not 0 <= sparsity <= 1:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    n_chunks = default_chunks(d) if n_chunks is None else _check_positive_int("n_chunks", n_chunks)
    target = int(d * (1 - sparsity))
    full = (n_chunks - 1) * math.ceil(math.ceil(d / n_chunks) * (1 - sparsity))
    return full + max(0, target - full)


def chunk_start(
    w: Tensor, n_prune: int, generator: torch.Generator, n_chunks: int | None = None
) -> Tensor:
    """One perturbed start (the released code's ``mag_perb``): a bool keep-mask with exactly
    ``d - n_prune`` True.

    The weights are shuffled by a random permutation ``pi`` drawn from ``generator``, the
    shuffled order is cut into ``n_chunks`` chunks (default :func:`default_chunks`) and
    chunk ``c`` keeps its ``q_c`` largest ``|w|`` (ties: the earlier shuffled position),
    with the quotas ``q_c`` of :func:`chunk_quotas`. Magnitude pruning applied chunk by
    chunk: a large weight that landed in a chunk of large weights can be pruned, a small
    one in a chunk of small weights kept.
    """
    d = _check_weights(w)
    n_keep = d - _check_count(n_prune, d)
    n_chunks = default_chunks(d) if n_chunks is None else n_chunks
    sizes, quotas = chunk_quotas(d, n_keep, n_chunks)
    perm = torch.randperm(d, generator=generator).to(w.device)
    mag = w.detach().abs()[perm]
    chunk = torch.repeat_interleave(torch.arange(n_chunks), torch.tensor(sizes)).to(w.device)
    # Within each chunk, descending |w| with ties to the earlier position: a stable sort by
    # -|w|, then a stable sort by chunk.
    by_mag = torch.sort(-mag, stable=True).indices
    order = by_mag[torch.sort(chunk[by_mag], stable=True).indices]
    offsets = torch.cumsum(torch.tensor([0, *sizes[:-1]]), 0).to(w.device)
    rank = torch.arange(d, device=w.device) - offsets[chunk]  # rank within its chunk
    kept_pos = order[rank < torch.tensor(quotas, device=w.device)[chunk]]
    keep = torch.zeros(d, dtype=torch.bool, device=w.device)
    keep[perm[kept_pos]] = True
    return keep


def cbs_starts(
    w: Tensor, n_prune: int, n_starts: int = 50, seed: int = 0, n_chunks: int | None = None
) -> list[Tensor]:
    """The starts of :func:`cbs_select`: bool keep-masks with exactly ``d - n_prune`` True.

    Start 0 is magnitude pruning (the ``n_prune`` smallest ``|w|``, ties to the lower
    index, as :func:`minipruner.core.masks.masks_from_scores`); starts ``1 .. n_starts - 1`` are
    :func:`chunk_start` with successive permutations of one generator seeded by ``seed``.
    """
    d = _check_weights(w)
    _check_count(n_prune, d)
    _check_positive_int("n_starts", n_starts)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    keep = torch.ones(d, dtype=torch.bool, device=w.device)
    keep[_lowest(w.detach().abs(), n_prune)] = False
    starts = [keep]
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n_starts - 1):
        starts.append(chunk_start(w, n_prune, gen, n_chunks))
    return starts


# --------------------------------------------------------------------------------------
# What a search records
# --------------------------------------------------------------------------------------


@dataclass
class CBSSearchResult:
    """What :func:`cbs_select` did. Iterate 0 is the chosen start, iterate ``t >= 1`` the set
    after search iteration ``t``; ``swaps[t - 1]`` lists that iteration's swaps ``(i, j)``:
    weight ``i`` returned (kept again), weight ``j`` pruned.

    ``keep``: the returned keep-mask (iterate ``chosen``), ``objective`` its ``f``.
    ``objectives[t]``: ``f`` of iterate ``t``; ``losses[t]``: ``select_loss_fn`` of
    iterate ``t`` (``f`` when none was given). ``start_losses[k]`` / ``start_objectives[k]``:
    ``loss_fn`` (``f`` when none) and ``f`` of start ``k`` (0: magnitude pruning);
    ``start_index``: the start searched from. ``stop``: why the search ended
    (``"no improving top pair"``, ``"patience"``, ``"max_iter"``, ``"nothing to swap"``).
    """

    keep: Tensor
    chosen: int
    objective: float
    objectives: list[float]
    losses: list[float]
    swaps: list[list[tuple[int, int]]]
    start_keep: Tensor
    start_index: int
    start_losses: list[float]
    start_objectives: list[float]
    stop: str

    @property
    def iterations(self) -> int:
        """Search iterations made (iterates after the start)."""
        return len(self.objectives) - 1

    def keep_at(self, t: int) -> Tensor:
        """The keep-mask of iterate ``t``."""
        if not 0 <= t < len(self.objectives):
            raise ValueError(f"iterate {t} does not exist (0..{len(self.objectives) - 1})")
        keep = self.start_keep.clone()
        for batch in self.swaps[:t]:
            for i, j in batch:
                keep[i], keep[j] = True, False
        return keep


# --------------------------------------------------------------------------------------
# One iteration: batches of first-improving swaps in a rank window
# --------------------------------------------------------------------------------------


class _Shift:
    """``D = F du`` for the change ``du`` of ``u = w * [q in P]`` made by the swaps of the
    current iteration, read at a few indices: dense ``F`` keeps ``D`` itself, otherwise
    ``r = G du`` (length ``N``) is kept and ``D_X = G_X^T r / N``."""

    def __init__(self, gram: _Gram, dtype: torch.dtype, device: torch.device) -> None:
        self.gram = gram
        size = gram.d if gram.f is not None else gram.n
        self.v = torch.zeros(size, dtype=dtype, device=device)

    def add(self, q: int, amount: Tensor) -> None:
        if self.gram.f is not None:
            self.v += self.gram.f[:, q] * amount
        else:
            self.v += self.gram.gt[q] * amount

    def at(self, idx: Tensor) -> Tensor:
        if self.gram.f is not None:
            return self.v[idx]
        return self.gram.gt[idx] @ self.v / self.gram.n


THRESHOLDS = ("relative", "absolute")
"""The swap rules of :func:`cbs_select`: a swap is made when its gain is ``> epsilon * f``
(``"relative"``, the book's) or ``>= epsilon`` (``"absolute"``, the released code's)."""


def _min_gain(epsilon: float, f: float, threshold: str) -> tuple[float, bool]:
    """The gain a swap must reach and whether reaching it exactly is enough: ``epsilon * f``,
    strictly (``"relative"``), or ``epsilon`` itself, inclusive (``"absolute"``: the
    release's ``-reduction >= threshold``)."""
    return (epsilon, True) if threshold == "absolute" else (epsilon * f, False)


def _swap_iteration(
    w: Tensor,
    gram: _Gram,
    pruned: Tensor,
    rho: int,
    tau: int,
    epsilon: float,
    threshold: str = "relative",
) -> tuple[list[tuple[int, int]], float]:
    """One iteration of the released search from the pruned set ``pruned``; returns its
    swaps (not yet applied) and the objective they predict. ``threshold``: see
    :data:`THRESHOLDS`."""

    def improves(gain: Tensor | float, f: float) -> Tensor | bool:
        bound, inclusive = _min_gain(epsilon, f, threshold)
        return gain >= bound if inclusive else gain > bound

    u = torch.where(pruned, w, torch.zeros_like(w))
    fu = gram.matvec(u)
    f = float(u @ fu)
    if not f > 0:
        return [], f
    c = w * fu
    s = w.square() * gram.diag()
    p_idx = pruned.nonzero().squeeze(1)
    k_idx = (~pruned).nonzero().squeeze(1)
    alpha = 2 * c[p_idx] - s[p_idx]
    order = torch.sort(-alpha, stable=True).indices
    p_idx, alpha = p_idx[order], alpha[order]
    i0 = p_idx[:1]
    beta = 2 * c[k_idx] + s[k_idx]
    gamma0 = 2 * w[k_idx] * w[i0] * gram.block(k_idx, i0)[:, 0]
    order = torch.sort(beta - gamma0, stable=True).indices
    k_idx, beta = k_idx[order], beta[order]

    # The top pair: returning i0 and pruning the first kept weight.
    gain = float(alpha[0] - beta[0] + 2 * w[i0[0]] * w[k_idx[0]] * gram.block(i0, k_idx[:1])[0, 0])
    if not improves(gain, f):
        return [], f
    swaps = [(int(i0[0]), int(k_idx[0]))]
    f -= gain
    shift = _Shift(gram, w.dtype, w.device)
    shift.add(int(k_idx[0]), w[k_idx[0]])
    shift.add(int(i0[0]), -w[i0[0]])
    used = torch.zeros(len(k_idx), dtype=torch.bool, device=w.device)
    used[0] = True
    n_kept, n_pruned, failures = len(k_idx), len(p_idx), 0
    # Pruned ranks are read in batches: every rank before the first one that finds a partner
    # fails whatever comes later (alpha, beta and the used ranks change only on a swap), so
    # a batch is exact. The batch doubles after a batch without a swap, and is 1 after one.
    r, size = 1, 1
    while r < n_pruned and failures <= tau:
        b = min(size, n_pruned - r)
        lo, hi = max(1, r - rho), min(n_kept, r + b - 1 + rho)
        if hi <= lo:  # no kept rank left in any window of this batch
            found, t = False, b
        else:
            rows, cols = p_idx[r : r + b], k_idx[lo:hi]
            shifts = shift.at(torch.cat([rows, cols]))
            alpha_b = alpha[r : r + b] + 2 * w[rows] * shifts[:b]
            beta_b = beta[lo:hi] + 2 * w[cols] * shifts[b:]
            gains = (
                alpha_b.unsqueeze(1)
                - beta_b.unsqueeze(0)
                + 2 * w[rows].unsqueeze(1) * w[cols].unsqueeze(0) * gram.block(rows, cols)
            )
            rank_r = torch.arange(r, r + b, device=w.device).unsqueeze(1)
            rank_k = torch.arange(lo, hi, device=w.device).unsqueeze(0)
            window = (rank_k >= rank_r - rho) & (rank_k < rank_r + rho) & ~used[lo:hi]
            ok = window & improves(gains, f)
            has = ok.any(1)
            found = bool(has.any())
            t = int(has.nonzero()[0, 0]) if found else b
        for _ in range(t):  # the ranks before the first with a partner found none
            if failures > tau:
                break
            failures += 1
        if not found or failures > tau:
            r, size = r + b, 2 * size
            continue
        c = int(ok[t].nonzero()[0, 0])  # the first improving kept rank in the window
        i, j = int(rows[t]), int(cols[c])
        swaps.append((i, j))
        f -= float(gains[t, c])
        used[lo + c] = True
        shift.add(j, w[j])
        shift.add(i, -w[i])
        r, size = r + t + 1, 1
    return swaps, f


# --------------------------------------------------------------------------------------
# The search: the start and the iterate picked by the real loss
# --------------------------------------------------------------------------------------


def _finite(value: float, what: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} returned {value}; it must return a finite number")
    return value


def cbs_select(
    w: Tensor,
    grads: Tensor,
    n_prune: int,
    *,
    loss_fn: Callable[[Tensor], float] | None = None,
    select_loss_fn: Callable[[Tensor], float] | None = None,
    n_starts: int = 50,
    rho: int = 10,
    tau: int = 20,
    epsilon: float = 1e-4,
    patience: int = 5,
    max_iter: int = 100,
    seed: int = 0,
    n_chunks: int | None = None,
    threshold: str = "relative",
    return_history: bool = False,
) -> Tensor | CBSSearchResult:
    """CBS-S as released (Yu et al. 2022; ``yuxwind/CBS``, ``greedy_alg/greedy.py``):
    choose ``n_prune`` of the ``d`` weights to remove by a local search on

        f(P) = w_P^T F_PP w_P = ||G_P w_P||^2 / N,    F = G^T G / N (undamped),

    twice the second-order loss increase ``1/2 w_P^T F_PP w_P`` of pruning ``P`` without
    updating the other weights.
    Returns a bool keep-mask (True = keep) with exactly ``d - n_prune`` True, like every
    mask of the package; with ``return_history=True`` the whole
    :class:`CBSSearchResult` (starts, iterates, their objectives and losses, the swaps), whose
    ``keep`` is that mask.

    Swap gains. With ``u = w * [q in P]`` (the pruned weights), ``c_q = w_q (F u)_q`` and
    ``s_q = w_q^2 F_qq``:

    * ``alpha_i = 2 c_i - s_i`` (``i`` in ``P``): returning ``i`` lowers ``f`` by
      ``alpha_i``, ``f(P - {i}) = f(P) - alpha_i``;
    * ``beta_j = 2 c_j + s_j`` (``j`` kept): pruning ``j`` raises ``f`` by ``beta_j``;
    * ``gamma_ij = 2 w_i w_j F_ij``: the cross term, so that swapping ``i`` for ``j``
      changes ``f`` exactly by ``-alpha_i + beta_j - gamma_ij``.

    1. Starts (:func:`cbs_starts`): magnitude pruning and ``n_starts - 1`` perturbed
       chunk starts (seeded by ``seed``; ``n_chunks`` chunks, default
       :func:`default_chunks`), each keeping exactly ``d - n_prune`` weights (the release
       overshoots, see :func:`chunk_quotas`). The start of lowest ``loss_fn(keep)`` wins
       (ties: the earlier, so magnitude pruning on a tie); ``loss_fn`` is the real loss,
       e.g. the masked network's loss on the gradient examples. Without ``loss_fn`` the
       starts are ranked by ``f`` instead (not the release's rule).
    2. One iteration: sort ``P`` by ``alpha`` descending and the kept weights by
       ``beta_j - gamma_{i0 j}`` ascending, ``i0`` the top of ``P``. If the top pair
       (``i0`` with the first kept weight) does not lower ``f`` by more than
       ``epsilon * f`` (or by at least ``epsilon``, with ``threshold="absolute"``), the
       search ends. Otherwise it is swapped, and for every further pruned rank
       ``r = 1, 2, ...`` the first kept weight of rank in ``[r - rho, r + rho)`` (ranks
       >= 1, each used once) whose swap passes the same threshold is taken, with ``alpha``,
       ``beta`` and ``f`` updated for the swaps already made (``alpha_i += 2 w_i (F du)_i``,
       ``beta_j += 2 w_j (F du)_j``, ``du`` the change of ``u`` so far), so each gain is
       exact given the earlier ones. The iteration ends after more than ``tau`` pruned
       ranks found no partner; its swaps are applied together.
    3. Iterate choice: after every iteration ``select_loss_fn(keep)`` is measured (the
       release: the masked network's training loss on the whole training set); iterate 0,
       the start, is measured too. The search stops when the best of the earlier iterates
       is ``patience`` or more iterations old and the last is worse than it, when the top
       pair does not improve, or after ``max_iter`` iterations, and returns the iterate of
       lowest ``select_loss_fn`` (ties: the earlier), the start included, so its loss is
       never above the start's. Without ``select_loss_fn`` iterates are ranked by ``f``,
       which every iteration lowers: the last iterate is returned.

    The threshold is relative by default (``threshold="relative"``): a swap must lower ``f``
    by more than ``epsilon * f``. The release's is absolute (``-reduction >= threshold``
    in ``greedy.py``'s ``is_valid_swap``, ``threshold`` 1e-4 in its MLPNet commands):
    ``threshold="absolute"`` makes a swap when it lowers ``f`` by at least ``epsilon``, and
    otherwise the same swaps. An absolute ``1e-4`` blocks every swap once ``f`` itself is
    below ``1e-4`` (``f`` is about ``1e-5`` on a network that has memorised its gradient
    examples), and lets swaps of no consequence through when ``f`` is large.

    Parameters: ``rho`` (half-width of the rank window, the release's ``range``; the
    released MLPNet runs' value 10), ``tau`` (pruned ranks that may find no partner before
    an iteration ends, the release's ``max_no_match``; their value 20), ``n_starts``
    (starts, magnitude included; the release's ``max_mag_perb`` 50), ``patience`` (the
    release's ``max_N_fluctation``; their MLPNet value 5), ``max_iter`` (search iterations
    after the start; the release's ``max_iter`` 100 counts the start as its first pass),
    ``epsilon`` (the threshold, relative or absolute as ``threshold`` says; the release's
    ``threshold`` 1e-4 is absolute). The release picks its start by the loss on at most
    5,000 of its gradient examples.

    Also differs from the release where it has slips: every start keeps the target count
    ``d - n_prune`` (the release's target is ``int(d (1 - sparsity))``, its magnitude start
    keeps one fewer, since it prunes every ``|w|`` up to and including the smallest kept
    one, and its chunk starts more), a pruned rank that finds no partner always counts as a
    failure (the release counts it only when the last kept rank of its window is still
    unused), the perturbed starts are seeded by ``seed`` (the release seeds start ``k`` with
    ``k`` in every run), and sorts are stable.
    """
    grads = _check_grads(grads)
    n, d = grads.shape
    w = _check_vector(w, d).to(grads.dtype)
    _check_count(n_prune, d)
    for name, value in (
        ("n_starts", n_starts),
        ("rho", rho),
        ("tau", tau),
        ("patience", patience),
    ):
        _check_positive_int(name, value)
    _check_positive_int("max_iter", max_iter, 0)
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)):
        raise ValueError(f"epsilon must be a non-negative number, got {epsilon!r}")
    if not (math.isfinite(epsilon) and epsilon >= 0):
        raise ValueError(f"epsilon must be non-negative and finite, got {epsilon}")
    for name, fn in (("loss_fn", loss_fn), ("select_loss_fn", select_loss_fn)):
        if fn is not None and not callable(fn):
            raise ValueError(f"{name} must be a callable keep-mask -> float, got {fn!r}")
    if threshold not in THRESHOLDS:
        raise ValueError(f"threshold must be one of {THRESHOLDS}, got {threshold!r}")
    if n_chunks is not None:
        _check_positive_int("n_chunks", n_chunks)
        if n_chunks > d:
            raise ValueError(f"n_chunks must be at most d = {d}, got {n_chunks}")

    gram = _Gram(grads)

    def objective(keep: Tensor) -> float:
        return gram.objective(torch.where(keep, torch.zeros_like(w), w))

    # 1. starts
    trivial = n_prune in (0, d)
    starts = cbs_starts(w, n_prune, 1 if trivial else n_starts, seed, n_chunks)
    pruned_w = torch.stack([torch.where(k, torch.zeros_like(w), w) for k in starts], dim=1)
    start_objectives = gram.objectives(pruned_w).tolist()
    if loss_fn is None:
        start_losses = list(start_objectives)
    else:
        start_losses = [_finite(loss_fn(k.clone()), "loss_fn") for k in starts]
    best = min(range(len(starts)), key=lambda k: (start_losses[k], k))

    def select_loss(keep: Tensor, f: float) -> float:
        if select_loss_fn is None:
            return f
        return _finite(select_loss_fn(keep.clone()), "select_loss_fn")

    keep = starts[best].clone()
    objectives = [start_objectives[best]]
    losses = [select_loss(keep, objectives[0])]
    swaps: list[list[tuple[int, int]]] = []
    stop = "nothing to swap" if trivial else "max_iter"

    # 2. iterations, 3. early stop
    while not trivial and len(swaps) < max_iter:
        batch, _ = _swap_iteration(w, gram, ~keep, rho, tau, float(epsilon), threshold)
        if not batch:
            stop = "no improving top pair"
            break
        for i, j in batch:
            keep[i], keep[j] = True, False
        swaps.append(batch)
        objectives.append(objective(keep))
        losses.append(select_loss(keep, objectives[-1]))
        t = len(losses) - 1
        earlier = min(range(t), key=lambda k: (losses[k], k))
        if losses[t] > losses[earlier] and t - earlier >= patience:
            stop = "patience"
            break

    chosen = min(range(len(losses)), key=lambda k: (losses[k], k))
    result = CBSSearchResult(
        keep=keep,
        chosen=chosen,
        objective=objectives[chosen],
        objectives=objectives,
        losses=losses,
        swaps=swaps,
        start_keep=starts[best].clone(),
        start_index=best,
        start_losses=start_losses,
        start_objectives=start_objectives,
        stop=stop,
    )
    result.keep = result.keep_at(chosen)
    return result if return_history else result.keep
