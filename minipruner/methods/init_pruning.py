"""Chapter 3: pruning at initialisation (GraSP, SNIP, random, magnitude at init).

Every method scores every prunable weight of a freshly initialised network once, then
remove the lowest-scored weights with one global threshold (higher score = keep, as for
every scorer in :mod:`minipruner`).

**SNIP** (Lee et al. 2019) keeps the weights whose removal changes the loss most to first
order: ``L(theta - theta_q) - L(theta) ~ -theta_q * g_q``, so its score is the connection
sensitivity ``|theta * g|`` with ``g = dL/dtheta``.

**GraSP** (Wang, Zhang, Grosse 2020) instead preserves the *gradient flow*
``G(theta) = g^T g``. Removing the weights ``delta = -theta_q`` (and keeping the rest)
changes it, to first order, by

    ``G(theta + delta) - G(theta) ~ 2 delta^T H g``,   ``H = d^2 L / dtheta^2``,

so GraSP's removal score is ``S(-theta) = -theta * Hg`` (elementwise) and it removes the
weights with the *largest* ``S``: those whose removal reduces gradient flow least, or even
increases it. :func:`grasp_scores` returns ``theta * Hg = -S``; keeping its highest values
removes exactly the weights with the largest ``-theta * Hg``, the set GraSP removes. Note the
sign: a weight with a large negative ``theta * Hg`` is removed even though ``|theta * Hg|`` is
large. ``Hg`` is computed without ever forming ``H``, by double back-propagation:
``Hg = d/dtheta (g_const . dL/dtheta)`` with ``g`` held constant.

Conventions shared by the data-driven scorers (:func:`grasp_scores`, :func:`snip_scores`):

* ``L`` is the mean cross-entropy over the whole scoring batch; ``g`` and ``H`` are taken
  with respect to the prunable weights only (:func:`minipruner.core.masks.prunable`: every Linear
  and Conv weight; biases and BatchNorm parameters are held fixed), as GraSP's code does.
* The batch is processed in chunks of ``chunk_size`` examples (``None``: one chunk). Each
  chunk's contribution is weighted by its size, ``n_c / N``, so the result is the whole
  batch's, whatever the chunking (exactly so without BatchNorm in train mode, see below).
* The model is scored in the mode the caller left it in. GraSP's paper scores the network
  at init in train mode, where BatchNorm normalises with the statistics of each chunk (so
  with BatchNorm in train mode the result depends on ``chunk_size``); in eval mode it uses
  its running statistics. Scoring leaves no trace: parameters, buffers (BatchNorm running
  statistics included), ``requires_grad`` flags, ``.grad`` and train/eval mode are as before.
* For a layer that already carries a mask, ``theta`` is its effective weight
  ``weight_orig * weight_mask`` and the derivatives are those of the masked network with
  respect to its kept weights (pruned entries get score 0 from GraSP and SNIP).
"""

from __future__ import annotations

import copy
import inspect
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..core.data import class_balanced_batch
from ..core.masks import (
    apply_masks,
    masks_from_scores,
    prunable,
    prunable_modules,
    weight_parameter,
)

__all__ = [
    "grasp_scores",
    "grasp_opposite_scores",
    "grasp_abs_scores",
    "snip_scores",
    "random_scores",
    "prune_at_init",
    "layer_collapse",
    "layer_densities",
    "shuffle_masks",
    "grasp_paper_init",
    "xavier_linear_copy",
]

# --------------------------------------------------------------------------------------
# Helpers: the variables we differentiate, leaving the model as we found it, chunks
# --------------------------------------------------------------------------------------


def _variables(model: nn.Module) -> dict[str, Tensor]:
    """The leaf parameters behind each prunable weight: ``weight_orig`` for a masked layer
    (whose effective weight ``weight_orig * weight_mask`` is rebuilt at every forward),
    else ``weight``."""
    return {name: weight_parameter(module) for name, module in prunable_modules(model).items()}


@contextmanager
def _untouched(model: nn.Module) -> Iterator[None]:
    """Run a block that differentiates through ``model`` and restore afterwards what it
    could change: train/eval mode, buffers (BatchNorm running statistics), and the
    ``requires_grad`` flags of the prunable weights (switched on inside the block)."""
    training = {m: m.training for m in model.modules()}
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    variables = list(_variables(model).values())
    flags = [v.requires_grad for v in variables]
    try:
        for v in variables:
            v.requires_grad_(True)
        with torch.enable_grad():
            yield
    finally:
        for v, flag in zip(variables, flags, strict=True):
            v.requires_grad_(flag)
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name in buffers:
                    b.copy_(buffers[name])
        for m, mode in training.items():
            m.training = mode


def _prepare_batch(model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Move ``(x, y)`` to the model's device (and floating inputs to its dtype); check them."""
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.shape[0] == 0:
        raise ValueError("the scoring batch is empty")
    if y.shape[:1] != x.shape[:1]:
        raise ValueError(f"x has {x.shape[0]} examples but y has {y.shape[0]} labels")
    param = next(model.parameters())
    if x.is_floating_point():
        x = x.to(device=param.device, dtype=param.dtype)
    else:
        x = x.to(param.device)
    return x, y.to(param.device).long()


def _chunks(x: Tensor, y: Tensor, chunk_size: int | None) -> list[tuple[Tensor, Tensor, float]]:
    """``(x_c, y_c, n_c / N)`` for consecutive chunks of at most ``chunk_size`` examples."""
    n = x.shape[0]
    if chunk_size is None:
        return [(x, y, 1.0)]
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    return [
        (x[i : i + chunk_size], y[i : i + chunk_size], min(chunk_size, n - i) / n)
        for i in range(0, n, chunk_size)
    ]


def _loss(model: nn.Module, x: Tensor, y: Tensor, temperature: float) -> Tensor:
    """Mean cross-entropy of the logits divided by ``temperature``."""
    return F.cross_entropy(model(x) / temperature, y)


def _grads(out: Tensor, variables: Sequence[Tensor], create_graph: bool = False) -> list[Tensor]:
    """``d out / d v`` for each variable (zeros where ``out`` does not depend on it)."""
    grads = torch.autograd.grad(out, variables, create_graph=create_graph, allow_unused=True)
    return [torch.zeros_like(v) if g is None else g for g, v in zip(grads, variables, strict=True)]


def _mean_gradient(
    model: nn.Module,
    variables: Sequence[Tensor],
    x: Tensor,
    y: Tensor,
    temperature: float,
    chunk_size: int | None,
) -> list[Tensor]:
    """``g = dL/dtheta`` of the whole batch's mean loss, accumulated chunk by chunk."""
    g = [torch.zeros_like(v) for v in variables]
    for xc, yc, weight in _chunks(x, y, chunk_size):
        for acc, grad in zip(g, _grads(_loss(model, xc, yc, temperature), variables), strict=True):
            acc.add_(grad.detach(), alpha=weight)
    return g


def _check_temperature(temperature: float) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return float(temperature)


# --------------------------------------------------------------------------------------
# Scorers (higher = keep)
# --------------------------------------------------------------------------------------


def hessian_gradient_product(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    temperature: float = 200.0,
    *,
    chunk_size: int | None = None,
) -> dict[str, Tensor]:
    """The Hessian-gradient product ``Hg`` over the prunable weights, keyed like
    :func:`minipruner.core.masks.prunable`.

    With ``L(theta) = mean_i CE(f(x_i; theta) / T, y_i)`` over the whole batch
    (``T = temperature``), ``g = dL/dtheta`` and ``H = d^2 L / dtheta^2``, both with respect to
    the prunable weights only. First ``g`` is accumulated over chunks (chunk ``c`` weighted by
    ``n_c / N``); then, with ``g`` held constant,
    ``Hg = sum_c (n_c / N) d/dtheta (g . dL_c/dtheta)`` (double back-propagation), which is
    the whole batch's ``Hg`` whatever the chunking. See the module docstring for the
    conventions (BatchNorm mode, masked layers, leaving the model untouched).
    """
    temperature = _check_temperature(temperature)
    x, y = _prepare_batch(model, x, y)
    names = list(prunable_modules(model))
    with _untouched(model):
        variables = list(_variables(model).values())
        g = _mean_gradient(model, variables, x, y, temperature, chunk_size)
        hg = [torch.zeros_like(v) for v in variables]
        for xc, yc, weight in _chunks(x, y, chunk_size):
            grads = _grads(_loss(model, xc, yc, temperature), variables, create_graph=True)
            z = sum((gc * gl).sum() for gc, gl in zip(g, grads, strict=True))
            if not isinstance(z, Tensor) or not z.requires_grad:
                continue  # the gradient does not depend on the weights: H = 0
            for acc, h in zip(hg, _grads(z, variables), strict=True):
                acc.add_(h.detach(), alpha=weight)
    return dict(zip(names, hg, strict=True))


def grasp_scores(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    temperature: float = 200.0,
    *,
    chunk_size: int | None = None,
) -> dict[str, Tensor]:
    """GraSP scores, higher = keep: ``score = theta * Hg`` (elementwise), over the prunable
    weights.

    GraSP's removal score is ``S(-theta) = -theta * Hg`` and GraSP removes the weights with
    the largest ``S``; since ``score = -S``, keeping the highest scores (as
    :func:`minipruner.core.masks.masks_from_scores` does) removes exactly those weights.

    ``Hg`` is :func:`hessian_gradient_product`: ``g`` and ``H`` of the mean cross-entropy of
    ``logits / temperature`` over the whole batch ``(x, y)``, both for the loss with the
    temperature (as GraSP's code does; its default ``T = 200`` smooths the softmax), with
    respect to the prunable weights only (biases and BatchNorm parameters excluded), and
    accumulated over chunks of ``chunk_size`` examples weighted by chunk size (``None``: one
    chunk). The model is scored in its current train/eval mode and is left unchanged.
    """
    hg = hessian_gradient_product(model, x, y, temperature, chunk_size=chunk_size)
    theta = prunable(model)
    return {name: theta[name].detach() * h for name, h in hg.items()}


def grasp_opposite_scores(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    temperature: float = 200.0,
    *,
    chunk_size: int | None = None,
) -> dict[str, Tensor]:
    """GraSP's scores with the opposite sign, higher = keep: ``score = -theta * Hg``.

    Keeping the highest ``-theta * Hg`` removes the weights with the largest ``theta * Hg``:
    the weights whose removal *reduces* gradient flow most (to first order), the opposite of
    GraSP's choice. ``Hg`` as in :func:`grasp_scores`.
    """
    return {
        k: torch.neg(s)
        for k, s in grasp_scores(model, x, y, temperature, chunk_size=chunk_size).items()
    }


def grasp_abs_scores(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    temperature: float = 200.0,
    *,
    chunk_size: int | None = None,
) -> dict[str, Tensor]:
    """GraSP's scores without their sign, higher = keep: ``score = |theta * Hg|``.

    Keeps the weights whose removal changes gradient flow most in either direction
    (preserving ``G`` rather than maximising it). ``Hg`` as in :func:`grasp_scores`.
    """
    return {
        k: torch.abs(s)
        for k, s in grasp_scores(model, x, y, temperature, chunk_size=chunk_size).items()
    }


def snip_scores(
    model: nn.Module, x: Tensor, y: Tensor, *, chunk_size: int | None = None
) -> dict[str, Tensor]:
    """SNIP's connection sensitivity, higher = keep: ``score = |theta * dL/dtheta|``.

    ``L`` is the plain mean cross-entropy of the logits (temperature 1) over the whole batch
    ``(x, y)``; the gradient is taken with respect to the prunable weights and accumulated
    over chunks of ``chunk_size`` examples weighted by chunk size (``None``: one chunk).
    SNIP's normalisation by the sum of all scores is omitted: it does not change the ranking.
    The model is scored in its current train/eval mode and is left unchanged.
    """
    x, y = _prepare_batch(model, x, y)
    names = list(prunable_modules(model))
    with _untouched(model):
        variables = list(_variables(model).values())
        g = _mean_gradient(model, variables, x, y, 1.0, chunk_size)
    theta = prunable(model)
    return {name: (theta[name].detach() * grad).abs() for name, grad in zip(names, g, strict=True)}


def random_scores(model: nn.Module, seed: int = 0) -> dict[str, Tensor]:
    """Random pruning: i.i.d. scores ``score ~ Uniform[0, 1)``, one per prunable weight.

    Drawn layer by layer in forward order from NumPy's PCG64 generator seeded with ``seed``
    (then moved to each weight's device), so the scores depend only on ``seed`` and the layer
    shapes. Keeping the highest scores keeps a uniformly random subset.

    Why not ``torch.rand`` with a ``torch.Generator`` seeded with ``seed``: a network
    initialised after ``torch.manual_seed(seed)`` drew its uniform initial weights from the
    very same stream, so those "random" scores would equal ``(w + b) / 2b`` for the first
    layers and keep exactly the most positive initial weights. A different generator
    algorithm cannot line up with torch's stream for any seed.
    """
    rng = np.random.default_rng(seed)
    return {
        name: torch.from_numpy(rng.random(tuple(w.shape))).to(device=w.device, dtype=w.dtype)
        for name, w in prunable(model).items()
    }


# --------------------------------------------------------------------------------------
# Pruning at init, per-layer density, layer collapse
# --------------------------------------------------------------------------------------


def _scoring_batch(
    data: Dataset | tuple[Tensor, Tensor] | None, per_class: int, seed: int
) -> tuple[Tensor, Tensor]:
    """``(x, y)`` as given, or ``per_class`` examples of each class of a dataset."""
    if data is None:
        raise ValueError("this method needs data: a dataset or an (x, y) tuple")
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise ValueError(f"data as a tuple must be (x, y), got {len(data)} items")
        return torch.as_tensor(data[0]), torch.as_tensor(data[1])
    return class_balanced_batch(data, per_class, seed)


def grasp_paper_init(model: nn.Module) -> nn.Module:
    """Initialise ``model`` as the GraSP paper's code does (``weights_init`` in
    ``alecwangcq/GraSP``), in place: every convolution Kaiming-normal with fan-out,
    ``w ~ N(0, 2 / (k_h k_w C_out))``; every linear layer ``w ~ N(0, 0.01^2)``; biases 0;
    batch-norm scales 1 and shifts 0. Returns ``model``.

    The scale of each layer decides which layer a global magnitude threshold empties first:
    here the linear layers, whose weights are far smaller than PyTorch's default
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for a wide input.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Conv1d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            if m.weight is not None:
                nn.init.ones_(m.weight)
        else:
            continue
        if m.bias is not None:  # every bias of these layers starts at 0
            nn.init.zeros_(m.bias)
    return model


def xavier_linear_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose linear weights are drawn again Xavier-normal,
    ``w ~ N(0, 2 / (fan_in + fan_out))`` (from torch's global generator): the copy that
    GraSP's code scores (``reinit=True``) while its masks are applied to the original
    network, whose linear layers keep :func:`grasp_paper_init`'s ``N(0, 0.01^2)``."""
    twin = copy.deepcopy(model)
    for m in twin.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(weight_parameter(m))
    return twin


def prune_at_init(
    model: nn.Module,
    scorer: Callable[..., dict[str, Tensor]],
    sparsity: float,
    data: Dataset | tuple[Tensor, Tensor] | None = None,
    per_class: int = 10,
    seed: int = 0,
    **options: object,
) -> dict[str, Tensor]:
    """Prune ``model`` once, before training, with one global mask over every Conv and
    Linear weight; return the masks (``True`` = keep).

    ``scorer`` is a scorer of the method table, ``(model, batch, **options) -> scores``
    (higher = keep), e.g. ``minipruner.methods.get_method("grasp").scorer``. ``data`` (needed
    by the data-driven scorers, SNIP and GraSP) is an ``(x, y)`` tuple used as is, or a
    dataset from which :func:`minipruner.core.data.class_balanced_batch` draws ``per_class``
    examples of every class with ``seed`` (the GraSP paper uses 10 per class); ``None``: the
    scorer gets no batch. ``seed`` is also passed to a scorer that takes a ``seed`` option
    (random scores), unless ``options`` names one; ``options`` go to the scorer (GraSP's
    ``temperature``). The scores are computed once, then exactly ``round(sparsity * n)`` of
    all ``n`` prunable weights are removed, the lowest-scored over all layers together
    (``masks_from_scores(scores, sparsity, "global")``), and the masks applied.

    Warns (``UserWarning``) naming every layer left with no weights (:func:`layer_collapse`):
    such a layer disconnects the network.
    """
    if not callable(scorer):
        raise ValueError(
            f"scorer must be a function (model, batch, **options) -> scores, got {scorer!r}; "
            "for a method id use minipruner.methods.get_method(id).scorer"
        )
    batch = None if data is None else _scoring_batch(data, per_class, seed)
    if "seed" not in options and "seed" in inspect.signature(scorer).parameters:
        options["seed"] = seed
    scores = scorer(model, batch, **options)
    masks = masks_from_scores(scores, sparsity, "global", model=model)
    apply_masks(model, masks)
    collapsed = layer_collapse(masks)
    if collapsed:
        name = getattr(scorer, "__name__", "the scorer").strip("_")
        warnings.warn(
            f"layer collapse: {name} at sparsity {sparsity} left no weights in "
            f"{', '.join(collapsed)}; the network is disconnected there",
            UserWarning,
            stacklevel=2,
        )
    return masks


def _kept(masks_or_model: Mapping[str, Tensor] | nn.Module) -> dict[str, tuple[int, int]]:
    """``{name: (kept, total)}`` from masks, or from a model's (effective) weights."""
    if isinstance(masks_or_model, nn.Module):
        return {
            name: (int(torch.count_nonzero(w)), w.numel())
            for name, w in prunable(masks_or_model).items()
        }
    return {name: (int(torch.count_nonzero(m)), m.numel()) for name, m in masks_or_model.items()}


def layer_densities(masks: Mapping[str, Tensor] | nn.Module) -> dict[str, float]:
    """Fraction of weights kept in each layer: ``density_l = kept_l / n_l``.

    ``masks`` are keep-masks (``True`` or 1 = keep); for a model, the kept weights are the
    nonzero entries of its effective prunable weights.
    """
    return {name: kept / n if n else 0.0 for name, (kept, n) in _kept(masks).items()}


def layer_collapse(masks_or_model: Mapping[str, Tensor] | nn.Module) -> list[str]:
    """Names of the layers with no kept weight (``kept_l = 0``), in forward order.

    Such a layer passes nothing on (only its bias, a constant), so the network's output no
    longer depends on its input: layer collapse. Accepts keep-masks or a model (then kept
    weights are the nonzero entries of its effective prunable weights).
    """
    return [name for name, (kept, n) in _kept(masks_or_model).items() if n and kept == 0]


def shuffle_masks(masks: Mapping[str, Tensor], seed: int = 0) -> dict[str, Tensor]:
    """The layer-wise shuffle of Frankle et al. (2021): permute the entries of each layer's
    mask uniformly at random, within that layer.

    Each layer keeps exactly as many weights as before (its density is unchanged); which
    weights are kept becomes random. If a method's accuracy survives the shuffle, what it
    contributes is its per-layer densities, not its choice of individual weights. The
    permutations are drawn layer by layer in the order of ``masks`` from a CPU
    ``torch.Generator`` seeded with ``seed``.
    """
    generator = torch.Generator().manual_seed(seed)
    shuffled = {}
    for name, mask in masks.items():
        order = torch.randperm(mask.numel(), generator=generator).to(mask.device)
        shuffled[name] = mask.reshape(-1)[order].reshape(mask.shape)
    return shuffled
