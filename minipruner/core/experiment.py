"""The experiment every chapter repeats: prune a trained network once, evaluate, retrain with
the mask in place, evaluate again.

The method is a *pruner* of the one interface (:class:`minipruner.core.masks.Pruner`,
``pruner(model, sparsity, batch) -> masks``; :mod:`minipruner.methods` holds one for every
method of the book), so methods that score once, methods that prune layer by layer, methods
that update weights and methods that remove whole units run under one protocol.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from .masks import Batch, Masks, Pruner, Sparsity, sparsity_report
from .measure import measure_cost as _measure_cost
from .train import evaluate, train

measure_cost = _measure_cost  # importable from here, as before


@dataclass
class Pruned:
    """What :func:`prune_and_measure` returns: the pruned (and, if asked, retrained) copy of
    the model, the masks the pruner returned, and the measurements as a JSON-ready dict."""

    model: nn.Module
    masks: Masks
    record: dict[str, Any]


def prune_and_measure(
    model: nn.Module,
    pruner: Pruner,
    sparsity: Sparsity,
    test: Dataset,
    train_data: Dataset | None = None,
    retrain: Mapping[str, Any] | None = None,
    *,
    batch: Batch | None = None,
    seed: int = 0,
    measure_cost: bool = False,
) -> Pruned:
    """Prune a copy of ``model`` once with ``pruner`` at ``sparsity`` and measure it.

    ``model`` itself is left as it is (one-shot pruning from the same trained network, however
    often this is called). ``record`` holds the test accuracy and loss of the dense network
    (``acc_dense``) and right after pruning (``acc_pruned``, ``loss_pruned``), the achieved
    sparsity (pruned weights / prunable weights) and each layer's density; when ``retrain``
    (keyword arguments of :func:`minipruner.core.train.train`) is given, the test accuracy and
    loss after retraining on ``train_data`` with the mask in place and ``seed``
    (``acc_retrained``, ``loss_retrained``); with ``measure_cost``, the wall time and the
    peak memory of the pruning call alone (``prune_seconds``, ``prune_peak_mb``,
    ``memory_measured``; see :func:`minipruner.core.measure.measure_cost`). ``batch`` is what
    the pruner may look at (:data:`minipruner.methods.NEEDS`).

    Example (``net`` a trained network, ``test`` its test set)::

        from minipruner.methods import make_pruner
        out = prune_and_measure(net, make_pruner("magnitude-global"), 0.9, test)
        out.record["acc_pruned"], out.record["achieved_sparsity"]
    """
    if retrain is not None and train_data is None:
        raise ValueError("retraining needs train_data")
    dense = evaluate(model, test)
    net = copy.deepcopy(model)
    if measure_cost:
        masks, cost = _measure_cost(lambda: pruner(net, sparsity, batch), _device(net))
    else:
        masks = pruner(net, sparsity, batch)
    report = sparsity_report(net)
    after = evaluate(net, test)
    record: dict[str, Any] = {
        "achieved_sparsity": report.sparsity,
        "density": {r.name: r.density for r in report.layers},
        "acc_dense": dense.accuracy,
        "acc_pruned": after.accuracy,
        "loss_pruned": after.loss,
    }
    if measure_cost:
        record |= {
            "prune_seconds": cost["seconds"],
            "prune_peak_mb": cost["peak_mb"],
            "memory_measured": cost["memory"],
        }
    if retrain is not None:
        train(net, train_data, seed=seed, quiet=True, **dict(retrain))
        again = evaluate(net, test)
        record |= {"acc_retrained": again.accuracy, "loss_retrained": again.loss}
    return Pruned(net, masks, record)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
