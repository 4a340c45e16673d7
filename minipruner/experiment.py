"""The experiment every chapter repeats: prune a trained network once at each sparsity,
evaluate, retrain with the mask in place, evaluate again.

A *pruner* is any function ``pruner(model, sparsity) -> masks`` that applies its masks to
``model`` (for example ``lambda m, s: magnitude_prune(m, s, "global")``), so methods that
score once and methods that prune layer by layer run under one protocol.
"""

from __future__ import annotations

import copy
import gc
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset
from tqdm import tqdm

from .masks import sparsity_report
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


# ------------------------------------------------------------------ cost of a computation


def _rss_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    # Linux >= 4.0: writing 5 to clear_refs resets the peak resident set size (VmHWM).
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure_cost(
    fn: Callable[[], Any], device: torch.device | str | None = None
) -> tuple[Any, dict[str, Any]]:
    """Run ``fn()`` once and measure its wall time and the peak memory it added.

    Returns ``(fn(), cost)`` with ``cost = {"seconds", "peak_mb", "memory"}``:

    - ``seconds``: wall-clock time (``time.perf_counter``; CUDA is synchronised first and
      last, so queued kernels count);
    - ``peak_mb``: on CUDA, ``max_memory_allocated - memory_allocated`` before the call
      (``torch.cuda.reset_peak_memory_stats``); on the CPU under Linux, the peak resident
      set size during the call minus the resident size before it (the kernel's high-water
      mark ``VmHWM``, reset through ``/proc/self/clear_refs``), so every byte the call
      touched counts, not only torch's; ``None`` where neither is available;
    - ``memory``: which of the two was measured (``"cuda allocated"``, ``"process rss"``
      or ``"unavailable"``).

    Memory already held before the call (the model, the data) is not counted.
    """
    device = torch.device(device) if device is not None else None
    cuda = device is not None and device.type == "cuda"
    gc.collect()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        rss = _rss_kib("VmRSS")
        base = rss if rss is not None and _reset_peak_rss() else None
    start = time.perf_counter()
    result = fn()
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    if cuda:
        peak, kind = (torch.cuda.max_memory_allocated(device) - base) / 2**20, "cuda allocated"
    elif base is not None and (hwm := _rss_kib("VmHWM")) is not None:
        peak, kind = (hwm - base) / 1024, "process rss"
    else:
        peak, kind = None, "unavailable"
    return result, {"seconds": seconds, "peak_mb": peak, "memory": kind}
