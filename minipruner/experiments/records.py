"""Stored results: where they live, the key of one configuration's file, reading and
writing it, and :class:`Results`, one chapter's records at one scale.

One configuration's result is one JSON file, written atomically::

    results/<chapter>/<scale>/<key>.json      key = hash(chapter version, settings, config)

A chapter may name in ``GRID`` the settings that only enumerate configurations
(``"seeds"``, ``"sparsities"``): those are left out of the key, because each configuration
carries its own value, so adding a seed runs only the new seed's configurations. Nothing
here runs a chapter (:mod:`minipruner.book.runner` does) or imports the training code.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ..core.store import config_key, write_atomic
from .tables import sample_sd

RESULTS_ENV = "MINIPRUNER_RESULTS"


def results_dir(root: str | os.PathLike | None = None) -> Path:
    """Where results live: ``root`` if given, else ``$MINIPRUNER_RESULTS``, else the
    ``results/`` folder of the repository that contains the working directory (found by
    walking up to a folder holding ``pyproject.toml`` and ``minipruner/``), else
    ``./results``. Notebooks run from ``notebooks/`` and the command line from the
    repository root therefore share one folder."""
    if root is not None:
        return Path(root)
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV])
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "minipruner").is_dir():
            return folder / "results"
    return here / "results"


def json_ready(value: Any) -> Any:
    """``value`` as it reads back from JSON (``json.loads(json.dumps(value, default=str))``):
    tuples become lists, other objects their ``str``. Keys keep their order (per-layer dicts
    stay in forward order); keys are hashed sorted."""
    return json.loads(json.dumps(value, default=str))


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically
    (:func:`minipruner.core.store.write_atomic`)."""
    write_atomic(path, lambda f: json.dump(data, f, indent=1))


@dataclass
class Results:
    """One chapter's results at one scale: ``records`` holds one flat dict per
    configuration (its config merged with what ``run`` measured)."""

    chapter: str
    scale: str
    settings: dict[str, Any]
    records: list[dict[str, Any]]
    folder: Path
    computed: int = 0  # configurations run by this call (the rest were loaded)
    seconds: float = 0.0
    networks_trained: int = 0  # shared networks trained (or loaded) before the configurations
    trained_in_configs: int = 0  # networks a configuration had to train itself (cluster runs)

    def select(self, **where: Any) -> list[dict[str, Any]]:
        """The records whose fields equal every ``where`` value."""
        return [r for r in self.records if all(r.get(k) == v for k, v in where.items())]

    def values(self, key: str, **where: Any) -> np.ndarray:
        """``key`` of every selected record, as an array (one entry per seed, say)."""
        rows = self.select(**where)
        if not rows:
            raise KeyError(f"no record of {self.chapter} matches {where}")
        return np.array([r[key] for r in rows], dtype=float)

    def stat(self, key: str, **where: Any) -> tuple[float, float]:
        """Mean and sample standard deviation (``ddof = 1``; 0 for one record) of ``key``
        over the selected records."""
        v = self.values(key, **where)
        return float(v.mean()), sample_sd(v)

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return (
            f"Results({self.chapter!r}, scale={self.scale!r}, {len(self.records)} records, "
            f"{self.computed} computed now, folder={str(self.folder)!r})"
        )


def keyed(chapter: ModuleType, settings: Mapping, config: Mapping) -> dict[str, Any]:
    """What one configuration's result is keyed on, and what its file stores beside the
    result: ``{"version": chapter.VERSION, "settings": settings less GRID, "config": config}``.
    Settings named in the chapter's ``GRID`` (lists that only enumerate configurations, such
    as seeds or sparsities) are left out: each configuration carries its own value, so adding
    a seed or a method runs only the new configurations."""
    grid = set(getattr(chapter, "GRID", ()))
    keyed_settings = {k: v for k, v in settings.items() if k not in grid}
    return json_ready(
        {"version": getattr(chapter, "VERSION", 1), "settings": keyed_settings, "config": config}
    )


def result_path(folder: Path, chapter: ModuleType, settings: Mapping, config: Mapping) -> Path:
    """The file of one configuration's result: ``folder / (config_key(keyed(...)) + ".json")``."""
    key = config_key(keyed(chapter, settings, config))
    return folder / f"{key}.json"


def load_result(path: Path, fields: dict[str, Any]) -> dict[str, Any] | None:
    """The result stored at ``path`` if the file holds the configuration ``fields``
    (:func:`keyed`); ``None`` when there is no file, and ``None`` with a warning when it is
    unreadable or holds another configuration (the caller recomputes it)."""
    if not path.exists():
        return None
    try:
        entry = json.loads(path.read_text())
        if {k: entry.get(k) for k in fields} == fields:
            return entry["result"]
        warnings.warn(f"stale result {path} (other configuration); recomputing", stacklevel=3)
    except (OSError, ValueError, KeyError, TypeError) as err:
        warnings.warn(f"unreadable result {path} ({err!r}); recomputing", stacklevel=3)
    return None
