"""Chapter 1: magnitude pruning, the exact minimiser of a layer's Frobenius distortion.

Pruning a layer ``y = W x`` with a keep-mask ``M`` changes its output by
``(W - W*M) x``, so for every input ``||(W - W*M) x|| <= ||W - W*M||_2 ||x||
<= ||W - W*M||_F ||x||``. The Frobenius distortion is
``||W - W*M||_F^2 = sum_{(i,j): M_ij = 0} W_ij^2``, the sum of the squares of the removed
weights, so among all masks that remove ``k`` weights it is smallest when those are the
``k`` weights of smallest magnitude: magnitude pruning (Park et al. 2020, section 2).
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from .masks import prunable, prune


def magnitude_scores(model: nn.Module) -> dict[str, Tensor]:
    """Score every prunable weight by its magnitude: ``score = |w|`` (higher = keep).

    >>> import torch
    >>> net = nn.Linear(2, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = net.weight.copy_(torch.tensor([[-3.0, 1.0]]))
    >>> magnitude_scores(net)["weight"]
    tensor([[3., 1.]])
    """
    return {name: w.detach().abs().clone() for name, w in prunable(model).items()}


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
