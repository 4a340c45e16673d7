"""The protocol a chapter module follows, and the pieces of work every executor runs with it.

A chapter module (see :class:`Chapter`) declares its settings, its configurations and how to
run one; :func:`chapter_settings` builds its settings and :func:`run_one` runs one of its
configurations as every executor stores it. A chapter may also declare the networks and the
other work its configurations share (:func:`shared_networks`, :func:`shared_runs`), trained
or run once before them, and what a configuration costs at the full scale
(:func:`config_trainings`, :func:`shared_run_trainings`, each a list of :func:`training`).

Everything here takes the chapter's module; the book's registry of chapters
(:data:`minipruner.book.chapters.CHAPTERS`) turns a chapter's name into its module. Nothing
here imports the training code until a network is asked for, so storing and reading results
does not load it.
"""

from __future__ import annotations

import inspect
import json
import os
import time
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import nn

from ..core.scale import SEED_OFFSET_ENV
from ..core.scale import seed_offset as checked_offset
from .records import json_ready

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .records import Results


@runtime_checkable
class Chapter(Protocol):
    """What a chapter module defines; a module satisfies it by having these names.

    ``settings(scale, seed_offset=None)``: every setting at that scale, JSON-serialisable (with
    ``"scale"`` and ``"seed_offset"``; ``seed_offset=None`` reads ``$MINIPRUNER_SEED_OFFSET``,
    default 0); ``configurations(settings)``: the independent units of work;
    ``run(config, settings)``: one unit's measurements; ``figures``, ``table`` and
    ``claims``: the plots, the Markdown table and the judged claims, from stored results
    alone. ``VERSION`` enters every result's key (bump it when ``run`` changes what it
    measures); ``TITLE`` is the chapter's title. A module may also name in ``GRID`` the
    settings that only enumerate configurations (see :mod:`minipruner.experiments.records`), and
    list in ``trained_networks(settings)`` the trained networks its configurations share
    (:func:`shared_networks`), so that each is trained once, before the configurations.

    Optional slots beside those: ``shared_runs(settings)`` (:func:`shared_runs`); its
    full-scale cost, ``config_trainings(settings, config)`` and, with shared runs,
    ``shared_run_trainings(settings, run)``: the trainings one unit of work runs, each a
    :func:`training` (:func:`config_trainings`, read by ``benchmarks/full_scale_estimate.py``);
    ``TIMED``, the ``"experiment"`` names of configurations that measure time, which the
    worker-process executor runs alone (:mod:`minipruner.experiments.processes`);
    and ``EXPLORER``, the name of the chapter's explorer in :mod:`minipruner.book.explorers`
    (:func:`chapter_explorer`; ``python -m minipruner list --with-explorer`` lists the chapters
    that have one).
    """

    VERSION: int
    TITLE: str

    def settings(self, scale: str, seed_offset: int | None = None) -> dict[str, Any]: ...

    def configurations(self, settings: dict[str, Any]) -> list[dict[str, Any]]: ...

    def run(self, config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]: ...

    def figures(self, results: Results) -> dict[str, Figure]: ...

    def table(self, results: Results) -> str: ...

    def claims(self, results: Results) -> list[Any]: ...


def chapter_settings(
    module: ModuleType, scale: str, seed_offset: int | None = None
) -> dict[str, Any]:
    """The chapter's ``settings(scale, seed_offset)``, JSON-ready; ``seed_offset=None`` means
    ``$MINIPRUNER_SEED_OFFSET`` (default 0). A module whose ``settings`` takes only ``scale``
    (written against the older protocol, such as a test's stand-in chapter) gets the offset
    through that variable for the duration of the call."""
    if seed_offset is None:
        return json_ready(module.settings(scale))
    if "seed_offset" in inspect.signature(module.settings).parameters:
        return json_ready(module.settings(scale, seed_offset=seed_offset))
    before = os.environ.get(SEED_OFFSET_ENV)
    os.environ[SEED_OFFSET_ENV] = str(checked_offset(seed_offset))
    try:
        return json_ready(module.settings(scale))
    finally:
        if before is None:
            del os.environ[SEED_OFFSET_ENV]
        else:
            os.environ[SEED_OFFSET_ENV] = before


def run_one(
    module: ModuleType, config: Mapping[str, Any], settings: Mapping[str, Any]
) -> dict[str, Any]:
    """One configuration's result as ``reproduce`` stores it: the chapter's
    ``run(config, settings)``, JSON-ready, with its wall time (``seconds``) and torch thread
    count (``threads``) unless ``run`` recorded them. The serial executor and every cluster
    task call this, so both store the same thing."""
    t0 = time.perf_counter()
    result = json_ready(module.run(dict(config), dict(settings)))
    result.setdefault("seconds", time.perf_counter() - t0)
    result.setdefault("threads", torch.get_num_threads())
    return result


def train_network(args: Mapping[str, Any]) -> nn.Module:
    """``trained(quiet=True, **args)``: one entry of :func:`shared_networks`, trained once and
    then loaded from the cache (or from :func:`minipruner.core.store.preloaded`)."""
    from ..core.train import trained

    return trained(quiet=True, **args)


def shared_networks(module: ModuleType, settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The networks a chapter's configurations share, as :func:`minipruner.core.train.trained`
    keyword arguments: the module's ``trained_networks(settings)``, without repeats (none if it
    declares none). ``reproduce`` trains each once before the configurations that use it."""
    if not hasattr(module, "trained_networks"):
        return []
    unique: dict[str, dict[str, Any]] = {}
    for args in module.trained_networks(dict(settings)):
        unique.setdefault(json.dumps(args, sort_keys=True, default=str), dict(args))
    return list(unique.values())


def shared_runs(module: ModuleType, settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Work beyond training that several configurations share, run once after the shared
    networks (:func:`shared_networks`) and before the configurations: the module's
    ``shared_runs(settings)``, each ``{"call": name of a function of the module, "kwargs":
    {...}, "seed": s}``, run as ``module.<call>(settings, **kwargs)`` (which caches its result
    with :func:`minipruner.core.store.load_or_compute`). None if the module declares none."""
    if not hasattr(module, "shared_runs"):
        return []
    return [dict(run) for run in module.shared_runs(dict(settings))]


def run_shared(module: ModuleType, settings: Mapping[str, Any], run: Mapping[str, Any]) -> None:
    """One entry of :func:`shared_runs`: ``module.<call>(settings, **kwargs)``."""
    getattr(module, run["call"])(dict(settings), **run["kwargs"])


def training(
    model: str,
    dataset: str,
    train: Mapping[str, Any],
    model_kwargs: Mapping[str, Any] | None = None,
    steps: int | None = None,
) -> dict[str, Any]:
    """One training in a chapter's declared cost: ``model`` (with ``model_kwargs``) trained on
    ``dataset`` with the :func:`minipruner.core.train.train` arguments ``train``, for ``steps``
    optimiser steps, or (``steps=None``) as many as ``train`` implies: ``iterations``, else
    ``epochs x ceil(N_train / batch_size)``. Raises ``ValueError`` for a non-positive
    ``steps``."""
    if steps is not None and (isinstance(steps, bool) or int(steps) != steps or steps < 1):
        raise ValueError(f"steps must be a positive integer or None, got {steps!r}")
    return {
        "model": model,
        "dataset": dataset,
        "model_kwargs": None if model_kwargs is None else dict(model_kwargs),
        "train": dict(train),
        "steps": None if steps is None else int(steps),
    }


def config_trainings(
    module: ModuleType, settings: Mapping[str, Any], config: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The full-scale cost of one configuration as its chapter declares it: the module's
    ``config_trainings(settings, config)``, a list of :func:`training` (empty where the
    configuration trains nothing, or nothing counted). Raises ``ValueError`` for a chapter
    that declares no cost."""
    if not hasattr(module, "config_trainings"):
        raise ValueError(f"{module.__name__} declares no config_trainings (its full-scale cost)")
    return [dict(t) for t in module.config_trainings(dict(settings), dict(config))]


def shared_run_trainings(
    module: ModuleType, settings: Mapping[str, Any], run: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The full-scale cost of one of the chapter's :func:`shared_runs`: the module's
    ``shared_run_trainings(settings, run)``, a list of :func:`training`. Raises ``ValueError``
    for a chapter that declares shared runs but not their cost."""
    if not hasattr(module, "shared_run_trainings"):
        raise ValueError(
            f"{module.__name__} declares no shared_run_trainings (the cost of {run['call']})"
        )
    return [dict(t) for t in module.shared_run_trainings(dict(settings), dict(run))]
