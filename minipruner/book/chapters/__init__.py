"""One module per chapter: the experiments its notebook reports, runnable on their own.

:data:`CHAPTERS` names every chapter's module, and every chapter module follows
:class:`minipruner.experiments.protocol.Chapter` (see :mod:`minipruner.book.runner` for how
``reproduce`` uses it). The helpers after it are what every chapter's configurations share:
the data, loaded once per process, and the trained networks, trained once and then loaded
from the cache. Nothing here imports the training code until a network is asked for, so
storing and reading results (:mod:`minipruner.experiments.records`) does not load it.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import numpy as np
from torch import nn
from torch.utils.data import Dataset

from ...core.data import load_dataset
from ...experiments.protocol import train_network

# name -> module path of every chapter's experiments: the only list of the chapters. The
# Makefile and the GPU workflow loop over `python -m minipruner list --names`, the
# full-scale estimate over this (tests/test_chapter_list.py checks no file lists them).
CHAPTERS: dict[str, str] = {
    "01_magnitude": "minipruner.book.chapters.magnitude",
    "02_lookahead": "minipruner.book.chapters.lookahead",
    "03_init_pruning": "minipruner.book.chapters.init_pruning",
    "04_obs": "minipruner.book.chapters.obs",
    "05_structured": "minipruner.book.chapters.structured",
    "06_comparison": "minipruner.book.chapters.comparison",
    "07_language_models": "minipruner.book.chapters.language_models",
}


def chapter_name(chapter: str | int) -> str:
    """Resolve ``1``, ``"1"``, ``"01"``, ``"magnitude"`` or ``"01_magnitude"`` to a chapter name.

    Raises ``ValueError`` listing the chapters when nothing (or more than one) matches.
    """
    text = str(chapter).strip().lower()
    if text in CHAPTERS:
        return text
    matches = [
        name
        for name in CHAPTERS
        if (
            text.isdigit() and name.split("_")[0].isdigit() and int(name.split("_")[0]) == int(text)
        )
        or name.split("_", 1)[-1] == text
    ]
    if len(matches) != 1:
        raise ValueError(f"unknown chapter {chapter!r}; chapters: {', '.join(CHAPTERS)}")
    return matches[0]


def chapter_module(chapter: str | int) -> ModuleType:
    """The module that defines a chapter's experiments."""
    return importlib.import_module(CHAPTERS[chapter_name(chapter)])


@functools.lru_cache(maxsize=4)
def load_data(name: str, scale: str) -> tuple[Dataset, Dataset]:
    """``load_dataset(name, scale=scale)``, loaded once per process and then shared by every
    configuration that asks for it (a chapter runs many configurations on one dataset)."""
    return load_dataset(name, scale=scale)


def network_args(spec: Mapping[str, Any], scale: str, seed: int) -> dict[str, Any]:
    """The keyword arguments of :func:`minipruner.core.train.trained` for the network ``spec``
    describes (``model``, ``dataset``, ``train`` and optionally ``model_kwargs``), trained at
    ``scale`` with ``seed``: what a chapter's ``trained_networks(settings)`` lists, one dict per
    network its configurations share."""
    return {
        "model": spec["model"],
        "dataset": spec["dataset"],
        "seed": seed,
        "scale": scale,
        "model_kwargs": spec.get("model_kwargs"),
        **spec["train"],
    }


def trained_network(spec: Mapping[str, Any], scale: str, seed: int) -> nn.Module:
    """The network ``spec`` describes, trained with ``seed``: ``trained(spec["model"],
    spec["dataset"], seed=seed, scale=scale, **spec["train"])`` (:func:`network_args`),
    trained once and then loaded from the cache (see :func:`minipruner.core.train.trained`)."""
    return train_network(network_args(spec, scale, seed))


def chapter_explorer(chapter: str | int | ModuleType) -> Callable[..., Any] | None:
    """The chapter's explorer, the function of :mod:`minipruner.book.explorers` its module names in
    ``EXPLORER``; ``None`` for a chapter without one. Raises ``ValueError`` when the name is not
    a function of that module."""
    module = chapter if isinstance(chapter, ModuleType) else chapter_module(chapter)
    name = getattr(module, "EXPLORER", None)
    if name is None:
        return None
    explorers = importlib.import_module("minipruner.book.explorers")
    found = getattr(explorers, str(name), None)
    if not callable(found):
        raise ValueError(f"{module.__name__}.EXPLORER names {name!r}, not an explorer")
    return found


def rank_correlation(a: Any, b: Any) -> float:
    """Spearman's rank correlation of two equally long sequences: the Pearson correlation
    of their ranks, ``corr(rank(a), rank(b))`` (ties are broken by position, not averaged:
    the values compared here are continuous measurements)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])
