"""The two inputs of chapter 4's second-order methods: the flat weight vector ``w`` and the
``N x d`` matrix ``G`` of per-sample gradients.

``w`` concatenates the prunable weights in the order of :func:`minipruner.core.masks.prunable`
(:func:`flatten_weights`; :func:`unflatten_weights` splits it back, :func:`layer_blocks` gives
each layer's index range in it). Row ``n`` of ``G`` is the gradient ``g_n`` of the loss of
example (or mini-batch) ``n`` with respect to ``w`` (:func:`per_sample_grads`), so that the
empirical Fisher is ``F = G^T G / N``: :mod:`minipruner.methods.fisher` builds and inverts
the damped ``H = damp I + F``, :mod:`minipruner.methods.obs` prunes with it and
:mod:`minipruner.methods.cbs` searches for the set to prune. The checks those modules apply to
``G``, ``w`` and a pruned set (``_check_grads``, ``_check_vector``, ``_check_pruned``) live
here, below every one of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from ..core.masks import prunable, prunable_modules

__all__ = ["flatten_weights", "layer_blocks", "per_sample_grads", "unflatten_weights"]


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
# Checks of w and G, shared by the Fisher, OBS and CBS modules
# --------------------------------------------------------------------------------------


def _check_grads(grads: Tensor) -> Tensor:
    """``G`` detached, after checking that it is a finite floating-point ``N x d`` matrix."""
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


def _check_vector(w: Tensor, d: int, what: str = "w") -> Tensor:
    """``w`` detached, after checking that it is a vector of length ``d``."""
    if not isinstance(w, Tensor) or w.dim() != 1 or w.numel() != d:
        shape = tuple(w.shape) if isinstance(w, Tensor) else type(w).__name__
        raise ValueError(f"{what} must be a vector of length {d}, got {shape}")
    return w.detach()


def _check_pruned(pruned: Tensor, d: int, what: str = "pruned") -> Tensor:
    """``pruned``, after checking that it is a bool vector of length ``d``."""
    if not isinstance(pruned, Tensor) or pruned.dtype != torch.bool or pruned.shape != (d,):
        desc = (
            f"{pruned.dtype} {tuple(pruned.shape)}"
            if isinstance(pruned, Tensor)
            else type(pruned).__name__
        )
        raise ValueError(f"{what} must be a bool vector of length {d}, got {desc}")
    return pruned
