"""Experiment scale: ``quick`` (CPU, minutes, offline data) or ``full`` (the papers' setups).

One environment variable, ``MINIPRUNER_SCALE``, chooses the scale of every experiment in
the book. Functions that take a ``scale`` argument use it when given and fall back to the
environment variable (default ``"quick"``) otherwise.
"""

from __future__ import annotations

import os
from typing import TypeVar

SCALES = ("quick", "full")
ENV_VAR = "MINIPRUNER_SCALE"

T = TypeVar("T")


def get_scale(scale: str | None = None) -> str:
    """Return the scale to use: ``scale`` if given, else ``$MINIPRUNER_SCALE``, else ``"quick"``.

    Raises ``ValueError`` listing the valid scales when the value is not one of them.

    >>> get_scale("full")
    'full'
    """
    value = scale if scale is not None else os.environ.get(ENV_VAR, "quick")
    value = value.strip().lower()
    if value not in SCALES:
        source = "argument scale" if scale is not None else f"${ENV_VAR}"
        raise ValueError(
            f"unknown scale {value!r} (from {source}); valid scales: {', '.join(SCALES)}"
        )
    return value


def by_scale(quick: T, full: T, scale: str | None = None) -> T:
    """Pick the setting for the current scale: ``quick`` or ``full``.

    >>> by_scale(quick=3, full=5, scale="quick")
    3
    """
    return quick if get_scale(scale) == "quick" else full
