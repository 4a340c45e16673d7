"""Chapter 1: magnitude pruning, the exact minimiser of a layer's Frobenius distortion.

Pruning a layer ``y = W x`` with a keep-mask ``M`` changes its output by
``(W - W*M) x``, so for every input ``||(W - W*M) x|| <= ||W - W*M||_2 ||x||
<= ||W - W*M||_F ||x||``. The Frobenius distortion is
``||W - W*M||_F^2 = sum_{(i,j): M_ij = 0} W_ij^2``, the sum of the squares of the removed
weights, so among all masks that remove ``k`` weights it is smallest when those are the
``k`` weights of smallest magnitude: magnitude pruning (Park et al. 2020, section 2).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..core.masks import normalize_scores, prunable, prune


def magnitude_scores(model: nn.Module, *, normalize: bool = False) -> dict[str, Tensor]:
    """Score every prunable weight by its magnitude: ``score = |w|`` (higher = keep); with
    ``normalize=True`` each layer's scores are divided by their Frobenius norm,
    ``|w| / ||W_i||_F`` (:func:`minipruner.core.masks.normalize_scores` with ``p = 2``): the
    normalised global magnitude pruning of the LAP paper's code (``MP_Global`` with
    ``normalize=True``, ``mp_global_normalize``, in ``method/global_prune.py`` of
    github.com/alinlab/lookahead_pruning), which divides each layer's ``|w|`` by its L2 norm.
    Its global LAP normalises the squared lookahead score the same way, which is ``p = 4`` on
    the unsquared score (:func:`minipruner.methods.lookahead.normalized_lookahead_scores`).

    >>> import torch
    >>> net = nn.Linear(2, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = net.weight.copy_(torch.tensor([[-3.0, 1.0]]))
    >>> magnitude_scores(net)["weight"]
    tensor([[3., 1.]])
    """
    scores = {name: w.detach().abs().clone() for name, w in prunable(model).items()}
    return normalize_scores(scores) if normalize else scores


def frobenius_distortion(weight: Tensor, mask: Tensor) -> Tensor:
    """The Frobenius distortion of pruning ``weight`` with keep-mask ``mask``:
    ``||W - W*M||_F = sqrt(sum of the squares of the removed weights)``."""
    if weight.shape != mask.shape:
        raise ValueError(f"weight shape {tuple(weight.shape)} != mask shape {tuple(mask.shape)}")
    return (weight.detach() * (~mask.bool())).norm()


def magnitude_prune(
    model: nn.Module, sparsity: float | Mapping[str, float], scope: str = "global"
) -> dict[str, Tensor]:
    """One-shot magnitude pruning: remove the weights of smallest ``|w|``, globally
    (one threshold over all layers) or layer by layer (``scope="layer"``, with one ratio
    or a ``{name: ratio}`` mapping). Applies the masks to ``model`` and returns them."""
    return prune(model, magnitude_scores(model), sparsity, scope)


def spectral_distortion(weight: Tensor, mask: Tensor) -> Tensor:
    """The spectral-norm distortion ``||W - W*M||_2``: the largest factor by which pruning
    can change the layer's output, ``max_x ||(W - W*M) x|| / ||x||``."""
    if weight.shape != mask.shape:
        raise ValueError(f"weight shape {tuple(weight.shape)} != mask shape {tuple(mask.shape)}")
    return torch.linalg.matrix_norm(weight.detach() * (~mask.bool()), ord=2)


def brute_force_masks(weight: Tensor, k: int, norm: str = "fro") -> tuple[Tensor, Tensor]:
    """Try every mask of ``weight`` that removes exactly ``k`` entries; return the one with
    the smallest distortion ``||W - W*M||`` in ``norm`` (``"fro"`` or ``"spectral"``) and
    that distortion. Ties go to the first mask in lexicographic order of removed positions.

    There are ``C(n, k)`` masks, so this is for matrices of a dozen or so entries: it is the
    ground truth that the chapter checks magnitude pruning against.
    """
    n = weight.numel()
    if weight.dim() != 2 or n > 20:
        raise ValueError(
            f"brute force needs a matrix of at most 20 entries, got {tuple(weight.shape)}"
        )
    if not 0 <= k <= n:
        raise ValueError(f"k must be in [0, {n}], got {k}")
    distortion = {"fro": frobenius_distortion, "spectral": spectral_distortion}.get(norm)
    if distortion is None:
        raise ValueError(f"unknown norm {norm!r}; valid: fro, spectral")
    best_mask, best = None, None
    for removed in itertools.combinations(range(n), k):
        keep = torch.ones(n, dtype=torch.bool)
        keep[list(removed)] = False
        mask = keep.reshape(weight.shape)
        value = distortion(weight, mask)
        if best is None or value < best - 1e-12:
            best_mask, best = mask, value
    return best_mask, best
