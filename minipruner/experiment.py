"""The experiment every chapter repeats: prune a trained network once at each sparsity,
evaluate, retrain with the mask in place, evaluate again.

A *pruner* is any function ``pruner(model, sparsity) -> masks`` that applies its masks to
``model`` (for example ``lambda m, s: magnitude_prune(m, s, "global")``), so methods that
score once and methods that prune layer by layer run under one protocol.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import Tensor, nn
from torch.utils.data import Dataset
from tqdm import tqdm

from .masks import sparsity_report
from .measure import measure_cost  # noqa: F401  (importable from here, as before)
from .train import evaluate, train

Pruner = Callable[[nn.Module, float], Mapping[str, Tensor]]


def prune_retrain_sweep(
    model: nn.Module,
    pruners: Mapping[str, Pruner],
    sparsities: Sequence[float],
    test_data: Dataset,
    train_data: Dataset | None = None,
    retrain: Mapping[str, Any] | None = None,
    seed: int = 0,
    quiet: bool = False,
) -> list[dict[str, Any]]:
    """Prune a copy of ``model`` with every pruner at every sparsity and measure it.

    Each configuration starts from the same trained ``model`` (one-shot pruning, not
    iterative). Returns one record per (method, sparsity) with the test accuracy and loss
    right after pruning (``acc_pruned``, ``loss_pruned``), the achieved sparsity, the
    per-layer density, and, when ``retrain`` (keyword arguments of :func:`train`) is given,
    the test accuracy and loss after retraining on ``train_data`` with the mask in place
    (``acc_retrained``, ``loss_retrained``).
    """
    if retrain is not None and train_data is None:
        raise ValueError("retraining needs train_data")
    dense = evaluate(model, test_data)
    records = []
    jobs = [(name, s) for name in pruners for s in sparsities]
    for name, sparsity in tqdm(jobs, desc="prune", disable=quiet, leave=False):
        net = copy.deepcopy(model)
        pruners[name](net, sparsity)
        report = sparsity_report(net)
        after = evaluate(net, test_data)
        record = {
            "method": name,
            "sparsity": sparsity,
            "seed": seed,
            "achieved_sparsity": report.sparsity,
            "density": {r.name: r.density for r in report.layers},
            "acc_dense": dense.accuracy,
            "acc_pruned": after.accuracy,
            "loss_pruned": after.loss,
        }
        if retrain is not None:
            train(net, train_data, seed=seed, quiet=True, **dict(retrain))
            again = evaluate(net, test_data)
            record |= {"acc_retrained": again.accuracy, "loss_retrained": again.loss}
        records.append(record)
    return records
