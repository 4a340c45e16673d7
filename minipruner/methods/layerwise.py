"""Chapter 7: layer-wise one-shot pruning (OBC, SparseGPT, Wanda) and N:M patterns.

The layer-wise problem
----------------------
A linear layer computes ``Y = W X`` with ``W`` of shape ``(out, in)`` and, by this module's
convention, ``X`` of shape ``(in, tokens)``: one column per calibration token (every example
of an MLP's batch, every position of every sequence of a transformer's). Pruning replaces
``W`` by ``W_hat`` (zero outside a keep-mask ``M``) and is judged by the error on the layer's
outputs,

    E(W_hat) = ||W X - W_hat X||_F^2 = sum_i (w_i - w_hat_i) X X^T (w_i - w_hat_i)^T,

chapter 1's Frobenius distortion measured on the outputs instead of the weights. Its Hessian
with respect to each row ``w_i`` is exact and the same for every row,

    H = 2 X X^T        (in x in; accumulated over the calibration tokens),

so ``E = 1/2 sum_i d_i H d_i^T`` with ``d_i = w_hat_i - w_i``, and Optimal Brain Surgeon
(chapter 4) applies without the Fisher approximation. Removing weight ``q`` of a row, with the
remaining free weights ``F`` (``q`` in ``F``) moved optimally, costs and moves

    dE = w_q^2 / (2 [H_F^-1]_qq),      d_F = -(w_q / [H_F^-1]_qq) H_F^-1[:, q],

where ``H_F`` is ``H`` restricted to ``F``. After the step ``F`` loses ``q`` and ``H_F^-1``
is downdated without a new inversion (Frantar & Alistarh 2022, OBC, arXiv 2208.11580):

    H_{F-q}^-1 = H_F^-1 - H_F^-1[:, q] H_F^-1[q, :] / [H_F^-1]_qq.

* **OBC** (:func:`obc_prune`) runs this greedily per row, one weight at a time, with a
  separate sequence of inverses for each row: exact OBS per row, ``O(k in^2)``
  per row for ``k`` removals.
* **SparseGPT** (Frantar & Alistarh 2023, arXiv 2301.00774; :func:`sparsegpt_prune`) fixes the
  order in which columns are eliminated (left to right), so all rows share one sequence of
  inverses ``H_{j:}^-1`` (rows/columns ``j..in-1``); the rows ``j`` of the upper Cholesky factor
  ``U`` of ``H^-1 = U^T U`` hold them all: ``H_{j:}^-1[j, j:] = U_jj U[j, j:]``. The mask is
  chosen per block of columns from ``w^2 / U_jj^2`` and the updates of the columns right of a
  block are applied lazily, once per block.
* **Wanda** (Sun, Liu, Bair & Kolter 2024, arXiv 2306.11695; :func:`wanda_scores`) keeps the
  weights of largest ``|W_ij| ||X_j||_2``, the square root of OBD's diagonal saliency
  ``1/2 w^2 H_jj = w^2 [X X^T]_jj``, compared within each output row, without any update.
* **magnitude** keeps the largest ``|W_ij|`` with the same patterns and groups.

Patterns: ``"unstructured"`` or ``"N:M"`` (keep ``N`` of every ``M`` consecutive inputs of each
row, :func:`nm_mask`; NVIDIA's 2:4 keeps 2 of 4). The official codes' ``prunen``/``prune_n``
count the weights *removed* per group, which for 2:4 and 4:8 is the same number.

Calibration (:func:`calibration_hessians`, :func:`calibration_norms`, :func:`layerwise_prune`)
follows the papers: the layers are visited block by block in forward order, and each block's
inputs are recorded by forward hooks on the model whose earlier blocks are already pruned.
:func:`layerwise_prune` does this for any :class:`LayerRule` (what a method needs of the
inputs, and how it prunes one layer); each method above has its rule's constructor
(:func:`magnitude_rule`, :func:`wanda_rule`, :func:`sparsegpt_rule`, :func:`obc_rule`), and
the method table (:mod:`minipruner.methods.table`) maps each id to one.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..core.masks import (
    Masks,
    Sparsity,
    _check_sparsity,
    apply_masks,
    effective_weight,
    layer_sparsities,
    prunable_modules,
    weight_parameter,
)

GROUPS = ("row", "layer")
"""Comparison groups of an unstructured mask: each output row removes the same fraction of
its inputs (``"row"``, Wanda's per-output groups) or one threshold per layer (``"layer"``)."""
DEFAULT_DAMP = 0.01
"""Damping as a fraction of the mean diagonal of ``H``: ``lambda = 0.01 mean(diag H)``, the
SparseGPT paper's 1 % (``--percdamp`` default ``.01`` in ``opt.py`` of IST-DASLab/sparsegpt)."""
DEFAULT_BLOCKSIZE = 128
"""SparseGPT's block of columns, for both mask selection and lazy updates (``--blocksize``
default 128 in ``opt.py`` of IST-DASLab/sparsegpt, one value for both)."""


# ------------------------------------------------------------------------------- patterns


def parse_pattern(pattern: str | None) -> tuple[int, int] | None:
    """``"unstructured"`` (or ``None``) -> ``None``; ``"N:M"`` -> ``(N, M)``, meaning keep ``N``
    of every ``M`` consecutive inputs of each row (``1 <= N <= M``). The sparsity of an N:M
    pattern is ``1 - N/M``.

    >>> parse_pattern("2:4"), parse_pattern("unstructured")
    ((2, 4), None)
    """
    if pattern is None or pattern == "unstructured":
        return None
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", pattern) if isinstance(pattern, str) else None
    if match is None:
        raise ValueError(f"pattern must be 'unstructured' or 'N:M' such as '2:4', got {pattern!r}")
    n, m = int(match.group(1)), int(match.group(2))
    if not 1 <= n <= m:
        raise ValueError(f"pattern {pattern!r}: N:M needs 1 <= N <= M")
    return n, m


def nm_mask(scores: Tensor, n: int, m: int) -> Tensor:
    """Keep-mask of an N:M pattern: in every row of ``scores`` (``out x in``), each group of
    ``m`` consecutive inputs ``[g m, (g + 1) m)`` keeps its ``n`` highest scores and loses the
    other ``m - n``. Ties: among equal scores the lower input index is removed first (the rule
    of :func:`minipruner.core.masks.masks_from_scores`). Raises ``ValueError`` unless ``scores`` is
    2-D with a width that is a multiple of ``m`` and ``1 <= n <= m``.

    >>> nm_mask(torch.tensor([[4.0, 1.0, 3.0, 2.0]]), 2, 4).tolist()
    [[True, False, True, False]]
    """
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (n, m)):
        raise ValueError(f"n and m must be integers, got {n!r}, {m!r}")
    if not 1 <= n <= m:
        raise ValueError(f"N:M needs 1 <= n <= m, got n={n}, m={m}")
    if scores.dim() != 2:
        raise ValueError(f"scores must be 2-D (out x in), got shape {tuple(scores.shape)}")
    rows, cols = scores.shape
    if cols % m:
        raise ValueError(f"the layer's width {cols} is not a multiple of m={m}: no {n}:{m} pattern")
    groups = scores.detach().float().reshape(rows, cols // m, m)
    order = torch.sort(groups, dim=-1, stable=True).indices  # ascending: removed first
    keep = torch.ones_like(groups, dtype=torch.bool)
    keep.scatter_(-1, order[..., : m - n], False)
    return keep.reshape(rows, cols)


def group_mask(scores: Tensor, sparsity: float, groups: str = "row") -> Tensor:
    """Unstructured keep-mask of a 2-D ``scores`` (``out x in``): with ``groups="row"`` every
    row removes its ``round(sparsity * in)`` lowest scores (Wanda's per-output comparison
    groups); with ``groups="layer"`` the layer removes its ``round(sparsity * out * in)``
    lowest (one threshold per layer). Ties: the lower (flat) index is removed first."""
    if groups not in GROUPS:
        raise ValueError(f"unknown groups {groups!r}; valid: {', '.join(GROUPS)}")
    if scores.dim() != 2:
        raise ValueError(f"scores must be 2-D (out x in), got shape {tuple(scores.shape)}")
    sparsity = _check_sparsity(sparsity, "", closed=True)
    s = scores.detach().float()
    if groups == "layer":
        s = s.reshape(1, -1)
    k = int(round(sparsity * s.shape[1]))
    keep = torch.ones_like(s, dtype=torch.bool)
    keep.scatter_(1, torch.sort(s, dim=1, stable=True).indices[:, :k], False)
    return keep.reshape(scores.shape)


def pattern_mask(
    scores: Tensor, sparsity: float, pattern: str | None = "unstructured", groups: str = "row"
) -> Tensor:
    """The keep-mask of ``scores`` at ``sparsity`` with ``pattern``: :func:`group_mask` for
    ``"unstructured"``, :func:`nm_mask` for ``"N:M"`` (whose sparsity must then be
    ``1 - N/M``, see :func:`check_pattern_sparsity`)."""
    nm = parse_pattern(pattern)
    if nm is None:
        return group_mask(scores, sparsity, groups)
    check_pattern_sparsity(sparsity, nm)
    return nm_mask(scores, *nm)


def check_pattern_sparsity(sparsity: float, nm: tuple[int, int] | None) -> float:
    """Check ``sparsity`` (a number in [0, 1]) and, for an N:M pattern, that it is the
    pattern's own ``1 - N/M``; return it as a float."""
    s = _check_sparsity(sparsity, "", closed=True)
    if nm is not None and not math.isclose(s, 1 - nm[0] / nm[1], abs_tol=1e-9):
        raise ValueError(
            f"an {nm[0]}:{nm[1]} pattern fixes the sparsity at 1 - {nm[0]}/{nm[1]} = "
            f"{1 - nm[0] / nm[1]:g}; got sparsity {s:g}"
        )
    return s


# ----------------------------------------------------------------------- the layer's error


def layer_error(weight: Tensor, new_weight: Tensor, hessian: Tensor) -> float:
    """The layer-wise error ``E = ||W X - W_hat X||_F^2 = 1/2 sum_i d_i H d_i^T`` with
    ``d_i = w_hat_i - w_i`` and ``H = 2 X X^T`` (pass a damped ``H`` to measure the damped
    objective)."""
    d = (new_weight.detach().double() - weight.detach().double()).reshape(weight.shape[0], -1)
    return 0.5 * float(torch.einsum("ij,jk,ik->", d, hessian.double(), d))


def optimal_reconstruction(weight: Tensor, hessian: Tensor, keep: Tensor) -> Tensor:
    """The least-squares optimum for a fixed mask: each row ``i`` keeps ``F = {j: keep_ij}``
    and solves the normal equations ``min ||w_i X - w_F X_F||^2``, i.e.
    ``H_FF w_F = H_{F,:} w_i`` (``H = 2 X X^T``; ``X_F`` the kept rows of ``X``), with zeros
    outside ``F``. Returns the new weight (float64)."""
    w = weight.detach().double().reshape(weight.shape[0], -1)
    h = hessian.double()
    keep = keep.reshape(w.shape).bool()
    out = torch.zeros_like(w)
    for i in range(w.shape[0]):
        f = keep[i].nonzero().flatten()
        if f.numel():
            out[i, f] = torch.linalg.solve(h[f][:, f], h[f] @ w[i])
    return out


def _check_damp(damp: float) -> None:
    if isinstance(damp, bool) or not isinstance(damp, (int, float)) or damp < 0:
        raise ValueError(f"damp must be a number >= 0 (a fraction of mean diag H), got {damp!r}")


def _check_blocksize(blocksize: int, m: int | None = None) -> None:
    # a positive integer; with an N:M pattern's M (``m``), also a multiple of it
    if isinstance(blocksize, bool) or not isinstance(blocksize, int) or blocksize < 1:
        raise ValueError(f"blocksize must be a positive integer, got {blocksize!r}")
    if m is not None and blocksize % m:
        raise ValueError(f"blocksize {blocksize} must be a multiple of m={m}")


def damped(hessian: Tensor, damp: float) -> Tensor:
    """``H + lambda I`` with ``lambda = damp * mean(diag H)`` (damping relative to the mean
    diagonal, as SparseGPT and OBC do), in float64."""
    _check_damp(damp)
    h = hessian.double().clone()
    if h.dim() != 2 or h.shape[0] != h.shape[1]:
        raise ValueError(f"the Hessian must be square, got shape {tuple(h.shape)}")
    h.diagonal().add_(damp * h.diagonal().mean())
    return h


def _inverse(h: Tensor) -> Tensor:
    chol, info = torch.linalg.cholesky_ex(h)
    if info.item() != 0:
        raise ValueError(
            "H (+ damping) is not positive definite: too few calibration tokens, or inputs "
            "that are always zero; use a damping > 0 or more calibration data"
        )
    return torch.cholesky_inverse(chol)


@dataclass
class LayerResult:
    """One layer pruned: its new ``weight`` (float64, exactly zero where ``keep`` is False),
    the keep-mask and ``loss``, the layer-wise error the method predicts for each row (the
    sum of its steps' ``dE``; with the damped ``H``)."""

    weight: Tensor
    keep: Tensor
    loss: Tensor


# ---------------------------------------------------------------------------------- OBC


def _check_layer(weight: Tensor, hessian: Tensor) -> tuple[Tensor, Tensor]:
    if weight.dim() != 2:
        raise ValueError(f"weight must be 2-D (out x in), got shape {tuple(weight.shape)}")
    d = weight.shape[1]
    if tuple(hessian.shape) != (d, d):
        raise ValueError(f"H has shape {tuple(hessian.shape)}, the layer needs ({d}, {d})")
    return weight.detach().double().clone(), hessian.detach().double()


def obc_prune(
    weight: Tensor,
    hessian: Tensor,
    sparsity: float,
    pattern: str | None = "unstructured",
    damp: float = DEFAULT_DAMP,
) -> LayerResult:
    """Exact OBS per row (OBC's rule): every row ``w`` of ``weight`` (``out x in``) with its own
    inverse ``Hinv = (H + lambda I)^-1`` (:func:`damped`) removes, one at a time, the free
    weight of least ``dE_q = w_q^2 / (2 Hinv_qq)``, moves the others by
    ``w <- w - (w_q / Hinv_qq) Hinv[q, :]`` (which sets ``w_q`` to 0) and downdates
    ``Hinv <- Hinv - Hinv[:, q] Hinv[q, :] / Hinv_qq``. Unstructured: each row removes
    ``round(sparsity * in)`` weights; ``"N:M"``: a group of ``M`` inputs stops being a candidate
    once it has lost ``M - N``, until every group has. After each step the row is the
    least-squares optimum (:func:`optimal_reconstruction`) for the weights removed so far.
    Cost ``O(k in^2)`` per row for ``k`` removals: for small layers."""
    w, h = _check_layer(weight, hessian)
    nm = parse_pattern(pattern)
    check_pattern_sparsity(sparsity, nm)
    rows, d = w.shape
    if nm is not None and d % nm[1]:
        raise ValueError(f"the layer's width {d} is not a multiple of m={nm[1]}")
    k = d - d // nm[1] * nm[0] if nm is not None else int(round(float(sparsity) * d))
    hinv0 = _inverse(damped(h, damp))
    keep = torch.ones_like(w, dtype=torch.bool)
    loss = torch.zeros(rows, dtype=torch.float64)
    for i in range(rows):
        hinv, row, kept = hinv0.clone(), w[i], keep[i]
        for _ in range(k):
            diag = hinv.diagonal()
            score = torch.full_like(row, float("inf"))
            score[kept] = row[kept] ** 2 / diag[kept]
            if nm is not None:
                full = (~kept).reshape(-1, nm[1]).sum(1) >= nm[1] - nm[0]
                score[full.repeat_interleave(nm[1])] = float("inf")
            q = int(torch.argmin(score))
            loss[i] += 0.5 * score[q]
            col = hinv[:, q].clone()
            row -= (row[q] / col[q]) * col
            kept[q] = False
            row[~kept] = 0.0  # exactly (the update leaves rounding residue)
            hinv -= torch.outer(col, col) / col[q]
    return LayerResult(w, keep, loss)


# ---------------------------------------------------------------------------- SparseGPT


def sparsegpt_prune(
    weight: Tensor,
    hessian: Tensor,
    sparsity: float,
    pattern: str | None = "unstructured",
    blocksize: int = DEFAULT_BLOCKSIZE,
    damp: float = DEFAULT_DAMP,
    keep: Tensor | None = None,
) -> LayerResult:
    """SparseGPT (Frantar & Alistarh 2023, algorithm 1) on one layer ``weight`` (``out x in``).

    ``U`` is the upper Cholesky factor of ``(H + lambda I)^-1 = U^T U`` (``lambda`` from
    :func:`damped`). Columns ``j = 0, 1, ...`` are eliminated in order; for every row the weights
    ``j..in-1`` are still free, and the inverse of ``H`` restricted to them has row ``j`` equal to
    ``U_jj U[j, j:]``. So eliminating column ``j`` (its new value ``q_j = w_j`` if kept, 0 if
    removed) moves the row by the OBS update

        err = (w_j - q_j) / U_jj,      w[j:] <- w[j:] - err U[j, j:],

    at a cost ``dE = err^2 / 2``. Columns are handled in blocks of ``blocksize``: inside a
    block the update is applied column by column; the columns right of the block receive the
    block's updates at once, ``W[:, end:] -= Err @ U[block, end:]`` (lazy batched updates: the
    same result as updating column by column).

    Mask selection (unless ``keep`` fixes the mask): unstructured, at the start of each block
    the block's ``out x blocksize`` weights of least ``w^2 / U_jj^2`` are removed, the count of
    each block chosen so the layer removes exactly ``round(sparsity * out * in)`` (cumulative
    rounding); ``"N:M"``, at every ``M``-th column ``j`` each row removes the ``M - N`` weights of
    least ``w^2 / U_jj^2`` among columns ``j..j+M-1``, with their current (updated) values.
    ``blocksize`` must then be a multiple of ``M``. Returns the new weight (exact zeros where
    removed), the mask and each row's ``sum dE``, which equals
    :func:`layer_error` measured with the damped ``H``.
    """
    w, h = _check_layer(weight, hessian)
    nm = parse_pattern(pattern)
    check_pattern_sparsity(sparsity, nm)
    rows, d = w.shape
    _check_blocksize(blocksize)
    if nm is not None:
        if d % nm[1]:
            raise ValueError(f"the layer's width {d} is not a multiple of m={nm[1]}")
        _check_blocksize(blocksize, nm[1])
    if keep is not None:
        if tuple(keep.shape) != (rows, d):
            raise ValueError(f"keep has shape {tuple(keep.shape)}, the layer is {(rows, d)}")
        keep = keep.bool().clone()
    u = torch.linalg.cholesky(_inverse(damped(h, damp)), upper=True)
    mask = torch.ones_like(w, dtype=torch.bool) if keep is None else keep
    loss = torch.zeros(rows, dtype=torch.float64)
    total = rows * d
    for start in range(0, d, blocksize):
        end = min(start + blocksize, d)
        w1, u1 = w[:, start:end].clone(), u[start:end, start:end]
        err = torch.zeros_like(w1)
        diag = u1.diagonal()
        if keep is None and nm is None:
            s = float(sparsity) * total
            n_out = int(round(s * end / d)) - int(round(s * start / d))
            score = (w1**2 / diag**2).reshape(-1)
            block = torch.ones(score.numel(), dtype=torch.bool)
            block[torch.sort(score, stable=True).indices[:n_out]] = False
            mask[:, start:end] = block.reshape(w1.shape)
        for j in range(end - start):
            if keep is None and nm is not None and j % nm[1] == 0:
                g = slice(j, j + nm[1])
                mask[:, start:end][:, g] = nm_mask(w1[:, g] ** 2 / diag[g] ** 2, *nm)
            col = w1[:, j]
            q = torch.where(mask[:, start + j], col, torch.zeros_like(col))
            e = (col - q) / diag[j]
            loss += 0.5 * e**2
            w1[:, j:] -= torch.outer(e, u1[j, j:])
            w1[:, j] = q  # exactly q (the update above gives it up to rounding)
            err[:, j] = e
        w[:, start:end] = w1
        w[:, end:] -= err @ u[start:end, end:]
    return LayerResult(w, mask, loss)


# -------------------------------------------------------------------------- Wanda, magnitude


def wanda_scores(weight: Tensor, input_sq_norms: Tensor) -> Tensor:
    """Wanda's score ``S_ij = |W_ij| ||X_j||_2`` with ``||X_j||_2^2 = [X X^T]_jj = H_jj / 2``
    (``input_sq_norms``, from :func:`calibration_norms`): the square root of OBD's diagonal
    saliency ``1/2 W_ij^2 H_jj = W_ij^2 [X X^T]_jj``. Higher = keep."""
    if weight.dim() != 2 or input_sq_norms.shape != (weight.shape[1],):
        raise ValueError(
            f"need a 2-D weight and one squared norm per input; got {tuple(weight.shape)} "
            f"and {tuple(input_sq_norms.shape)}"
        )
    return weight.detach().double().abs() * input_sq_norms.double().clamp_min(0).sqrt()


# --------------------------------------------------------------------------- calibration


def linear_layers(model: nn.Module) -> dict[str, nn.Linear]:
    """``{weight name: layer}`` of the model's ``nn.Linear`` layers, in registration order.
    Raises ``ValueError`` when the model has none, or has Conv layers (the layer-wise methods
    here handle ``nn.Linear`` only)."""
    modules = prunable_modules(model)
    others = [n for n, m in modules.items() if not isinstance(m, nn.Linear)]
    if others:
        raise ValueError(f"the layer-wise methods handle nn.Linear layers only; found {others}")
    return modules  # type: ignore[return-value]


def _accumulate(
    model: nn.Module, x: Tensor, names: Sequence[str], full: bool, chunk: int | None
) -> dict[str, Tensor]:
    modules = linear_layers(model)
    unknown = [n for n in names if n not in modules]
    if unknown:
        raise ValueError(f"{unknown} are not Linear weights of the model; valid: {list(modules)}")
    if not isinstance(x, Tensor) or x.dim() == 0 or x.shape[0] == 0:
        raise ValueError("calibration inputs must be a non-empty tensor (examples first)")
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"chunk must be a positive integer or None, got {chunk!r}")
    stats: dict[str, Tensor] = {}

    def hook(name: str):
        def record(module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
            a = inputs[0].detach().reshape(-1, module.in_features).double()  # tokens x in = X^T
            s = 2.0 * a.T @ a if full else (a**2).sum(0)
            stats[name] = stats[name] + s if name in stats else s

        return record

    handles = [modules[n].register_forward_pre_hook(hook(n)) for n in names]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for part in x.split(chunk or x.shape[0]):
                model(part)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    missing = [n for n in names if n not in stats]
    if missing:
        raise ValueError(f"the forward pass never reached {missing}")
    return stats


def calibration_hessians(
    model: nn.Module, x: Tensor, names: Sequence[str] | None = None, chunk: int | None = None
) -> dict[str, Tensor]:
    """``{name: H}`` with ``H = 2 X X^T`` (float64, ``in x in``) for each Linear layer ``name``
    (default: all), ``X`` (``in x tokens``) the inputs the layer receives when the model, as it
    is now, runs on ``x`` (in eval mode, without gradients, ``chunk`` examples at a time);
    recorded by forward pre-hooks and summed over every token (not averaged)."""
    return _accumulate(model, x, list(names or linear_layers(model)), True, chunk)


def calibration_norms(
    model: nn.Module, x: Tensor, names: Sequence[str] | None = None, chunk: int | None = None
) -> dict[str, Tensor]:
    """``{name: ||X_j||_2^2 for each input j}`` = ``diag(X X^T)`` = ``diag(H) / 2`` (float64),
    recorded like :func:`calibration_hessians` without forming ``H``."""
    return _accumulate(model, x, list(names or linear_layers(model)), False, chunk)


def calibration_blocks(
    model: nn.Module, blocks: str | int | Sequence[Sequence[str]] = "layer"
) -> list[list[str]]:
    """The order in which :func:`layerwise_prune` calibrates and prunes: a list of blocks,
    each a list of Linear weight names. ``"layer"``: every layer its own block (each
    calibrated on the model with all earlier layers pruned); ``"model"``: one block (every
    layer calibrated on the dense model); an int ``k``: layers grouped by the first ``k``
    components of their module name (``k = 2`` groups ``"blocks.0.attn.weight"`` and
    ``"blocks.0.mlp.fc.weight"`` under ``"blocks.0"``: one transformer block at a time, as
    the papers do); or explicit lists of names (each Linear layer at most once)."""
    names = list(linear_layers(model))
    if blocks == "layer":
        return [[n] for n in names]
    if blocks == "model":
        return [names]
    if isinstance(blocks, int) and not isinstance(blocks, bool):
        if blocks < 1:
            raise ValueError(f"blocks as a depth must be >= 1, got {blocks}")
        keyed = [(".".join(n.split(".")[:blocks]), n) for n in names]
        return [[n for _, n in g] for _, g in itertools.groupby(keyed, key=lambda t: t[0])]
    if isinstance(blocks, str) or not isinstance(blocks, Sequence):
        raise ValueError(
            f"blocks must be 'layer', 'model', a depth or lists of names, got {blocks!r}"
        )
    out = [list(b) for b in blocks]
    flat = [n for b in out for n in b]
    unknown = [n for n in flat if n not in names]
    if unknown or len(flat) != len(set(flat)) or any(not b for b in out):
        raise ValueError(
            f"blocks must be non-empty lists of distinct Linear weight names {names}; "
            f"unknown {unknown}"
        )
    return out


# ----------------------------------------------------------------------------- the rules

NEEDS = ("weights", "norms", "hessian")
"""What a :class:`LayerRule` is given for each layer besides its weight: nothing
(``"weights"``), the squared input norms ``||X_j||_2^2`` (``"norms"``,
:func:`calibration_norms`) or ``H = 2 X X^T`` (``"hessian"``, :func:`calibration_hessians`)."""


@dataclass(frozen=True)
class LayerRule:
    """How one layer-wise method prunes one layer, for :func:`layerwise_prune`:

        prune(weight, stats, sparsity) -> (new weight or None, keep)

    ``weight`` is the layer's effective weight (``out x in``), ``stats`` what ``needs`` (one of
    :data:`NEEDS`) names for that layer (``None``, the squared input norms, or ``H``),
    ``sparsity`` the layer's fraction; ``keep`` is its boolean keep-mask (``out x in``) and the
    new weight, for methods that reconstruct, overwrites the layer's (``None``: left as is).
    ``pattern`` (``"unstructured"`` or ``"N:M"``) is checked against every layer's sparsity
    before any layer is pruned; ``name`` is what error messages call the method. A rule is
    built, with its options checked, by its constructor (:func:`magnitude_rule`,
    :func:`wanda_rule`, :func:`sparsegpt_rule`, :func:`obc_rule`)."""

    name: str
    needs: str
    prune: Callable[[Tensor, Tensor | None, float], tuple[Tensor | None, Tensor]]
    pattern: str = "unstructured"

    def __post_init__(self) -> None:
        if self.needs not in NEEDS:
            raise ValueError(f"unknown needs {self.needs!r}; valid: {', '.join(NEEDS)}")
        parse_pattern(self.pattern)


def _check_groups(groups: str) -> str:
    if groups not in GROUPS:
        raise ValueError(f"unknown groups {groups!r}; valid: {', '.join(GROUPS)}")
    return groups


def magnitude_rule(pattern: str = "unstructured", groups: str = "layer") -> LayerRule:
    """Magnitude: keep the largest ``|W_ij|`` (:func:`pattern_mask` with ``pattern`` and, for an
    unstructured mask, ``groups``: ``"layer"``, one threshold per layer, the papers' magnitude
    baseline, or ``"row"``); weights only, no update."""
    parse_pattern(pattern)
    _check_groups(groups)

    def prune(w: Tensor, stats: Tensor | None, sparsity: float) -> tuple[None, Tensor]:
        return None, pattern_mask(w.abs(), sparsity, pattern, groups)

    return LayerRule("magnitude", "weights", prune, pattern)


def wanda_rule(pattern: str = "unstructured", groups: str = "row") -> LayerRule:
    """Wanda: keep the largest ``|W_ij| ||X_j||_2`` (:func:`wanda_scores`) with ``pattern`` and,
    for an unstructured mask, ``groups`` (``"row"``, each output row loses the same fraction,
    the paper's default, or ``"layer"``, its ablation); no update."""
    parse_pattern(pattern)
    _check_groups(groups)

    def prune(w: Tensor, stats: Tensor | None, sparsity: float) -> tuple[None, Tensor]:
        return None, pattern_mask(wanda_scores(w, stats), sparsity, pattern, groups)  # type: ignore[arg-type]

    return LayerRule("wanda", "norms", prune, pattern)


def sparsegpt_rule(
    pattern: str = "unstructured", blocksize: int = DEFAULT_BLOCKSIZE, damp: float = DEFAULT_DAMP
) -> LayerRule:
    """SparseGPT: :func:`sparsegpt_prune` with ``H = 2 X X^T``, ``damp`` and ``blocksize`` (for
    ``"N:M"`` a multiple of ``M``); the layer's weights are replaced by the reconstruction."""
    nm = parse_pattern(pattern)
    _check_damp(damp)
    _check_blocksize(blocksize, None if nm is None else nm[1])

    def prune(w: Tensor, h: Tensor | None, sparsity: float) -> tuple[Tensor, Tensor]:
        out = sparsegpt_prune(w, h, sparsity, pattern, blocksize, damp)  # type: ignore[arg-type]
        return out.weight, out.keep

    return LayerRule("sparsegpt", "hessian", prune, pattern)


def obc_rule(pattern: str = "unstructured", damp: float = DEFAULT_DAMP) -> LayerRule:
    """OBC: :func:`obc_prune` with ``H = 2 X X^T`` and ``damp`` (exact OBS per row, small
    layers only); the layer's weights are replaced by the reconstruction."""
    parse_pattern(pattern)
    _check_damp(damp)

    def prune(w: Tensor, h: Tensor | None, sparsity: float) -> tuple[Tensor, Tensor]:
        out = obc_prune(w, h, sparsity, pattern, damp)  # type: ignore[arg-type]
        return out.weight, out.keep

    return LayerRule("obc", "hessian", prune, pattern)


# ------------------------------------------------------------------------------ the pruner


def layerwise_prune(
    model: nn.Module,
    rule: LayerRule,
    sparsity: Sparsity,
    x: Tensor | None,
    *,
    blocks: str | int | Sequence[Sequence[str]] = "layer",
    chunk: int | None = None,
) -> Masks:
    """Prune the Linear layers of ``model`` one block at a time (:func:`calibration_blocks`) with
    the layer-wise ``rule`` (a :class:`LayerRule`, e.g. ``wanda_rule("2:4")``) on the calibration
    inputs ``x`` (``None`` allowed for a rule that needs the weights only); returns
    ``{weight name: keep-mask}`` for every layer pruned (every Linear layer named by ``blocks``).

    For each block in turn: run the model (its earlier blocks already pruned) on ``x``,
    ``chunk`` examples at a time, and record what the rule needs of each of the block's layers'
    inputs ``X`` with hooks (``||X_j||_2^2`` or ``H = 2 X X^T``); then prune each layer of the
    block to its sparsity (``sparsity``, or its entry of a ``{name: fraction}`` mapping) with
    ``rule.prune``.

    What is modified: where the rule returns a new weight (SparseGPT, OBC), the pruned layer's
    weight is overwritten with it (``weight``, or ``weight_orig`` when the layer already carries
    a mask); for every rule the masks are applied with :func:`minipruner.core.masks.apply_masks`
    (combined with masks already there). Biases and every other parameter are left as they are.
    """
    if not isinstance(rule, LayerRule):
        raise ValueError(f"rule must be a LayerRule (e.g. wanda_rule()), got {rule!r}")
    if x is None and rule.needs != "weights":
        raise ValueError(f"{rule.name} needs calibration inputs x; got None")
    nm = parse_pattern(rule.pattern)
    order = calibration_blocks(model, blocks)
    names = [n for b in order for n in b]
    if isinstance(sparsity, Mapping):
        ratios = layer_sparsities(names, sparsity)
    else:
        ratios = dict.fromkeys(names, _check_sparsity(sparsity, ""))
    for r in ratios.values():
        check_pattern_sparsity(r, nm)
    modules = linear_layers(model)
    masks: Masks = {}
    for block in order:
        stats: dict[str, Tensor] = {}
        if rule.needs != "weights":
            stats = _accumulate(model, x, block, rule.needs == "hessian", chunk)  # type: ignore[arg-type]
        new: Masks = {}
        for name in block:
            module = modules[name]
            w = effective_weight(module).detach()
            weight, keep = rule.prune(w, stats.get(name), ratios[name])
            if tuple(keep.shape) != tuple(w.shape) or keep.dtype != torch.bool:
                raise ValueError(
                    f"{rule.name} returned a keep-mask of shape {tuple(keep.shape)} and dtype "
                    f"{keep.dtype} for {name}; need a bool mask of shape {tuple(w.shape)}"
                )
            if weight is not None:
                with torch.no_grad():
                    target = weight_parameter(module)
                    target.copy_(weight.to(target.dtype).reshape(target.shape))
            new[name] = keep
        new = {n: m.to(modules[n].weight.device) for n, m in new.items()}
        apply_masks(model, new)
        masks.update(new)
    return masks


__all__ = [
    "DEFAULT_BLOCKSIZE",
    "DEFAULT_DAMP",
    "GROUPS",
    "NEEDS",
    "LayerResult",
    "LayerRule",
    "calibration_hessians",
    "calibration_norms",
    "check_pattern_sparsity",
    "damped",
    "group_mask",
    "calibration_blocks",
    "layer_error",
    "layerwise_prune",
    "linear_layers",
    "magnitude_rule",
    "nm_mask",
    "obc_prune",
    "obc_rule",
    "optimal_reconstruction",
    "parse_pattern",
    "pattern_mask",
    "sparsegpt_prune",
    "sparsegpt_rule",
    "wanda_rule",
    "wanda_scores",
]
