"""Every pruning method of the book, in one table, behind one interface.

Each entry of :data:`METHODS` is a :class:`Method`: an id, the label the chapters print, the
chapter that derives it, what data it needs, and how to build its pruner. A pruner is the
interface of :class:`minipruner.core.masks.Pruner`,

    pruner(model, sparsity, batch) -> masks        (True = keep)

which prunes ``model`` in place (and may update the kept weights or mask whole units).
Options that belong to a method (GraSP's temperature, the Fisher's damping, CBS's search
parameters) are fixed when the pruner is built, so every pruner is called the same way and
methods are compared on identical footing::

    import minipruner as mp
    from minipruner.methods import make_pruner

    grasp = make_pruner("grasp", temperature=200.0)
    masks = grasp(model, 0.9, (x, y))

Score-based entries are a scorer (``(model, batch) -> scores``, higher = keep) followed by
:func:`minipruner.core.masks.masks_from_scores`; their scorer is :attr:`Method.scorer`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn
from torch.utils.data import Dataset, TensorDataset

from ..core.masks import Batch, Masks, Pruner, Scorer, Scores, Sparsity, apply_masks, prune
from . import obs
from .channels import add_gates
from .init_pruning import (
    grasp_abs_scores,
    grasp_opposite_scores,
    grasp_scores,
    random_scores,
    snip_scores,
)
from .layerwise import (
    LayerRule,
    layerwise_prune,
    magnitude_rule,
    obc_rule,
    sparsegpt_rule,
    wanda_rule,
)
from .lookahead import (
    activation_rates,
    lookahead_prune,
    lookahead_scores,
    normalized_lookahead_scores,
)
from .magnitude import magnitude_scores
from .structured import channel_weight_masks, fisher_saliency, l1_saliency, neuron_masks

NEEDS = ("weights", "inputs", "labelled batch")
"""What a method looks at besides the model: nothing but the weights, inputs only (LAP-act's
activation rates), or a labelled batch (gradients, Hessian products, Fisher)."""


@dataclass(frozen=True)
class Method:
    """One pruning method: ``id`` (what code passes), ``label`` (what pages print),
    ``chapter`` (where it is derived), ``needs`` (one of :data:`NEEDS`), ``scope``
    (``"global"``, ``"layer"`` or ``"units"``: one threshold over all weights, one per layer,
    or whole neurons/channels), and ``build(**options) -> Pruner``. ``scorer``, for
    score-based methods, is ``(model, batch, **options) -> Scores``; ``options`` names the
    options ``build`` takes; ``steps``, for chapter 4's methods, is (selection, update) as
    :func:`minipruner.methods.obs.select` and :func:`minipruner.methods.obs.update` name them;
    ``colour`` is the matplotlib colour every figure draws the method in (methods a figure
    shows together have different colours; a new method takes a new one and recolours
    nothing)."""

    id: str
    label: str
    chapter: int
    needs: str
    scope: str
    build: Callable[..., Pruner]
    scorer: Callable[..., Scores] | None = None
    options: tuple[str, ...] = ()
    steps: tuple[str, str | None] | None = None
    colour: str = ""

    def __post_init__(self) -> None:
        if not self.colour:
            raise ValueError(f"method {self.id!r} needs a colour (a matplotlib colour string)")

    @property
    def obs_steps(self) -> tuple[str, str | None]:
        """For chapter 4's methods on one flat weight vector: (selection, update) as
        :func:`minipruner.methods.obs.select` and :func:`minipruner.methods.obs.update` name
        them."""
        if self.steps is None:
            raise ValueError(f"{self.id} is not a selection-and-update method of chapter 4")
        return self.steps

    def pruner(self, **options: Any) -> Pruner:
        """The method's pruner with ``options`` fixed (see :attr:`options` for their names)."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            valid = ", ".join(self.options) or "none"
            raise ValueError(f"{self.id} takes no option {unknown}; its options: {valid}")
        return self.build(**options)


def _needs_batch(method: str, batch: Batch | None) -> tuple[Tensor, Tensor]:
    if batch is None or batch[1] is None:
        got = "None" if batch is None else "inputs without labels"
        raise ValueError(f"{method} needs a labelled batch (x, y); got {got}")
    return batch[0], batch[1]


def _scored(method: str, scorer: Callable[..., Scores], scope: str) -> Callable[..., Pruner]:
    """Build a pruner that scores once and keeps the highest scores (``scope``)."""

    def build(**options: Any) -> Pruner:
        def pruner(model: nn.Module, sparsity: Sparsity, batch: Batch | None) -> Masks:
            return prune(model, scorer(model, batch, **options), sparsity, scope)

        pruner.__name__ = pruner.__qualname__ = method
        return pruner

    return build


def _magnitude(model: nn.Module, batch: Batch | None, normalize: bool = False) -> Scores:
    return magnitude_scores(model, normalize=normalize)


def _normalised_magnitude(model: nn.Module, batch: Batch | None) -> Scores:
    return magnitude_scores(model, normalize=True)


def _random(model: nn.Module, batch: Batch | None, seed: int = 0) -> Scores:
    return random_scores(model, seed)


def _lap(order: str = "oneshot", scope: str = "layer", act: bool = False) -> Callable[..., Pruner]:
    """Lookahead pruning (:func:`minipruner.methods.lookahead.lookahead_prune`) in ``order`` and
    ``scope``; with ``act``, LAP-act on the activation rates of the batch's inputs."""

    def build() -> Pruner:
        def pruner(model: nn.Module, sparsity: Sparsity, batch: Batch | None) -> Masks:
            rates = _rates(model, batch) if act else None
            return lookahead_prune(model, sparsity, order, activation_rates=rates, scope=scope)

        return pruner

    return build


def _lap_scores(model: nn.Module, batch: Batch | None) -> Scores:
    return lookahead_scores(model)


def _rates(model: nn.Module, batch: Batch | None) -> dict[str, Tensor]:
    """LAP-act's activation rates on the batch's inputs (its labels are not needed)."""
    if batch is None:
        raise ValueError("LAP-act needs inputs to measure activation rates; got None")
    return activation_rates(model, batch[0])


def _lap_act(model: nn.Module, batch: Batch | None) -> Scores:
    return lookahead_scores(model, activation_rates=_rates(model, batch))


def _lap_global(model: nn.Module, batch: Batch | None) -> Scores:
    return normalized_lookahead_scores(model)


def _snip(model: nn.Module, batch: Batch | None) -> Scores:
    x, y = _needs_batch("SNIP", batch)
    return snip_scores(model, x, y)


def _grasp(model: nn.Module, batch: Batch | None, temperature: float = 200.0) -> Scores:
    x, y = _needs_batch("GraSP", batch)
    return grasp_scores(model, x, y, temperature)


def _grasp_opposite(model: nn.Module, batch: Batch | None, temperature: float = 200.0) -> Scores:
    x, y = _needs_batch("GraSP, opposite sign", batch)
    return grasp_opposite_scores(model, x, y, temperature)


def _grasp_abs(model: nn.Module, batch: Batch | None, temperature: float = 200.0) -> Scores:
    x, y = _needs_batch("|theta Hg|", batch)
    return grasp_abs_scores(model, x, y, temperature)


def _second_order(method: str, steps: tuple[str, str | None]) -> Callable[..., Pruner]:
    """Chapter 4's method ``method``: the (selection, update) ``steps`` of its entry
    (:func:`minipruner.methods.obs.oneshot_prune`) on per-example gradients of the batch.
    Options: ``damp``, ``relative``; for CBS also ``select_data`` (the data whose loss picks
    the search's iterate, e.g. the training set), ``seed`` and the search's parameters
    (``n_starts``, ``rho``, ...). CBS's start is picked by the loss on the batch."""

    def build(
        damp: float = 1e-3,
        relative: bool = False,
        select_data: Dataset | None = None,
        **search: Any,
    ) -> Pruner:
        def pruner(model: nn.Module, sparsity: Sparsity, batch: Batch | None) -> Masks:
            if not isinstance(sparsity, (int, float)):
                raise ValueError(f"{method} prunes with one global sparsity, not per layer")
            x, y = _needs_batch(method, batch)
            grads = obs.per_sample_grads(model, x, y)
            extra: dict[str, Any] = dict(search)
            if steps[0] == "cbs":
                w = obs.flatten_weights(obs.prunable(model)).detach().double()
                extra["loss_fn"] = obs.masked_loss(model, w, TensorDataset(x, y))
                if select_data is not None:
                    extra["select_loss_fn"] = obs.masked_loss(model, w, select_data)
            return obs.oneshot_prune(
                model, steps, sparsity, grads, damp, relative=relative, **extra
            )

        pruner.__name__ = pruner.__qualname__ = method
        return pruner

    return build


def _second_order_method(
    method: str, label: str, steps: tuple[str, str | None], options: tuple[str, ...], colour: str
) -> Method:
    """Chapter 4's entry ``method``: a labelled-batch, global pruner of the (selection, update)
    ``steps`` (:func:`_second_order`), which the entry also records as its ``steps``."""
    build = _second_order(method, steps)
    return Method(method, label, 4, "labelled batch", "global", build, None, options, steps, colour)


def _neurons(**options: Any) -> Pruner:
    def pruner(model: nn.Module, sparsity: Sparsity, batch: Batch | None) -> Masks:
        masks = neuron_masks(model, float(sparsity))  # type: ignore[arg-type]
        apply_masks(model, masks)
        return masks

    return pruner


def _channels(saliency: str) -> Callable[..., Pruner]:
    """Channel pruning in one shot (:func:`minipruner.methods.structured.channel_weight_masks`) by
    L1 or Fisher saliency. Chapter 5 runs the same saliencies iteratively, one channel at a time
    between fine-tuning steps (:func:`minipruner.methods.structured.prune_and_finetune`)."""

    def build(**options: Any) -> Pruner:
        def pruner(model: nn.Module, sparsity: Sparsity, batch: Batch | None) -> Masks:
            if saliency == "l1":
                scores = l1_saliency(model)
            else:
                x, y = _needs_batch("Fisher channel pruning", batch)
                scores = fisher_saliency(add_gates(copy.deepcopy(model)), x, y)
            masks = channel_weight_masks(model, float(sparsity), scores)  # type: ignore[arg-type]
            apply_masks(model, masks)
            return masks

        return pruner

    return build


def _layerwise(rule: Callable[..., LayerRule]) -> Callable[..., Pruner]:
    """Chapter 7's layer-wise methods (:func:`minipruner.methods.layerwise.layerwise_prune` with
    the :class:`~minipruner.methods.layerwise.LayerRule` that ``rule(**options)`` builds): every
    Linear layer pruned to ``sparsity`` (one fraction for every layer, or per layer), block by
    block, calibrated on the batch's inputs (its labels are not used). ``blocks`` (the
    calibration order) and ``chunk`` go to ``layerwise_prune``; every other option (``pattern``,
    ``"unstructured"`` or ``"N:M"`` such as ``"2:4"``, whose sparsity must be ``1 - N/M``;
    ``groups``; ``damp``; ``blocksize``) to ``rule``, which checks them when the pruner is
    built. SparseGPT and OBC overwrite the pruned layers' weights with their reconstruction."""

    def build(
        blocks: str | int | Sequence[Sequence[str]] = "layer",
        chunk: int | None = None,
        **options: Any,
    ) -> Pruner:
        layer_rule = rule(**options)

        def pruner(model: nn.Module, sparsity: Sparsity, batch: Batch | None) -> Masks:
            if batch is None and layer_rule.needs != "weights":
                raise ValueError(
                    f"{layer_rule.name} needs calibration inputs: a batch (x, y) or (x, None); "
                    "got None"
                )
            x = None if batch is None else batch[0]
            return layerwise_prune(model, layer_rule, sparsity, x, blocks=blocks, chunk=chunk)

        pruner.__name__ = pruner.__qualname__ = layer_rule.name
        return pruner

    return build


_SECOND = ("damp", "relative")
_SEARCH = (*_SECOND, "select_data", "seed", "n_starts", "rho", "tau", "epsilon", "patience")
_SEARCH += ("max_iter", "n_chunks")
_CALIBRATED = ("pattern", "blocks", "chunk")

_ENTRIES = [
    # chapter 1: magnitude pruning
    Method(
        "magnitude-layer",
        "magnitude (layer)",
        1,
        "weights",
        "layer",
        _scored("magnitude-layer", _magnitude, "layer"),
        _magnitude,
        colour="tab:orange",
    ),
    # global magnitude is also chapter 4's first method: its selection, no update
    Method(
        "magnitude-global",
        "magnitude (global)",
        1,
        "weights",
        "global",
        _scored("magnitude-global", _magnitude, "global"),
        _magnitude,
        steps=("magnitude", None),
        colour="tab:blue",
    ),
    Method(
        "magnitude-global-normalised",
        "magnitude (global, normalised)",
        1,
        "weights",
        "global",
        _scored("magnitude-global-normalised", _normalised_magnitude, "global"),
        _normalised_magnitude,
        colour="navy",
    ),
    # chapter 2: lookahead pruning
    Method("lap", "LAP", 2, "weights", "layer", _lap(), _lap_scores, colour="tab:brown"),
    Method("lap-forward", "LFP", 2, "weights", "layer", _lap("forward"), colour="deepskyblue"),
    Method("lap-backward", "LBP", 2, "weights", "layer", _lap("backward"), colour="limegreen"),
    Method(
        "lap-act", "LAP-act", 2, "inputs", "layer", _lap(act=True), _lap_act, colour="tab:purple"
    ),
    # global LAP normalised as the LAP paper's code does (lap_global_normalize): each
    # layer's squared lookahead scores divided by their L2 norm, i.e. ranked by L / ||L||_4
    Method(
        "lap-global",
        "LAP (global, normalised)",
        2,
        "weights",
        "global",
        _lap(scope="global"),
        _lap_global,
        colour="tab:cyan",
    ),
    # chapter 3: pruning at initialisation
    Method(
        "random",
        "random",
        3,
        "weights",
        "global",
        _scored("random", _random, "global"),
        _random,
        ("seed",),
        colour="tab:gray",
    ),
    Method(
        "snip",
        "SNIP",
        3,
        "labelled batch",
        "global",
        _scored("snip", _snip, "global"),
        _snip,
        colour="tab:olive",
    ),
    Method(
        "grasp",
        "GraSP",
        3,
        "labelled batch",
        "global",
        _scored("grasp", _grasp, "global"),
        _grasp,
        ("temperature",),
        colour="tab:green",
    ),
    # GraSP's sign variants, which chapter 3 measures beside GraSP: keep -theta*Hg, |theta*Hg|
    Method(
        "grasp-opposite",
        "GraSP, opposite sign",
        3,
        "labelled batch",
        "global",
        _scored("grasp-opposite", _grasp_opposite, "global"),
        _grasp_opposite,
        ("temperature",),
        colour="peru",
    ),
    Method(
        "grasp-abs",
        "|theta Hg|",
        3,
        "labelled batch",
        "global",
        _scored("grasp-abs", _grasp_abs, "global"),
        _grasp_abs,
        ("temperature",),
        colour="orchid",
    ),
    # chapter 4: second order, each a (selection, update) of minipruner.methods.obs
    _second_order_method("mp+u", "MP+U", ("magnitude", "set"), _SECOND, "gold"),
    _second_order_method("wf-s", "WF-S", ("woodfisher", None), _SECOND, "plum"),
    _second_order_method("wf", "WoodFisher", ("woodfisher", "single"), _SECOND, "tab:pink"),
    _second_order_method("cbs-s", "CBS-S", ("cbs", None), _SEARCH, "salmon"),
    _second_order_method("cbs", "CBS", ("cbs", "set"), _SEARCH, "tab:red"),
    # chapter 5: structured pruning
    Method(
        "channels-l1", "channels (L1)", 5, "weights", "units", _channels("l1"), colour="yellowgreen"
    ),
    Method(
        "channels-fisher",
        "channels (Fisher)",
        5,
        "labelled batch",
        "units",
        _channels("fisher"),
        colour="teal",
    ),
    Method("neurons-l1", "neurons (L1)", 5, "weights", "units", _neurons, colour="mediumorchid"),
    # chapter 7: layer-wise reconstruction
    # magnitude-layer with N:M patterns and per-row groups (default groups: "layer")
    Method(
        "magnitude-pattern",
        "magnitude (layer, pattern)",
        7,
        "weights",
        "layer",
        _layerwise(magnitude_rule),
        options=("pattern", "groups"),
        colour="steelblue",
    ),
    Method(
        "wanda",
        "Wanda",
        7,
        "inputs",
        "layer",
        _layerwise(wanda_rule),
        options=(*_CALIBRATED, "groups"),
        colour="darkgoldenrod",
    ),
    Method(
        "sparsegpt",
        "SparseGPT",
        7,
        "inputs",
        "layer",
        _layerwise(sparsegpt_rule),
        options=(*_CALIBRATED, "damp", "blocksize"),
        colour="darkviolet",
    ),
    # exact OBS per row: O(k in^2) per row, for small layers
    Method(
        "obc",
        "OBC (exact, per row)",
        7,
        "inputs",
        "layer",
        _layerwise(obc_rule),
        options=(*_CALIBRATED, "damp"),
        colour="black",
    ),
]
"""Every method of the book, in chapter order: adding one is one entry here (and its function in
its method module)."""


def _entries(entries: list[Method] | None = None) -> list[Method]:
    """The table's entries (``entries``, by default :data:`_ENTRIES`), checked: ids and labels
    unique (a ValueError names the repeated ones)."""
    entries = _ENTRIES if entries is None else entries
    for field in ("id", "label"):
        values = [getattr(m, field) for m in entries]
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f"method {field}s must be unique; repeated: {repeated}")
    return list(entries)


METHODS: dict[str, Method] = {m.id: m for m in _entries()}
"""Every method of the book by id, in chapter order."""


def get_method(method: str) -> Method:
    """The :class:`Method` with id ``method`` (a clear error listing the ids otherwise)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid ids: {', '.join(METHODS)}")
    return METHODS[method]


def make_pruner(method: str, **options: Any) -> Pruner:
    """The pruner ``(model, sparsity, batch) -> masks`` of method ``method`` with
    ``options`` fixed; see :data:`METHODS` for the ids."""
    return get_method(method).pruner(**options)


__all__ = [
    "METHODS",
    "NEEDS",
    "Method",
    "Pruner",
    "Scorer",
    "get_method",
    "make_pruner",
]
