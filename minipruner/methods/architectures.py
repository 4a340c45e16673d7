"""Wide residual networks built from other networks' widths (chapter 5): a *reduced*
network (every block interior narrowed by one factor, trained from scratch), the factor that
matches a parameter budget, and the *pruned architecture* (a pruned network's widths, freshly
initialised).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..core.measure import count_parameters
from ..core.models import WideResNet
from .channels import compress, interior_widths

__all__ = ["matched_interior", "pruned_architecture", "reduced_wrn", "wrn_parameters"]


# --------------------------------------------------------------------------------------
# Reduced networks and pruned architectures
# --------------------------------------------------------------------------------------


def reduced_wrn(
    depth: int, widen: int, *, interior: float | Sequence[float] = 1.0, **kwargs: Any
) -> WideResNet:
    """A reduced WRN of Crowley et al.: WRN-``depth``-``widen`` whose block interiors are
    ``int(round(out * interior))`` wide (uniform width scaling; ``interior = 1`` is the
    dense network), or a shallower one (smaller ``depth``). Other keyword arguments
    (``num_classes``, ``in_channels``, ``dim``, ``input_shape``) go to
    :class:`~minipruner.core.models.WideResNet`."""
    return WideResNet(depth, widen, interior=interior, **kwargs)


def wrn_parameters(
    depth: int, widen: int, *, interior: float | Sequence[float] = 1.0, **kwargs: Any
) -> int:
    """Parameter count of ``reduced_wrn(depth, widen, interior=interior, **kwargs)``, built
    on the meta device (no memory, no initialisation cost)."""
    with torch.device("meta"):
        model = reduced_wrn(depth, widen, interior=interior, **kwargs)
    return count_parameters(model)


def matched_interior(depth: int, widen: int, parameters: int, **kwargs: Any) -> float:
    """The uniform interior multiplier ``f`` in (0, 1] whose reduced WRN has the parameter
    count closest to ``parameters`` (ties: the smaller network), found by bisection on
    ``P(f)``, which is non-decreasing in ``f``."""
    if parameters < 1:
        raise ValueError(f"parameters must be positive, got {parameters}")

    def count(f: float) -> int:
        return wrn_parameters(depth, widen, interior=f, **kwargs)

    lo, hi = 0.0, 1.0  # P(lo) <= parameters, or lo = 0; invariant kept below
    if count(hi) <= parameters:
        return 1.0
    for _ in range(24):  # hi - lo = 6e-8, finer than any width step for widen < 10^5
        mid = (lo + hi) / 2
        if count(mid) <= parameters:
            lo = mid
        else:
            hi = mid
    if lo == 0.0:
        return hi
    below, above = count(lo), count(hi)
    return lo if parameters - below <= above - parameters else hi


def _wrn_config(model: WideResNet) -> dict[str, Any]:
    n = len(model.block1)
    first = model.block1[0]
    return {
        "depth": 6 * n + 4,
        "widen": first.conv2.out_channels // 16,
        "num_classes": model.fc.out_features,
        "in_channels": model.conv.in_channels,
        "dim": 1 if isinstance(model.conv, nn.Conv1d) else 2,
        "input_shape": model.input_shape,
    }


def pruned_architecture(model: nn.Module, seed: int | None = None) -> nn.Module:
    """The pruned network's architecture, freshly initialised ("trained from scratch").

    For a :class:`~minipruner.core.models.WideResNet`: ``WideResNet(..., interior_widths=w)``
    with ``w = interior_widths(model)`` (kept channels per block) and its usual init. For
    any other model: ``compress(model)`` with every parameter re-initialised by its
    module's ``reset_parameters`` and batch-norm statistics reset. ``seed`` seeds the init.
    """
    if seed is not None:
        torch.manual_seed(seed)
    if isinstance(model, WideResNet):
        return WideResNet(**_wrn_config(model), interior_widths=interior_widths(model))
    new = compress(model)
    for m in new.modules():
        if hasattr(m, "reset_running_stats"):
            m.reset_running_stats()
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return new
