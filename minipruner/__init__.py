"""minipruner: the small PyTorch package behind an executable textbook on pruning.

Every scorer returns ``{weight name: score}`` (higher = keep) and one function,
``masks_from_scores``, turns scores into keep-masks, so every method is compared on
identical footing; every method of the book is a pruner ``(model, sparsity, batch) -> masks``
in the table :mod:`minipruner.methods`, measured by :func:`prune_and_measure`::

    import minipruner as mp
    train, test = mp.load_dataset("mnist-5k")
    model = mp.trained("lenet300100", "mnist-5k", epochs=10)
    masks = mp.masks_from_scores(mp.magnitude_scores(model), sparsity=0.9)
    mp.apply_masks(model, masks)
    print(mp.sparsity_report(model))
"""

# First: sets OMP_WAIT_POLICY=PASSIVE (unless set) before torch loads; see minipruner.core.runtime.
from .core import runtime  # noqa: I001

from .book import calibration, claims
from .core import language
from .experiments import tables
from .methods import layerwise, obs, structured
from . import methods
from .core.data import DATASETS, DatasetNotFoundError, class_balanced_batch, load_dataset  # noqa: E402
from .core.experiment import Pruned, prune_and_measure  # noqa: E402
from .methods.init_pruning import (  # noqa: E402
    grasp_scores,
    layer_collapse,
    layer_densities,
    prune_at_init,
    random_scores,
    snip_scores,
)
from .methods.layerwise import layerwise_prune, nm_mask, sparsegpt_prune, wanda_scores  # noqa: E402
from .methods.lookahead import lookahead_prune, lookahead_scores  # noqa: E402
from .methods.magnitude import frobenius_distortion, magnitude_prune, magnitude_scores  # noqa: E402
from .core.masks import (  # noqa: E402
    Masks,
    Pruner,
    Scorer,
    Scores,
    SparsityReport,
    apply_masks,
    current_masks,
    masks_from_scores,
    normalize_scores,
    prunable,
    prunable_modules,
    prune,
    remove_masks,
    sparsity_report,
)
from .core.models import MODELS, get_model  # noqa: E402
from .experiments.records import Results  # noqa: E402
from .book.runner import reproduce  # noqa: E402
from .core.runtime import threads  # noqa: E402
from .core.scale import SCALES, by_scale, get_scale, seed_offset, shifted_seeds  # noqa: E402
from .core.train import (  # noqa: E402
    Evaluation,
    default_device,
    evaluate,
    load_or_compute,
    seed_everything,
    train,
    trained,
)

__version__ = "0.1.0"

__all__ = [
    "DATASETS",
    "MODELS",
    "SCALES",
    "DatasetNotFoundError",
    "Evaluation",
    "Masks",
    "Pruned",
    "Pruner",
    "Results",
    "Scorer",
    "Scores",
    "SparsityReport",
    "apply_masks",
    "by_scale",
    "calibration",
    "claims",
    "class_balanced_batch",
    "current_masks",
    "default_device",
    "evaluate",
    "frobenius_distortion",
    "get_model",
    "get_scale",
    "grasp_scores",
    "language",
    "layer_collapse",
    "layer_densities",
    "layerwise",
    "layerwise_prune",
    "load_dataset",
    "load_or_compute",
    "lookahead_prune",
    "lookahead_scores",
    "magnitude_prune",
    "magnitude_scores",
    "masks_from_scores",
    "methods",
    "nm_mask",
    "normalize_scores",
    "obs",
    "prunable",
    "prunable_modules",
    "prune",
    "prune_and_measure",
    "prune_at_init",
    "random_scores",
    "reproduce",
    "remove_masks",
    "runtime",
    "seed_everything",
    "seed_offset",
    "shifted_seeds",
    "snip_scores",
    "sparsegpt_prune",
    "structured",
    "tables",
    "sparsity_report",
    "threads",
    "train",
    "trained",
    "wanda_scores",
]
