"""Numbers into text for the chapters' tables: the sample standard deviation over seeds,
``mean ± sd`` cells and GitHub-flavoured Markdown tables. Imports nothing of the package, so
the claims (:mod:`minipruner.book.claims`) and every chapter can format without a circle."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


def sample_sd(values: Iterable[float]) -> float:
    """The sample standard deviation ``sqrt(sum((v - mean)^2) / (n - 1))``; 0 for one value."""
    v = np.asarray(list(values), dtype=float)
    return float(v.std(ddof=1)) if v.size > 1 else 0.0


def mean_sd_cell(values: Iterable[float], percent: bool = True, digits: int = 1) -> str:
    """``"mean ± sample sd"`` of a list of numbers (sample sd over seeds), as percentages by default
    (for tables), with ``digits`` decimals."""
    v = np.asarray(list(values), dtype=float) * (100 if percent else 1)
    return f"{v.mean():.{digits}f} ± {sample_sd(v):.{digits}f}"


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-flavoured Markdown table; a ``|`` inside a cell is escaped."""

    def line(cells: list[Any]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *(line(r) for r in rows)])
