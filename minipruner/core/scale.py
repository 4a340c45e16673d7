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


SEED_OFFSET_ENV = "MINIPRUNER_SEED_OFFSET"


def seed_offset(offset: int | None = None) -> int:
    """Return the seed offset: ``offset`` if given, else ``$MINIPRUNER_SEED_OFFSET``, else 0.

    Every chapter adds it to each of its seeds (``seeds = base + offset``), so one variable
    reruns the whole book on other seeds; the chapters' settings record it, so results at
    different offsets are stored apart. Raises ``ValueError`` for a value that is not an
    integer or is negative.

    >>> seed_offset(100)
    100
    """
    if offset is None:
        text = os.environ.get(SEED_OFFSET_ENV, "0").strip() or "0"
        try:
            offset = int(text)
        except ValueError:
            raise ValueError(
                f"${SEED_OFFSET_ENV} must be a non-negative integer, got {text!r}"
            ) from None
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"seed offset must be a non-negative integer, got {offset!r}")
    return offset


def shifted_seeds(base: list[int], offset: int | None = None) -> list[int]:
    """The seeds ``base`` shifted by the seed offset: ``[s + seed_offset(offset) for s in base]``.

    >>> shifted_seeds([0, 1, 2], 100)
    [100, 101, 102]
    """
    k = seed_offset(offset)
    return [int(s) + k for s in base]
