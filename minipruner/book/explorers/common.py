"""What every chapter's explorer shares: the type of a progress callback, how a fraction
is printed, and the fine grid of sparsities a slider moves on."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[..., None]


def _percent(x: float) -> str:
    return f"{100 * x:.1f} %"


def fine_sparsities(low: float, high: float, step: float) -> list[float]:
    """Sparsities from ``low`` to ``high`` (inclusive) in steps of ``step``, rounded to
    six decimals so that equal values compare equal."""
    n = round((high - low) / step)
    return [round(low + i * step, 6) for i in range(n + 1)]
