"""Run a chapter's missing configurations as tasks on a Ray cluster (``reproduce --ray``).

The serial executor (:func:`minipruner.book.runner.run_serial`) runs one configuration after
another. Both consume the same plan of the work (:func:`minipruner.experiments.plan.plan_work`).
Configurations are independent units (one JSON file each), so here every missing one becomes
a Ray task, and the driver writes each result into the same store as soon as its task
returns: an interrupted run resumes exactly as the serial one does, and a task that fails is
reported with its configuration while the others' results are kept.

Shared work runs once: the networks a chapter declares in ``trained_networks(settings)``
(:func:`minipruner.experiments.protocol.shared_networks`) are trained by one task each, whose cache
entry (the state dict) travels through Ray's object store to the configurations of the same seed;
they receive it with :func:`minipruner.core.store.preloaded` and never train it again nor race on a
cache folder. Each task sets the torch thread count the serial path uses, and every
configuration seeds itself, so the results are the serial path's, key for key.

``ray`` is an optional dependency: ``pip install -e '.[cluster]'``.
"""

from __future__ import annotations

import importlib
import os
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from ..core.runtime import threads as torch_threads
from ..core.store import Entry, preloaded, recording
from .plan import Plan
from .protocol import run_one, run_shared, train_network

INSTALL_HINT = "Ray is not installed: pip install -e '.[cluster]' (or pip install 'ray[default]')"


@dataclass
class Failure:
    """A configuration whose task raised: the configuration and the error's text."""

    config: dict[str, Any]
    error: str


class ConfigurationsFailed(RuntimeError):
    """Raised after every other result was stored, naming the configurations that failed."""

    def __init__(self, chapter: str, failures: Sequence[Failure]) -> None:
        self.failures = list(failures)
        lines = "\n".join(f"  {f.config}: {f.error.strip().splitlines()[-1]}" for f in failures)
        super().__init__(
            f"{len(failures)} configuration(s) of {chapter} failed (the others' results are "
            f"stored; rerun to retry only these):\n{lines}"
        )


def _ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return ray


def _environment() -> dict[str, str]:
    """The MINIPRUNER_* variables of the driver, passed with every task (cache, data, results
    folders, seed offset, scale), so a remote node reads the same settings."""
    return {k: v for k, v in os.environ.items() if k.startswith("MINIPRUNER_")}


def connect(address: str | None = None, num_cpus: int | None = None) -> Any:
    """``ray.init`` once per process: a new local cluster when ``address`` is None (with
    ``num_cpus`` CPUs, default all), else the cluster at ``address`` (``"auto"`` or
    ``host:port``). Returns the ``ray`` module."""
    ray = _ray()
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address is None and num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
        ray.init(address=address, **kwargs)
    return ray


def _train_task(args: dict[str, Any], n_threads: int | None) -> list[Entry]:
    """Train (or load from this node's cache) one network; return its cache entries. A
    network that cannot be trained returns none, so the configurations of its seed still run:
    one that needs it then trains it itself and fails with its own configuration named."""
    try:
        with torch_threads(n_threads), recording() as calls:
            train_network(args)
    except Exception:  # noqa: BLE001 - reported by the configurations that need the network
        return []
    return [(kind, config, result) for kind, config, result, _ in calls if kind == "trained"]


def _shared_task(
    chapter: str, settings: dict[str, Any], run: dict[str, Any], n_threads: int | None,
    *networks: list[Entry],
) -> list[Entry]:  # fmt: skip
    """Run one shared piece of work (:func:`minipruner.experiments.protocol.shared_runs`) with the
    networks of its seed handed in; return every cache entry it made or read."""
    module = importlib.import_module(chapter)
    given = [entry for entries in networks for entry in entries]
    try:
        with torch_threads(n_threads), preloaded(given), recording() as calls:
            run_shared(module, settings, run)
    except Exception:  # noqa: BLE001 - the configurations that need it report it
        return []
    return [(kind, config, result) for kind, config, result, _ in calls]


def _config_task(
    chapter: str,
    config: dict[str, Any],
    settings: dict[str, Any],
    n_threads: int | None,
    *networks: list[Entry],
) -> tuple[dict[str, Any], int]:
    """Run one configuration with the networks it shares handed in; return its result and
    how many networks it had to train itself (0 when the declaration covers them)."""
    module = importlib.import_module(chapter)  # by module path: the worker's registry may lack it
    entries = [entry for entries in networks for entry in entries]
    with torch_threads(n_threads), preloaded(entries), recording() as calls:
        result = run_one(module, config, settings)
    trained_here = sum(1 for kind, _, _, computed in calls if kind == "trained" and computed)
    return result, trained_here


def run_plan(
    plan: Plan,
    store: Callable[[int, dict[str, Any]], None],
    *,
    address: str | None = None,
    threads: int | None = 1,
    num_gpus: float | None = None,
    num_cpus: int | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run ``plan`` (:func:`minipruner.experiments.plan.plan_work`: a chapter's missing
    configurations and the shared work of their seeds) as Ray tasks and call ``store(i, result)``
    for ``plan.configs[i]`` as soon as its task returns (in completion order).

    The plan's networks are trained first, one task each, then its shared runs run, one
    task each with the networks of their seed; a configuration receives the results of both
    for its seed (all of them if it has no seed; :meth:`Plan.needs`).
    ``num_gpus`` per task defaults to 1 when the cluster has GPUs, else 0. Raises
    :class:`ConfigurationsFailed` at the end if any configuration failed (the others are
    stored). Returns counts: ``trained`` (network tasks) and ``trained_in_configs``
    (networks a configuration task had to train itself; 0 when the declaration is complete).
    """
    ray = connect(address, num_cpus)
    if num_gpus is None:
        num_gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    options = {
        "num_gpus": num_gpus,
        "num_cpus": 1,
        "max_retries": 0,
        "runtime_env": {"env_vars": _environment()},  # this run's folders, not the first run's
    }
    train_remote = ray.remote(_train_task).options(**options)
    shared_remote = ray.remote(_shared_task).options(**options)
    config_remote = ray.remote(_config_task).options(**options)
    chapter, settings, configs = plan.chapter, plan.settings, plan.configs

    net_refs = [(n["seed"], train_remote.remote(n, threads)) for n in plan.networks]
    run_refs = [  # each after the networks of its seed (which it receives), not other runs
        (
            run["seed"],
            shared_remote.remote(
                chapter,
                settings,
                dict(run),
                threads,
                *[ref for seed, ref in net_refs if plan.needs(run["seed"], seed)],
            ),
        )
        for run in plan.runs
    ]
    pending: dict[Any, int] = {}
    for i, config in enumerate(configs):
        mine = [ref for seed, ref in net_refs + run_refs if plan.needs(config.get("seed"), seed)]
        pending[config_remote.remote(chapter, dict(config), settings, threads, *mine)] = i

    failures: list[Failure] = []
    trained_in_configs, done = 0, 0
    bar = tqdm(total=len(configs), desc=f"{chapter} (ray)", disable=quiet, unit="config")
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ready[0])
            try:
                result, trained_here = ray.get(ready[0])
            except Exception as err:  # noqa: BLE001 - any task error is reported, not raised
                failures.append(Failure(dict(configs[i]), _error_text(err)))
            else:
                store(i, result)
                trained_in_configs += trained_here
            done += 1
            bar.update(1)
            bar.set_postfix(running=len(pending), failed=len(failures), refresh=False)
    finally:
        bar.close()
        for ref in pending:  # an interrupted driver cancels what is left
            ray.cancel(ref, force=True)
    if failures:
        raise ConfigurationsFailed(chapter, failures)
    return {"trained": len(plan.networks), "trained_in_configs": trained_in_configs}


def _error_text(err: BaseException) -> str:
    cause = getattr(err, "cause", None)
    if isinstance(cause, BaseException):
        return "".join(traceback.format_exception_only(type(cause), cause))
    return "".join(traceback.format_exception_only(type(err), err))
