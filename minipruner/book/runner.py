"""Run a chapter's experiments outside its notebook, resumably, into ``results/``.

Each chapter of the book is a module in :mod:`minipruner.book.chapters` that follows
:class:`minipruner.experiments.protocol.Chapter`: its ``settings(scale, seed_offset)``, its
``configurations(settings)`` (the independent units of work), ``run(config, settings)``
(one unit's measurements), and ``figures``, ``table`` and ``claims`` from results alone.

:func:`reproduce` loads every configuration's stored result (:mod:`minipruner.experiments.records`:
one JSON file per configuration, keyed on the chapter's version, settings and configuration),
plans the missing ones (:func:`minipruner.experiments.plan.plan_work`: the networks and shared runs
of their seeds, then the configurations) and hands the plan to an executor: :func:`run_serial`
here, or :func:`minipruner.experiments.cluster.run_plan` on a Ray cluster. Each result is stored as
soon as its configuration finishes, so an interrupted run resumes from its last finished
configuration, nothing is computed twice, and a changed setting gets new files instead of
silently reusing old ones. The notebooks call the same function, so they read what
``python -m minipruner reproduce`` wrote (on a GPU machine at the full scale, say) and compute
only what is missing.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from tqdm import tqdm

from ..core.runtime import threads as torch_threads
from ..core.scale import get_scale
from ..experiments.cluster import run_plan
from ..experiments.overrides import apply_overrides
from ..experiments.plan import Plan, plan_work
from ..experiments.processes import run_processes, usable_cores
from ..experiments.protocol import chapter_settings, run_one, run_shared, train_network
from ..experiments.records import (
    Results,
    json_ready,
    keyed,
    load_result,
    result_path,
    results_dir,
    write_json_atomic,
)
from . import calibration
from .chapters import chapter_module, chapter_name
from .claims import claims_table

EXECUTORS = ("serial", "ray")


def reproduce(
    chapter: str | int,
    scale: str | None = None,
    *,
    root: str | os.PathLike | None = None,
    compute: bool = True,
    figures: bool = False,
    quiet: bool = False,
    settings: Mapping[str, Any] | None = None,
    seed_offset: int | None = None,
    threads: int | None = 1,
    workers: int | None = 1,
    executor: str = "serial",
    address: str | None = None,
    gpus_per_task: float | None = None,
) -> Results:
    """Load every configuration's result of ``chapter`` at ``scale``, running the missing ones.

    Results are read from and written to ``results_dir(root)/<chapter>/<scale>/``, one JSON
    file per configuration, each written as soon as its configuration finishes. With
    ``compute=False`` a missing result raises ``FileNotFoundError`` naming the command that
    produces it. With ``figures=True`` the chapter's figures are saved as PNG files in the
    ``figures/`` subfolder and its table as ``table.md``. The settings are the chapter's
    ``settings(scale, seed_offset)`` (``seed_offset=None``: ``$MINIPRUNER_SEED_OFFSET``,
    default 0); ``settings`` replaces them (for small test runs, or
    :func:`minipruner.experiments.overrides.apply_overrides`); other settings get their own result
    files, because every file is keyed on the settings too. ``threads`` is the number of torch CPU
    threads while configurations run (restored afterwards; ``None`` leaves torch's setting):
    CPU results are reproducible bit for bit only at one thread count, so the notebooks and
    the command line all use 1. Each result records it. ``workers`` processes run the
    configurations side by side on this machine, each with ``threads`` threads
    (:func:`minipruner.experiments.processes.run_processes`; ``None``: one per usable core;
    1 runs them in this process): every result is the same as in one process, and on ``W``
    free cores the run takes about ``1/W`` of the time.

    The missing configurations are planned (:func:`minipruner.experiments.plan.plan_work`) and the
    plan executed: ``executor="serial"`` runs it on this machine (:func:`run_serial`, or the
    worker processes); ``executor="ray"`` as
    tasks on a Ray cluster (``address``: None starts a local one; ``gpus_per_task``: default
    1 where the cluster has GPUs, else 0; see :mod:`minipruner.experiments.cluster`), with the same
    results.
    """
    name = chapter_name(chapter)
    module = chapter_module(name)
    scale = get_scale(scale)
    if settings is not None and seed_offset is not None:
        raise ValueError("give settings or seed_offset, not both (settings carry their offset)")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1 (or None), got {threads}")
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    workers = usable_cores() if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer (or None), got {workers!r}")
    if workers > 1 and executor == "ray":
        raise ValueError("workers is for this machine; a Ray cluster schedules its own tasks")
    settings = (
        json_ready(dict(settings))
        if settings is not None
        else chapter_settings(module, scale, seed_offset)
    )
    folder = results_dir(root) / name / scale
    configs = [json_ready(c) for c in module.configurations(settings)]
    paths = [result_path(folder, module, settings, c) for c in configs]
    if len(set(paths)) != len(paths):
        raise ValueError(f"{name}: two configurations share a key; make them differ")

    started = time.perf_counter()
    records: list[dict[str, Any] | None] = []
    for config, path in zip(configs, paths, strict=True):
        result = load_result(path, keyed(module, settings, config))
        records.append(None if result is None else {**config, **result})
    missing = [i for i, r in enumerate(records) if r is None]
    if missing and not compute:
        raise FileNotFoundError(
            f"{len(missing)} of {len(configs)} results of {name} at scale {scale!r} are missing "
            f"under {folder}; run: python -m minipruner reproduce {name} --scale {scale}"
        )
    computed = 0

    def store(j: int, result: dict[str, Any]) -> None:
        nonlocal computed
        i = missing[j]
        write_json_atomic(paths[i], {**keyed(module, settings, configs[i]), "result": result})
        records[i] = {**configs[i], **result}
        computed += 1

    stats = {"trained": 0, "trained_in_configs": 0}
    if missing:
        plan = plan_work(module, settings, [configs[i] for i in missing])
        if executor == "ray":
            stats = run_plan(
                plan, store, address=address, threads=threads, num_gpus=gpus_per_task, quiet=quiet
            )
        elif workers > 1 and len(plan) > 1:
            stats = run_processes(
                plan, store, workers=workers, threads=threads, quiet=quiet, desc=f"{name} ({scale})"
            )
        else:
            stats = run_serial(plan, store, threads=threads, quiet=quiet, desc=f"{name} ({scale})")
    results = Results(
        name, scale, settings, records, folder, computed, time.perf_counter() - started
    )
    results.networks_trained = stats["trained"]
    results.trained_in_configs = stats["trained_in_configs"]
    if figures:
        save_outputs(results, module)
    return results


def run_serial(
    plan: Plan,
    store: Callable[[int, dict[str, Any]], None],
    *,
    threads: int | None = 1,
    quiet: bool = False,
    desc: str | None = None,
) -> dict[str, int]:
    """Run ``plan`` in this process, one step after another, with ``threads`` torch threads
    (:func:`minipruner.core.runtime.threads`): train (or load from the cache) its networks, run
    its shared runs, then each configuration (:func:`minipruner.experiments.protocol.run_one`),
    calling ``store(i, result)`` for ``plan.configs[i]`` as soon as it finishes. Returns the counts
    ``reproduce`` records: ``trained`` (networks) and ``trained_in_configs`` (always 0 here:
    a configuration that needs an undeclared network trains it in its own step)."""
    with torch_threads(threads):
        for args in tqdm(
            plan.networks, desc="networks", disable=quiet or not plan.networks, leave=False
        ):
            train_network(args)
        for run in tqdm(plan.runs, desc="shared runs", disable=quiet or not plan.runs, leave=False):
            run_shared(plan.module, plan.settings, run)
        bar = tqdm(plan.configs, desc=desc or plan.chapter, disable=quiet, unit="config")
        for i, config in enumerate(bar):
            bar.set_postfix_str(", ".join(f"{k}={v}" for k, v in config.items()), refresh=False)
            store(i, run_one(plan.module, config, plan.settings))
    return {"trained": len(plan.networks), "trained_in_configs": 0}


def settings_at(chapter: str | int, scale: str, offset: int | None = None) -> dict[str, Any]:
    """The chapter's settings at ``scale`` with seed offset ``offset`` (its
    ``settings(scale, seed_offset=offset)``; ``None``: ``$MINIPRUNER_SEED_OFFSET``),
    JSON-ready (:func:`minipruner.experiments.protocol.chapter_settings`)."""
    return chapter_settings(chapter_module(chapter), scale, offset)


def calibrate(
    chapter: str | int,
    offsets: Iterable[int],
    *,
    threads: Mapping[int, int] | None = None,
    workers: int | None = 1,
    root: str | os.PathLike | None = None,
    folder: Path | None = None,
    quiet: bool = False,
    overrides: Iterable[str] = (),
    variant: str | None = None,
) -> Path:
    """Run the chapter's quick scale at every seed offset in ``offsets`` (resumable, through
    :func:`reproduce`; ``threads`` maps an offset to its torch thread count, default 1;
    ``workers`` processes run each offset's configurations side by side, as in :func:`reproduce`),
    compute its claims at each, and write the calibration that decides which claims the
    page asserts (:mod:`minipruner.book.calibration`) to ``folder`` (default: the package's
    ``chapters/calibration/``). Returns the file written. At least
    :data:`minipruner.book.calibration.MIN_OFFSETS` distinct offsets are needed.

    With ``overrides`` (``key=value`` strings, as ``reproduce --set``) it calibrates the
    chapter under other settings, a *variant* that a page may cite (e.g. chapter 3 under the
    paper's initialisation) but that asserts nothing: it is written as
    ``<chapter>.<variant>.json`` and needs a ``variant`` name."""
    name = chapter_name(chapter)
    module = chapter_module(name)
    overrides = list(overrides)
    if overrides and not variant:
        raise ValueError("a calibration under changed settings (--set) needs a --variant name")
    if variant is not None and not variant.replace("-", "").isalnum():
        raise ValueError(f"a variant name is letters, digits and '-', got {variant!r}")
    offsets = list(dict.fromkeys(int(k) for k in offsets))
    if len(offsets) < calibration.MIN_OFFSETS:
        raise ValueError(
            f"a calibration needs at least {calibration.MIN_OFFSETS} seed offsets, got {offsets}"
        )
    threads = dict(threads or {})
    runs = []
    for k in offsets:
        settings = apply_overrides(settings_at(name, "quick", k), overrides)
        results = reproduce(
            name,
            "quick",
            root=root,
            settings=settings,
            threads=threads.get(k, 1),
            workers=workers,
            quiet=quiet,
        )
        used = max((r.get("threads", 1) for r in results.records), default=1)
        runs.append((k, int(used), module.claims(results)))
    label = f"{name}.{variant}" if variant else name
    at_zero = apply_overrides(settings_at(name, "quick", 0), overrides)
    built = calibration.build(label, module, at_zero, runs)
    if variant:
        built["overrides"] = overrides  # what makes it a variant: a test recomputes its hash
    return calibration.save(built, folder)


def save_outputs(results: Results, module: ModuleType | None = None) -> list[Path]:
    """Save a chapter's figures (``figures/<name>.png``) and table (``table.md``), and its
    claims (:func:`save_claims`) when it states any."""
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
            own = chapter_settings(module, results.scale, results.settings.get("seed_offset"))
            if results.settings == own:
                raise
            warnings.warn(
                f"{results.chapter}: no claims for these overridden settings ({err})",
                stacklevel=2,
            )
    return written


def chapter_claims(results: Results, module: ModuleType | None = None) -> list:
    """The chapter's claims (:mod:`minipruner.book.claims`) computed from ``results``."""
    module = module or chapter_module(results.chapter)
    return module.claims(results)


def save_claims(
    results: Results, module: ModuleType | None = None, found: list | None = None
) -> list[Path]:
    """Store the chapter's claims beside its results: ``claims.md`` (the table) and
    ``claims.json`` (one dict per claim, with the scale, seed offset and threads); at a
    non-zero seed offset ``K`` the files are ``claims-offsetK.*``. ``found``: the claims
    if the caller has computed them already (else they are computed here)."""
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
