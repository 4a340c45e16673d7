"""One module per chapter: the experiments its notebook reports, runnable on their own.

See :mod:`minipruner.results` for the five functions each module defines. The two helpers
here are what every chapter's configurations share: the data, loaded once per process, and
the trained networks, trained once and then loaded from the cache.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from ..data import load_dataset
from ..train import trained


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
