"""What is prunable, scores -> masks, applying and removing masks, sparsity reports.

Every pruning method in the book is a *scorer*: a function that returns ``{name: score}``
with one score per weight, shaped like the weight, where a HIGHER score means KEEP.
One function, :func:`masks_from_scores`, turns any scorer's output into masks, so every
method is compared on identical footing. Masks are boolean tensors, ``True`` = keep, and
are applied through :mod:`torch.nn.utils.prune` (``weight_orig`` / ``weight_mask``).

Weights are addressed by parameter name (``"features.0.weight"``) in the order in which
the model registers its modules, which for every model of :mod:`minipruner.core.models` is the
order of the forward pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from torch.nn.utils import prune as torch_prune
from torch.utils.flop_counter import FlopCounterMode

PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
SCOPES = ("global", "layer")

# ------------------------------------------------------------------ the book's two interfaces

Scores = dict[str, Tensor]
"""``{weight name: score}``, one score per weight, shaped like the weight; HIGHER = KEEP."""

Masks = dict[str, Tensor]
"""``{weight name: bool tensor}`` shaped like the weight; ``True`` = keep."""

Batch = tuple[Tensor, Tensor | None]
"""Examples a method may look at: inputs ``x`` and integer labels ``y`` (``None`` for a
method that looks at inputs only, such as LAP-act's activation rates)."""

Sparsity = float | Mapping[str, float]
"""The fraction of weights to remove: one number (global or per layer, as the method says)
or ``{weight name: fraction}`` for per-layer ratios."""


@runtime_checkable
class Scorer(Protocol):
    """A pruning criterion: ``scorer(model, batch) -> Scores`` (higher = keep). It does not
    change the model; ``batch`` is ``None`` for criteria that look only at the weights.
    :func:`masks_from_scores` turns any scorer's output into masks, so criteria are compared
    on identical footing."""

    def __call__(self, model: nn.Module, batch: Batch | None) -> Scores: ...


@runtime_checkable
class Pruner(Protocol):
    """A pruning method: ``pruner(model, sparsity, batch) -> Masks``. It prunes ``model`` in
    place (masks applied with :func:`apply_masks`) and may also update the kept weights (OBS,
    WoodFisher, CBS) or mask whole units (structured methods). ``batch`` is ``None`` for
    methods that need no data. :mod:`minipruner.methods` holds one for every method."""

    def __call__(self, model: nn.Module, sparsity: Sparsity, batch: Batch | None) -> Masks: ...


def prunable_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Return ``{weight name: module}`` for every Linear/Conv layer, in registration order.

    Raises ``ValueError`` when the model has no Linear or Conv layer.
    """
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, PRUNABLE_TYPES):
            out[f"{name}.weight" if name else "weight"] = module
    if not out:
        kind = type(model).__name__
        raise ValueError(f"{kind} has nothing prunable: it contains no Linear or Conv layer")
    return out


def effective_weight(module: nn.Module) -> Tensor:
    """The weight a layer computes with: ``weight_orig * weight_mask`` if it carries a mask
    (its ``weight`` attribute is refreshed only by the forward pre-hook, so it is stale
    after an optimiser step), else ``weight``."""
    if hasattr(module, "weight_mask"):
        return module.weight_orig * module.weight_mask
    return module.weight


def weight_parameter(module: nn.Module) -> nn.Parameter:
    """The leaf parameter behind a layer's weight, the one to write to or differentiate:
    ``weight_orig`` if the layer carries a mask (its ``weight`` is then the product
    ``weight_orig * weight_mask``, recomputed before every forward pass), else ``weight``."""
    return module.weight_orig if hasattr(module, "weight_mask") else module.weight


def prunable(model: nn.Module) -> dict[str, Tensor]:
    """Return ``{name: weight}`` of the model's Linear and Conv layers, in forward order.

    For a layer that carries a mask the weight returned is the effective one,
    ``weight_orig * weight_mask`` (pruned entries are zero); otherwise it is the
    parameter itself.

    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> {k: tuple(v.shape) for k, v in prunable(net).items()}
    {'0.weight': (3, 4), '2.weight': (2, 3)}
    """
    return {name: effective_weight(m) for name, m in prunable_modules(model).items()}


def current_masks(model: nn.Module) -> dict[str, Tensor]:
    """Return the keep-mask of every prunable layer (all ``True`` where none is applied)."""
    out = {}
    for name, module in prunable_modules(model).items():
        if hasattr(module, "weight_mask"):
            out[name] = module.weight_mask.detach().bool().clone()
        else:
            out[name] = torch.ones_like(module.weight, dtype=torch.bool)
    return out


def check_against_model(tensors: Mapping[str, Tensor], model: nn.Module, what: str) -> None:
    """Raise ``ValueError`` unless ``tensors`` is keyed by prunable weight names of
    ``model`` and every tensor has the shape of its weight."""
    weights = prunable(model)
    unknown = [k for k in tensors if k not in weights]
    if unknown:
        raise ValueError(
            f"{what} name(s) {unknown} are not prunable weights of {type(model).__name__}; "
            f"valid names: {list(weights)}"
        )
    for name, t in tensors.items():
        if tuple(t.shape) != tuple(weights[name].shape):
            raise ValueError(
                f"{what} for {name!r} has shape {tuple(t.shape)}, "
                f"but the weight has shape {tuple(weights[name].shape)}"
            )


def _check_sparsity(value: object, where: str, closed: bool = False) -> float:
    # a network's sparsity lies in [0, 1); one layer's may also be 1 (``closed``): a layer
    # emptied, as a global threshold can leave it
    interval = "[0, 1]" if closed else "[0, 1)"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"sparsity{where} must be a number in {interval}, got {value!r}")
    if not (0.0 <= float(value) <= 1.0 if closed else 0.0 <= float(value) < 1.0):
        raise ValueError(f"sparsity{where} must be in {interval}, got {value}")
    return float(value)


def layer_sparsities(names: list[str], sparsity: Mapping[str, float]) -> dict[str, float]:
    """Check per-layer sparsities: ``sparsity`` must name exactly the layers ``names``, each
    with a number in [0, 1]; returns them in the order of ``names``. A layer's sparsity of 1
    removes every weight of that layer (its density 0: the layer is emptied, as a global
    threshold can leave it); the network as a whole keeps weights elsewhere."""
    missing = [k for k in names if k not in sparsity]
    extra = [k for k in sparsity if k not in names]
    if missing or extra:
        raise ValueError(
            f"per-layer sparsities must name exactly the layers {names}; "
            f"missing {missing}, unknown {extra}"
        )
    return {k: _check_sparsity(sparsity[k], f"[{k!r}]", closed=True) for k in names}


def _removal_order(flat: Tensor) -> Tensor:
    # Ascending stable sort: lowest score removed first; among equal scores the weight
    # that comes first (earlier layer, then lower flat index) is removed first.
    return torch.sort(flat, stable=True).indices


def masks_from_scores(
    scores: Mapping[str, Tensor],
    sparsity: float | Mapping[str, float],
    scope: str = "global",
    *,
    model: nn.Module | None = None,
) -> dict[str, Tensor]:
    """Turn scores into keep-masks (``True`` = keep) by removing the lowest-scored weights.

    With ``scope="global"`` exactly ``k = round(sparsity * n)`` of all ``n`` scored weights
    are removed: those with the ``k`` lowest scores over every layer together. With
    ``scope="layer"`` each layer ``l`` loses exactly ``round(s_l * n_l)`` of its own ``n_l``
    weights, where ``s_l`` is ``sparsity`` or, if ``sparsity`` is a mapping, its entry for
    that layer (per-layer ratios, as the LAP paper uses); a layer's ratio may be 1 (every
    weight of that layer removed), the single network-wide ``sparsity`` must be below 1.

    Ties are broken deterministically: among equal scores the weight that comes first
    (earlier layer in the order of ``scores``, then lower flat index) is removed first.
    Scores of ``-inf`` are allowed (always removed first); NaN is an error.

    If ``model`` is given, names and shapes are checked against its prunable weights.

    >>> s = {"a": torch.tensor([3.0, 1.0, 2.0]), "b": torch.tensor([0.5, 4.0])}
    >>> {k: v.tolist() for k, v in masks_from_scores(s, 0.4).items()}
    {'a': [True, False, True], 'b': [False, True]}
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; valid scopes: {', '.join(SCOPES)}")
    if not isinstance(scores, Mapping) or not scores:
        raise ValueError("scores must be a non-empty mapping {weight name: score tensor}")
    for name, s in scores.items():
        if not isinstance(s, Tensor):
            raise ValueError(f"score for {name!r} is a {type(s).__name__}, not a tensor")
        if s.is_floating_point() and torch.isnan(s).any():
            raise ValueError(f"score for {name!r} contains NaN")
    if model is not None:
        check_against_model(scores, model, "score")

    if isinstance(sparsity, Mapping):
        if scope != "layer":
            raise ValueError("per-layer sparsities (a mapping) need scope='layer'")
        ratios = layer_sparsities(list(scores), sparsity)
    else:
        ratios = dict.fromkeys(scores, _check_sparsity(sparsity, ""))

    if scope == "layer":
        masks = {}
        for name, s in scores.items():
            flat = s.detach().reshape(-1).float()
            keep = torch.ones(flat.numel(), dtype=torch.bool, device=flat.device)
            keep[_removal_order(flat)[: int(round(ratios[name] * flat.numel()))]] = False
            masks[name] = keep.reshape(s.shape)
        return masks

    flats = [s.detach().reshape(-1).float() for s in scores.values()]
    device = flats[0].device
    flat = torch.cat([f.to(device) for f in flats])
    n_remove = int(round(next(iter(ratios.values())) * flat.numel()))
    keep = torch.ones(flat.numel(), dtype=torch.bool, device=device)
    keep[_removal_order(flat)[:n_remove]] = False
    masks, start = {}, 0
    for (name, s), f in zip(scores.items(), flats, strict=True):
        masks[name] = keep[start : start + f.numel()].reshape(s.shape).to(s.device)
        start += f.numel()
    return masks


def keep_mask(score: Tensor, sparsity: float) -> Tensor:
    """Keep-mask of one score tensor, the rule of :func:`masks_from_scores` applied to it
    alone: the ``round(sparsity * n)`` lowest of its ``n`` scores removed (ties: the lower
    flat index first). For flat vectors such as chapter 4's ``w`` over all layers.

    >>> keep_mask(torch.tensor([3.0, 1.0, 2.0, 0.5]), 0.5).tolist()
    [True, False, True, False]
    """
    return masks_from_scores({"score": score}, sparsity)["score"]


def normalize_scores(scores: Mapping[str, Tensor], p: float = 2.0) -> dict[str, Tensor]:
    """Each layer's scores divided by their ``p``-norm over all of the layer's entries,
    ``s_i / ||s_i||_p`` (``p = 2``, the default: the Frobenius norm; a layer whose scores are
    all zero is left as it is).

    A per-layer normalisation before one global threshold: a layer's share of the global
    budget then depends on how its scores are spread, not on their scale. The LAP paper's
    code (``_score_based_global_pruning(normalize=True)`` in ``method/global_prune.py`` of
    github.com/alinlab/lookahead_pruning) divides the score it computes by its L2 norm:

    * magnitude pruning (``mp_global_normalize``): its score is ``|w|``, so it ranks by
      ``|w| / ||W_i||_F``, this function with ``p = 2``
      (:func:`minipruner.methods.magnitude.magnitude_scores` with ``normalize=True``);
    * lookahead pruning (``lap_global_normalize``): its score is the *squared* distortion
      ``L_i(w)^2 = w^2 * ||W_{i-1}[k, :]||^2 * ||W_{i+1}[:, j]||^2``, so it ranks by
      ``L_i^2 / ||L_i^2||_2 = (L_i / ||L_i||_4)^2``, i.e. by ``L_i / ||L_i||_4``: ``p = 4``
      on the unsquared lookahead score, not ``p = 2``
      (:func:`minipruner.methods.lookahead.normalized_lookahead_scores`).

    >>> import torch
    >>> normalize_scores({"a": torch.tensor([3.0, 4.0]), "b": torch.zeros(2)})["a"]
    tensor([0.6000, 0.8000])
    """
    if not p > 0:
        raise ValueError(f"p must be a positive number, got {p!r}")
    out = {}
    for name, score in scores.items():
        norm = score.norm(p=p)
        out[name] = score / norm if norm > 0 else score.clone()
    return out


def fed_units(mask: Tensor) -> Tensor:
    """Which output units of a layer keep at least one incoming weight: ``fed[u] = any_j
    mask[u, j]`` (for a convolution, ``u`` is an output channel and ``j`` runs over its input
    channels and taps). A unit that is not fed outputs only its bias, whatever the input."""
    return mask.flatten(1).any(dim=1)


def apply_masks(model: nn.Module, masks: Mapping[str, Tensor]) -> nn.Module:
    """Apply keep-masks through :func:`torch.nn.utils.prune.custom_from_mask`.

    Each named layer gets ``weight_orig`` (the parameter) and ``weight_mask`` (a buffer),
    and its effective weight becomes ``weight_orig * weight_mask``; gradients flow only to
    kept entries. Masks applied to an already masked layer combine with the old mask
    (a weight stays pruned once pruned). Layers not named in ``masks`` are left alone.
    Returns the model (modified in place).
    """
    check_against_model(masks, model, "mask")
    modules = prunable_modules(model)
    for name, mask in masks.items():
        if mask.dtype != torch.bool and not ((mask == 0) | (mask == 1)).all():
            raise ValueError(f"mask for {name!r} must be boolean or 0/1")
        module = modules[name]
        torch_prune.custom_from_mask(module, "weight", mask.to(module.weight.device).bool())
    return model


def remove_masks(model: nn.Module) -> nn.Module:
    """Make pruning permanent: fold every mask into its weight and drop the reparametrisation.

    Afterwards ``weight`` is a plain parameter again with zeros where the mask was ``False``.
    Returns the model (modified in place).
    """
    for module in prunable_modules(model).values():
        if torch_prune.is_pruned(module) and hasattr(module, "weight_mask"):
            torch_prune.remove(module, "weight")
    return model


def prune(
    model: nn.Module,
    scores: Mapping[str, Tensor],
    sparsity: float | Mapping[str, float],
    scope: str = "global",
) -> dict[str, Tensor]:
    """Score-based pruning in one call: ``masks_from_scores`` then ``apply_masks``.

    Returns the masks applied.
    """
    masks = masks_from_scores(scores, sparsity, scope, model=model)
    apply_masks(model, masks)
    return masks


def example_input(model: nn.Module, batch_size: int = 1) -> Tensor:
    """A zero batch shaped like the model's input, from the model's ``input_shape``."""
    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError(
            f"{type(model).__name__} has no input_shape attribute; pass an example input"
        )
    param = next(model.parameters())
    return torch.zeros((batch_size, *shape), device=param.device, dtype=param.dtype)


@dataclass
class LayerStats:
    """Size and cost of one prunable layer (FLOPs for one input example)."""

    name: str
    weights: int
    nonzeros: int
    flops: int | None = None

    @property
    def density(self) -> float:
        """Fraction of weights that are nonzero."""
        return self.nonzeros / self.weights if self.weights else 0.0

    @property
    def nonzero_flops(self) -> int | None:
        """FLOPs a sparse kernel would need: ``flops * density``."""
        return None if self.flops is None else int(round(self.flops * self.density))


@dataclass
class SparsityReport:
    """Per-layer and total weights, nonzeros, density, FLOPs and nonzero FLOPs."""

    layers: list[LayerStats]

    @property
    def total(self) -> LayerStats:
        """All prunable layers together."""
        flops = [r.flops for r in self.layers]
        return LayerStats(
            "total",
            sum(r.weights for r in self.layers),
            sum(r.nonzeros for r in self.layers),
            None if None in flops else sum(flops),
        )

    @property
    def density(self) -> float:
        """Fraction of all prunable weights that are nonzero."""
        return self.total.density

    @property
    def sparsity(self) -> float:
        """Fraction of all prunable weights that are zero."""
        return 1.0 - self.total.density

    def rows(self) -> list[list[str]]:
        """The report as rows of strings, header first, total last."""
        head = ["layer", "weights", "nonzeros", "density", "FLOPs", "nonzero FLOPs"]

        def fmt(x: int | None) -> str:
            return "-" if x is None else f"{x:,}"

        body = [
            [r.name, fmt(r.weights), fmt(r.nonzeros), f"{r.density:.2%}"]
            + [fmt(r.flops), fmt(r.nonzero_flops)]
            for r in [*self.layers, self.total]
        ]
        return [head, *body]

    def __str__(self) -> str:
        rows = self.rows()
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
            for r in rows
        ]
        lines.insert(1, "-" * len(lines[0]))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head, *body = self.rows()
        th = "".join(f"<th>{h}</th>" for h in head)
        trs = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in body)
        return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def flop_counter(model: nn.Module, example: Tensor | None = None) -> FlopCounterMode:
    """Run one forward pass of ``model`` (in eval mode, without gradients) on ``example`` (default:
    one zero example from ``model.input_shape``) under
    :class:`torch.utils.flop_counter.FlopCounterMode` and return the counter (a multiply-add
    counts as 2 FLOPs; batch norm, activations and bias additions are not counted). The
    model's train/eval mode is restored afterwards."""
    x = example_input(model) if example is None else example
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter


def layer_flops(model: nn.Module, example: Tensor | None = None) -> dict[str, int]:
    """FLOPs of each prunable layer for the input ``example`` (default: one example from
    ``model.input_shape``), counted by :func:`flop_counter`."""
    counts = flop_counter(model, example).get_flop_counts()
    root = type(model).__name__
    out = {}
    for name in prunable_modules(model):
        module_path = name.removesuffix(".weight").removesuffix("weight")
        key = f"{root}.{module_path}" if module_path else root
        out[name] = int(sum(counts.get(key, {}).values()))
    return out


def sparsity_report(model: nn.Module, example: Tensor | None = None) -> SparsityReport:
    """Per layer and in total: weights, nonzeros, density, FLOPs and nonzero FLOPs.

    FLOPs are for one input example: ``example`` if given, else a zero example built from
    ``model.input_shape``; they are omitted when neither is available. Nonzero FLOPs are
    ``FLOPs * density``, what a kernel that skipped zero weights would need.
    """
    weights = prunable(model)
    try:
        flops = layer_flops(model, example)
    except ValueError:
        flops = {}
    return SparsityReport(
        [
            LayerStats(name, w.numel(), int(torch.count_nonzero(w)), flops.get(name))
            for name, w in weights.items()
        ]
    )
