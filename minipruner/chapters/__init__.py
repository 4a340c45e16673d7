"""One module per chapter: the experiments its notebook reports, runnable on their own.

Every chapter module follows :class:`Chapter` (see :mod:`minipruner.results` for how
``reproduce`` uses it). The two helpers here are what every chapter's configurations share:
the data, loaded once per process, and the trained networks, trained once and then loaded
from the cache.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from torch import nn
from torch.utils.data import Dataset

from ..data import load_dataset
from ..train import trained

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..claims import Claim
    from ..results import Results


@runtime_checkable
class Chapter(Protocol):
    """What a chapter module defines; a module satisfies it by having these names.

    ``settings(scale)``: every setting at that scale, JSON-serialisable (with ``"scale"``
    and ``"seed_offset"``); ``configurations(settings)``: the independent units of work;
    ``run(config, settings)``: one unit's measurements; ``figures``, ``table`` and
    ``claims``: the plots, the Markdown table and the judged claims, from stored results
    alone. ``VERSION`` enters every result's key (bump it when ``run`` changes what it
    measures); ``TITLE`` is the chapter's title. A module may also name in ``GRID`` the
    settings that only enumerate configurations (see :mod:`minipruner.results`).
    """

    VERSION: int
    TITLE: str

    def settings(self, scale: str) -> dict[str, Any]: ...

    def configurations(self, settings: dict[str, Any]) -> list[dict[str, Any]]: ...

    def run(self, config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]: ...

    def figures(self, results: Results) -> dict[str, Figure]: ...

    def table(self, results: Results) -> str: ...

    def claims(self, results: Results) -> list[Claim]: ...


@functools.lru_cache(maxsize=4)
def load_data(name: str, scale: str) -> tuple[Dataset, Dataset]:
    """``load_dataset(name, scale=scale)``, loaded once per process and then shared by every
    configuration that asks for it (a chapter runs many configurations on one dataset)."""
    return load_dataset(name, scale=scale)


def trained_network(spec: Mapping[str, Any], scale: str, seed: int) -> nn.Module:
    """The network ``spec`` describes, trained with ``seed``: ``trained(spec["model"],
    spec["dataset"], seed=seed, scale=scale, **spec["train"])``, trained once and then loaded
    from the cache (see :func:`minipruner.train.trained`)."""
    return trained(
        spec["model"],
        spec["dataset"],
        seed=seed,
        scale=scale,
        quiet=True,
        model_kwargs=spec.get("model_kwargs"),
        **spec["train"],
    )


def rank_correlation(a: Any, b: Any) -> float:
    """Spearman's rank correlation of two equally long sequences: the Pearson correlation
    of their ranks, ``corr(rank(a), rank(b))`` (ties are broken by position, not averaged:
    the values compared here are continuous measurements)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])
