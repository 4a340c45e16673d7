"""Training and evaluation: seeding, device choice, progress bars, a load-or-train cache.

``train`` minimises the cross-entropy ``L(w) = (1/N) sum_n -log softmax(f(x_n; w))_{y_n}``
by mini-batch SGD or Adam. A model carrying masks (see :mod:`minipruner.core.masks`) trains
with its pruned weights held at zero, because ``torch.nn.utils.prune`` recomputes
``weight = weight_orig * weight_mask`` before every forward pass.

``trained`` wraps model construction and training in a cache keyed by the full
configuration, so chapters that need the same trained network share it.
"""

from __future__ import annotations

import inspect
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm import tqdm

from .store import (  # noqa: F401  (importable from here, as before the split)
    CACHE_VERSION,
    cache_dir,
    config_key,
    load_or_compute,
    write_atomic,
)

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "onecycle", "multistep", "cosine")
#: Where training batches are made: "loader" (:func:`batches`, CPU transforms) or "device"
#: (:class:`minipruner.core.device_data.DeviceDataset`: the set on the device, augmented there).
PIPELINES = ("loader", "device")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's random number generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_device() -> torch.device:
    """``cuda`` when a GPU is available, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def batches(
    data: Dataset, batch_size: int, shuffle: bool = False, seed: int = 0, num_workers: int = 0
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(x, y)`` mini-batches; shuffled with a generator seeded by ``seed``.

    In-memory ``TensorDataset``s are sliced directly (much faster than a DataLoader on
    CPU); other datasets go through a ``DataLoader``.
    """
    generator = torch.Generator().manual_seed(seed)
    if isinstance(data, TensorDataset):
        x, y = data.tensors[0], data.tensors[1]
        n = len(x)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            yield x[idx], y[idx]
    else:
        loader = DataLoader(
            data, batch_size, shuffle=shuffle, generator=generator, num_workers=num_workers
        )
        yield from loader


def _scheduler(
    optimizer: torch.optim.Optimizer,
    schedule: str,
    total_steps: int,
    steps_per_epoch: int,
    milestones: tuple[int, ...],
    gamma: float,
) -> torch.optim.lr_scheduler.LRScheduler:
    if schedule == "onecycle":
        lr = optimizer.param_groups[0]["lr"]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=total_steps)
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total_steps)

    def factor(step: int) -> float:
        if schedule == "multistep":
            epoch = step // steps_per_epoch
            return gamma ** sum(epoch >= m for m in milestones)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train(
    model: nn.Module,
    data: Dataset,
    *,
    epochs: float = 1,
    lr: float = 0.1,
    batch_size: int = 128,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    schedule: str = "constant",
    milestones: tuple[int, ...] = (),
    gamma: float = 0.1,
    iterations: int | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    quiet: bool = False,
    desc: str = "train",
    pipeline: str = "loader",
) -> list[float]:
    """Train ``model`` in place on ``data`` with cross-entropy; return the mean loss per epoch.

    Runs ``iterations`` optimiser steps if given, else ``ceil(epochs * batches per epoch)``.
    ``optimizer`` is ``"sgd"`` (with ``momentum``, ``nesterov``) or ``"adam"``;
    ``schedule`` is ``"constant"``, ``"onecycle"`` (peak ``lr``), ``"cosine"`` or
    ``"multistep"`` (``lr * gamma**j`` after the ``j``-th epoch milestone). Shuffling is
    seeded by ``seed`` (epoch ``e`` uses ``seed + e``). A tqdm bar shows progress unless
    ``quiet``.

    ``pipeline="loader"`` draws batches with :func:`batches` (CPU transforms);
    ``"device"`` copies ``data`` to ``device`` once and draws each epoch with
    :meth:`~minipruner.core.device_data.DeviceDataset.epoch_batches` from a CPU generator seeded
    ``seed + e``, cropping and flipping there when ``data``'s own transform augments. The
    two pipelines draw different (equally distributed) shuffles and augmentations.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
    if len(data) == 0:
        raise ValueError("cannot train on an empty dataset")
    device = torch.device(device) if device is not None else default_device()
    batches_of = epoch_batches(data, batch_size, seed, device, pipeline)
    model.to(device).train()
    steps_per_epoch = math.ceil(len(data) / batch_size)
    total = iterations if iterations is not None else math.ceil(epochs * steps_per_epoch)
    if total <= 0:
        raise ValueError("nothing to train: epochs or iterations must be positive")

    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            params, lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
        )
    else:
        opt = torch.optim.Adam(params, lr, weight_decay=weight_decay)
    sched = _scheduler(opt, schedule, total, steps_per_epoch, tuple(milestones), gamma)
    loss_fn = nn.CrossEntropyLoss()

    history: list[float] = []
    step, epoch = 0, 0
    with tqdm(total=total, desc=desc, disable=quiet, leave=False) as bar:
        while step < total:
            # the epoch's loss is summed on the device in float64 (the same operations as a
            # Python float, so the same history) and read once per epoch, not once per step:
            # a read waits for the device, and the next step could not be queued meanwhile
            running, count = torch.zeros((), dtype=torch.float64, device=device), 0
            for x, y in batches_of(epoch):
                x, y = x.to(device), y.to(device)
                loss = loss_fn(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                running += loss.detach().double() * len(y)
                count += len(y)
                step += 1
                bar.update()
                if not quiet and step % 20 == 0:
                    bar.set_postfix(loss=f"{running.item() / count:.3f}")
                if step >= total:
                    break
            history.append(running.item() / count)
            epoch += 1
    model.eval()
    return history


def _check_pipeline(pipeline: str) -> None:
    if pipeline not in PIPELINES:
        raise ValueError(f"unknown pipeline {pipeline!r}; valid: {', '.join(PIPELINES)}")


def epoch_batches(
    data: Dataset, batch_size: int, seed: int, device: torch.device, pipeline: str = "loader"
) -> Callable[[int], Iterator[tuple[Tensor, Tensor]]]:
    """The shuffled training batches of epoch ``e``, as a function of ``e``, seeded by
    ``seed + e``: ``pipeline="loader"`` draws them with :func:`batches` (CPU transforms,
    moved to the device by the caller), ``"device"`` from ``data`` copied once to ``device``
    (:func:`~minipruner.core.device_data.on_device`), augmented there in batch."""
    _check_pipeline(pipeline)
    if pipeline == "loader":
        return lambda e: batches(data, batch_size, shuffle=True, seed=seed + e)
    from .device_data import on_device

    source = on_device(data, device)
    return lambda e: source.epoch_batches(
        batch_size, torch.Generator().manual_seed(seed + e), augment=source.augment
    )


@dataclass(frozen=True)
class Evaluation:
    """Mean cross-entropy loss and accuracy (fraction correct) on a dataset."""

    loss: float
    accuracy: float


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Dataset,
    batch_size: int = 1000,
    device: torch.device | str | None = None,
    pipeline: str = "loader",
) -> Evaluation:
    """Evaluate ``model`` on ``data``: mean cross-entropy and accuracy, in eval mode.

    ``pipeline="device"`` copies ``data`` to ``device`` first and reads it there in order,
    not augmented (:meth:`~minipruner.core.device_data.DeviceDataset.batches`)."""
    _check_pipeline(pipeline)
    if len(data) == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.to(device).eval()
    loss, correct, n = 0.0, 0, 0
    if pipeline == "device":
        from .device_data import on_device

        source: Iterator[tuple[Tensor, Tensor]] = on_device(data, device).batches(batch_size)
    else:
        source = batches(data, batch_size)
    for x, y in source:
        x, y = x.to(device), y.to(device)
        out = model(x)
        loss += nn.functional.cross_entropy(out, y, reduction="sum").item()
        correct += (out.argmax(1) == y).sum().item()
        n += len(y)
    model.train(was_training)
    return Evaluation(loss / n, correct / n)


# The training arguments that define a trained network, with their defaults: part of
# every cache key (device, progress bar and its label do not change the result). The
# pipeline does change it, but enters the key only when it is not "loader", so that the
# networks trained before it existed keep their keys (see ``trained``).
TRAIN_DEFAULTS = {
    p.name: p.default
    for p in inspect.signature(train).parameters.values()
    if p.name not in {"model", "data", "device", "quiet", "desc", "pipeline"}
}


def trained(
    model: str,
    dataset: str,
    *,
    seed: int = 0,
    model_kwargs: dict[str, Any] | None = None,
    scale: str | None = None,
    cache: bool = True,
    quiet: bool = False,
    device: torch.device | str | None = None,
    pipeline: str = "loader",
    **train_kwargs: Any,
) -> nn.Module:
    """Build ``get_model(model, **model_kwargs)`` with ``seed``, train it on
    ``load_dataset(dataset, scale)`` with ``train(..., seed=seed, **train_kwargs)``, and
    return it in eval mode, on ``device``.

    The trained weights are cached under a key of the full configuration (model, its
    arguments, dataset, scale, seed and every training argument including defaults), so
    a second call with the same configuration loads instead of training. ``pipeline``
    (see :func:`train`) is part of that key when it is not ``"loader"``.
    """
    from .data import load_dataset
    from .models import get_model
    from .scale import get_scale

    unknown = set(train_kwargs) - set(TRAIN_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown training argument(s) {sorted(unknown)}")
    scale = get_scale(scale)
    model_kwargs = dict(model_kwargs or {})
    settings = {**TRAIN_DEFAULTS, **train_kwargs, "seed": seed}
    config = {
        "model": model,
        "model_kwargs": model_kwargs,
        "dataset": dataset,
        "scale": scale,
        "train": settings,
    }
    if pipeline != "loader":
        config["pipeline"] = pipeline

    def build() -> nn.Module:
        seed_everything(seed)
        return get_model(model, **model_kwargs)

    def fit() -> dict[str, Tensor]:
        net = build()
        train_data, _ = load_dataset(dataset, scale=scale)
        desc = f"{model} seed {seed}"
        train(net, train_data, device=device, quiet=quiet, desc=desc, pipeline=pipeline, **settings)
        return {k: v.detach().cpu() for k, v in net.state_dict().items()}

    state = load_or_compute("trained", config, fit) if cache else fit()
    net = build()
    net.load_state_dict(state)
    device = torch.device(device) if device is not None else default_device()
    return net.to(device).eval()
