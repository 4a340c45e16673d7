"""Run a chapter's experiments outside its notebook, resumably, into ``results/``.

Each chapter of the book is a module in :mod:`minipruner.chapters` with five parts:

- ``settings(scale) -> dict``: every setting of its experiments at that scale (seeds,
  sparsities, models, training schedules), JSON-serialisable;
- ``configurations(settings) -> list[dict]``: the independent units of work, for example
  one ``{"seed": 0, "method": "global", "sparsity": 0.9}`` each;
- ``run(config, settings) -> dict``: run one configuration and return its measurements;
- ``figures(results) -> {name: Figure}``: the chapter's plots, from results alone;
- ``table(results) -> str``: its main result as a Markdown table.

:func:`reproduce` runs every configuration that has no result yet and stores each result
as its own JSON file, written atomically (a temporary file, then ``os.replace``), at::

    results/<chapter>/<scale>/<key>.json      key = hash(chapter version, settings, config)

so an interrupted run resumes from its last finished configuration, nothing is computed
twice, and a changed setting gets new files instead of silently reusing old ones. A chapter
may name in ``GRID`` the settings that only enumerate configurations (``"seeds"``,
``"sparsities"``): those are left out of the key, because each configuration carries its own
value, so adding a seed runs only the new seed's configurations. The
notebooks call the same function, so they read what ``python -m minipruner reproduce``
wrote (on a GPU machine at the full scale, say) and compute only what is missing.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from . import calibration
from .chapters import (  # noqa: F401  (the registry is importable from here)
    CHAPTERS,
    chapter_module,
    chapter_name,
    run_shared,
    shared_networks,
    shared_runs,
    train_network,
)
from .scale import SEED_OFFSET_ENV, get_scale
from .store import config_key, write_atomic

RESULTS_ENV = "MINIPRUNER_RESULTS"
EXECUTORS = ("serial", "ray")


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


def _json_ready(value: Any) -> Any:
    # Keys keep their order (per-layer dicts stay in forward order); keys are hashed sorted.
    return json.loads(json.dumps(value, default=str))


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (:func:`minipruner.store.write_atomic`)."""
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


def result_path(folder: Path, chapter: ModuleType, settings: Mapping, config: Mapping) -> Path:
    """The file of one configuration's result."""
    key = config_key(_keyed(chapter, settings, config))
    return folder / f"{key}.json"


def _keyed(chapter: ModuleType, settings: Mapping, config: Mapping) -> dict[str, Any]:
    # Settings named in the chapter's GRID (the lists that only enumerate configurations,
    # such as seeds or sparsities) are left out of the key: each configuration carries its
    # own value, so adding a seed or a method runs only the new configurations.
    grid = set(getattr(chapter, "GRID", ()))
    keyed_settings = {k: v for k, v in settings.items() if k not in grid}
    return _json_ready(
        {"version": getattr(chapter, "VERSION", 1), "settings": keyed_settings, "config": config}
    )


def _load(path: Path, keyed: dict[str, Any]) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        entry = json.loads(path.read_text())
        if {k: entry.get(k) for k in keyed} == keyed:
            return entry["result"]
        warnings.warn(f"stale result {path} (other configuration); recomputing", stacklevel=3)
    except (OSError, ValueError, KeyError, TypeError) as err:
        warnings.warn(f"unreadable result {path} ({err!r}); recomputing", stacklevel=3)
    return None


def reproduce(
    chapter: str | int,
    scale: str | None = None,
    *,
    root: str | os.PathLike | None = None,
    compute: bool = True,
    figures: bool = False,
    quiet: bool = False,
    settings: Mapping[str, Any] | None = None,
    threads: int | None = 1,
    executor: str = "serial",
    address: str | None = None,
    gpus_per_task: float | None = None,
) -> Results:
    """Load every configuration's result of ``chapter`` at ``scale``, running the missing ones.

    Results are read from and written to ``results_dir(root)/<chapter>/<scale>/``, one JSON
    file per configuration, each written as soon as its configuration finishes. With
    ``compute=False`` a missing result raises ``FileNotFoundError`` naming the command that
    produces it. With ``figures=True`` the chapter's figures are saved as PNG files in the
    ``figures/`` subfolder and its table as ``table.md``. ``settings`` overrides the
    chapter's settings for this scale (for small test runs); overridden settings get their
    own result files, because every file is keyed on the settings too. ``threads`` is the
    number of torch CPU threads while configurations run (restored afterwards; ``None``
    leaves torch's setting): CPU results are reproducible bit for bit only at one thread
    count, so the notebooks and the command line all use 1. Each result records it.

    The networks the chapter declares in ``trained_networks(settings)`` are trained first
    (:func:`minipruner.chapters.shared_networks`), then the other work its configurations
    share is run (``shared_runs``), both only for the seeds with missing results.
    ``executor="ray"`` runs the missing configurations as tasks on a Ray cluster (``address``:
    None starts a local one; ``gpus_per_task``: default 1 where the cluster has GPUs, else 0;
    see :mod:`minipruner.cluster`), with the same results.
    """
    name = chapter_name(chapter)
    module = chapter_module(name)
    scale = get_scale(scale)
    settings = _json_ready(dict(settings) if settings is not None else module.settings(scale))
    folder = results_dir(root) / name / scale
    configs = [_json_ready(c) for c in module.configurations(settings)]
    paths = [result_path(folder, module, settings, c) for c in configs]
    if len(set(paths)) != len(paths):
        raise ValueError(f"{name}: two configurations share a key; make them differ")

    records, computed, started = [], 0, time.perf_counter()
    missing = []
    for config, path in zip(configs, paths, strict=True):
        result = _load(path, _keyed(module, settings, config))
        records.append(None if result is None else {**config, **result})
        if result is None:
            missing.append(len(records) - 1)
    if missing and not compute:
        raise FileNotFoundError(
            f"{len(missing)} of {len(configs)} results of {name} at scale {scale!r} are missing "
            f"under {folder}; run: python -m minipruner reproduce {name} --scale {scale}"
        )
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1 (or None), got {threads}")
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")

    def store(i: int, result: dict[str, Any]) -> None:
        nonlocal computed
        write_json_atomic(paths[i], {**_keyed(module, settings, configs[i]), "result": result})
        records[i] = {**configs[i], **result}
        computed += 1

    seeds = {configs[i].get("seed") for i in missing}  # shared work of these seeds only

    def of_missing_seeds(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in entries if e["seed"] in seeds or None in seeds]

    networks = of_missing_seeds(shared_networks(module, settings))
    runs = of_missing_seeds(shared_runs(module, settings))
    if missing and executor == "ray":
        from .cluster import run_missing

        stats = run_missing(
            module.__name__,
            settings,
            [configs[i] for i in missing],
            networks,
            lambda j, result: store(missing[j], result),
            runs=runs,
            num_gpus=gpus_per_task,
            address=address,
            threads=threads,
            quiet=quiet,
        )
    elif missing:
        previous_threads = torch.get_num_threads()
        try:
            if threads is not None:
                torch.set_num_threads(threads)
            _train_networks(networks, quiet)
            for run in tqdm(runs, desc="shared runs", disable=quiet or not runs, leave=False):
                run_shared(module, settings, run)
            stats = {"trained": len(networks), "trained_in_configs": 0}
            bar = tqdm(missing, desc=f"{name} ({scale})", disable=quiet, unit="config")
            for i in bar:
                config = configs[i]
                bar.set_postfix_str(", ".join(f"{k}={v}" for k, v in config.items()), refresh=False)
                store(i, run_one(module, config, settings))
        finally:
            torch.set_num_threads(previous_threads)
    results = Results(
        name, scale, settings, records, folder, computed, time.perf_counter() - started
    )
    if missing:
        results.networks_trained = stats["trained"]
        results.trained_in_configs = stats["trained_in_configs"]
    if figures:
        save_outputs(results, module)
    return results


def settings_at(chapter: str | int, scale: str, offset: int) -> dict[str, Any]:
    """The chapter's settings at ``scale`` with seed offset ``offset`` (what its
    ``settings(scale)`` gives with ``$MINIPRUNER_SEED_OFFSET`` set to ``offset``), JSON-ready."""
    module = chapter_module(chapter)
    before = os.environ.get(SEED_OFFSET_ENV)
    os.environ[SEED_OFFSET_ENV] = str(int(offset))
    try:
        return _json_ready(module.settings(scale))
    finally:
        if before is None:
            del os.environ[SEED_OFFSET_ENV]
        else:
            os.environ[SEED_OFFSET_ENV] = before


def calibrate(
    chapter: str | int,
    offsets: Iterable[int],
    *,
    threads: Mapping[int, int] | None = None,
    root: str | os.PathLike | None = None,
    folder: Path | None = None,
    quiet: bool = False,
) -> Path:
    """Run the chapter's quick scale at every seed offset in ``offsets`` (resumable, through
    :func:`reproduce`; ``threads`` maps an offset to its torch thread count, default 1),
    compute its claims at each, and write the calibration that decides which claims the
    page asserts (:mod:`minipruner.calibration`) to ``folder`` (default: the package's
    ``chapters/calibration/``). Returns the file written. At least
    :data:`minipruner.calibration.MIN_OFFSETS` distinct offsets are needed."""
    name = chapter_name(chapter)
    module = chapter_module(name)
    offsets = list(dict.fromkeys(int(k) for k in offsets))
    if len(offsets) < calibration.MIN_OFFSETS:
        raise ValueError(
            f"a calibration needs at least {calibration.MIN_OFFSETS} seed offsets, got {offsets}"
        )
    threads = dict(threads or {})
    runs = []
    for k in offsets:
        settings = settings_at(name, "quick", k)
        results = reproduce(
            name, "quick", root=root, settings=settings, threads=threads.get(k, 1), quiet=quiet
        )
        used = max((r.get("threads", 1) for r in results.records), default=1)
        runs.append((k, int(used), module.claims(results)))
    built = calibration.build(name, module, settings_at(name, "quick", 0), runs)
    return calibration.save(built, folder)


def run_one(
    chapter: str | ModuleType, config: Mapping[str, Any], settings: Mapping[str, Any]
) -> dict:
    """One configuration's result as ``reproduce`` stores it: the chapter's
    ``run(config, settings)``, JSON-ready, with its wall time (``seconds``) and torch thread
    count (``threads``) unless ``run`` recorded them. The serial path and every cluster task
    call this, so both store the same thing."""
    module = chapter if isinstance(chapter, ModuleType) else chapter_module(chapter)
    t0 = time.perf_counter()
    result = _json_ready(module.run(dict(config), dict(settings)))
    result.setdefault("seconds", time.perf_counter() - t0)
    result.setdefault("threads", torch.get_num_threads())
    return result


def _train_networks(networks: list[dict[str, Any]], quiet: bool) -> None:
    """Train (or load from the cache) every shared network, one bar over them."""
    for args in tqdm(networks, desc="networks", disable=quiet or not networks, leave=False):
        train_network(args)


def save_outputs(results: Results, module: ModuleType | None = None) -> list[Path]:
    """Save a chapter's figures (``figures/<name>.png``) and table (``table.md``)."""
    module = module or chapter_module(results.chapter)
    written = []
    for fig_name, fig in module.figures(results).items():
        path = results.folder / "figures" / f"{fig_name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        written.append(path)
    table = results.folder / "table.md"
    table.write_text(module.table(results) + "\n")
    written.append(table)
    if hasattr(module, "claims"):
        try:
            written += save_claims(results, module)
        except KeyError as err:
            # A chapter states its claims on its own grid (its sparsities, levels, seeds).
            # Results of overridden settings (a shrunk test run) may lack the records a claim
            # needs: then there are no claims to store. On the chapter's own settings a
            # missing record is an error.
            if results.settings == _json_ready(module.settings(results.scale)):
                raise
            warnings.warn(
                f"{results.chapter}: no claims for these overridden settings ({err})",
                stacklevel=2,
            )
    return written


def chapter_claims(results: Results, module: ModuleType | None = None) -> list:
    """The chapter's claims (:mod:`minipruner.claims`) computed from ``results``."""
    module = module or chapter_module(results.chapter)
    return module.claims(results)


def save_claims(
    results: Results, module: ModuleType | None = None, found: list | None = None
) -> list[Path]:
    """Store the chapter's claims beside its results: ``claims.md`` (the table) and
    ``claims.json`` (one dict per claim, with the scale, seed offset and threads); at a
    non-zero seed offset ``K`` the files are ``claims-offsetK.*``. ``found``: the claims
    if the caller has computed them already (else they are computed here)."""
    from .claims import claims_table

    found = chapter_claims(results, module) if found is None else found
    offset = results.settings.get("seed_offset", 0)
    stem = "claims" if not offset else f"claims-offset{offset}"
    md = results.folder / f"{stem}.md"
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(claims_table(found) + "\n")
    meta = {
        "chapter": results.chapter,
        "scale": results.scale,
        "seed_offset": offset,
        "threads": sorted({r.get("threads") for r in results.records if "threads" in r}),
        "claims": [c.as_dict() for c in found],
    }
    path = results.folder / f"{stem}.json"
    write_json_atomic(path, meta)
    return [md, path]


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
