"""Run a plan in several worker processes on this machine, one configuration per worker at a time.

A chapter's configurations are independent, so on a machine with ``W`` cores ``W`` processes,
each with its own torch thread count (one by default), run them side by side. Every
configuration then computes exactly what the serial executor computes for it (same seeds, same
thread count, its own process), so the stored results are the same bit for bit; only the wall
time changes. :func:`run_processes` follows the plan (:mod:`minipruner.experiments.plan`) in
three phases, each finished before the next starts:

1. the shared networks, one task each (each trained once, into the network cache);
2. the shared runs, one task each (each cached by its chapter on disk);
3. the configurations, handed to the workers by seed: a worker that finished a configuration
   of seed ``s`` gets another of ``s`` while one is left, else one of a seed no other worker is
   on. A chapter that keeps a seed's work in memory between its configurations (chapter 4's
   gradients and Fisher) then computes it about once per seed, as the serial executor does.

Configurations whose ``"experiment"`` the chapter lists in ``TIMED`` (timings, which another
process on the next core would disturb) run after the others, one at a time, with no other
work beside them. A configuration that fails is reported with its settings and traceback after
the others have finished and been stored.

The workers are started with ``spawn`` (a fresh interpreter: no OpenMP state copied from a
parent that has already run torch) and inherit the environment (``MINIPRUNER_CACHE``,
``OMP_WAIT_POLICY``, ...) and ``sys.path``.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import sys
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

import torch
from tqdm import tqdm

from .cluster import ConfigurationsFailed, Failure
from .plan import Plan
from .protocol import run_one, run_shared, train_network


def usable_cores() -> int:
    """The number of CPU cores this process may run on (``os.sched_getaffinity`` where the
    platform has it, else ``os.cpu_count()``)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _worker(conn: Connection, threads: int | None, path: list[str]) -> None:
    # One worker process: run each task it receives until it receives None.
    sys.path[:] = path
    if threads is not None:
        torch.set_num_threads(threads)
    while True:
        task = conn.recv()
        if task is None:
            break
        kind, chapter, settings, item = task
        try:
            out = None
            if kind == "network":
                train_network(item)
            elif kind == "run":
                run_shared(importlib.import_module(chapter), settings, item)
            else:
                out = run_one(importlib.import_module(chapter), item, settings)
            conn.send(("ok", out))
        except BaseException:  # reported by the parent with the task's settings
            conn.send(("error", traceback.format_exc()))
    conn.close()


class _Pool:
    """``workers`` worker processes, each reached through one pipe."""

    def __init__(self, workers: int, threads: int | None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.dead: set[Connection] = set()
        self.procs = []
        for _ in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, threads, list(sys.path)), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def close(self) -> None:
        for conn, proc in zip(self.conns, self.procs, strict=True):
            try:
                conn.send(None)
            except OSError:
                pass
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
            conn.close()

    def run(
        self,
        tasks: list[tuple[str, str, dict[str, Any], dict[str, Any]]],
        done: Callable[[int, Any], None],
        bar: tqdm | None = None,
        width: int | None = None,
    ) -> list[tuple[int, str]]:
        """Run ``tasks`` on at most ``width`` workers (all by default), keeping each worker on
        one seed while that seed has tasks left; ``done(i, out)`` for each finished task.
        Returns the failures as ``(i, traceback)``."""
        conns = [c for c in self.conns if c not in self.dead][: width or len(self.conns)]
        pending = list(range(len(tasks)))
        busy: dict[Connection, int] = {}
        last: dict[Connection, Any] = {}
        failures: list[tuple[int, str]] = []

        def seed(i: int) -> Any:
            return tasks[i][3].get("seed")

        def pick(conn: Connection) -> int:
            same = [i for i in pending if conn in last and seed(i) == last[conn]]
            if same:
                return same[0]
            taken = {seed(i) for i in busy.values()}
            free = [i for i in pending if seed(i) not in taken]
            return (free or pending)[0]

        def assign(conn: Connection) -> None:
            i = pick(conn)
            pending.remove(i)
            busy[conn] = i
            last[conn] = seed(i)
            conn.send(tasks[i])

        for conn in conns:
            if pending:
                assign(conn)
        while busy:
            for conn in wait(list(busy)):
                i = busy.pop(conn)  # type: ignore[call-overload]
                try:
                    status, out = conn.recv()  # type: ignore[union-attr]
                except EOFError:  # the worker is gone: its task fails, it gets no other
                    status, out = "died", "the worker process died (out of memory?)"
                if status == "ok":
                    done(i, out)
                else:
                    failures.append((i, out))
                if bar is not None:
                    bar.update(1)
                if status == "died":
                    self.dead.add(conn)  # type: ignore[arg-type]
                elif pending:
                    assign(conn)  # type: ignore[arg-type]
            if pending and not busy:  # every worker it had died
                failures += [(i, "no worker process left to run it") for i in pending]
                pending.clear()
        return failures


def run_processes(
    plan: Plan,
    store: Callable[[int, dict[str, Any]], None],
    *,
    workers: int,
    threads: int | None = 1,
    quiet: bool = False,
    desc: str | None = None,
) -> dict[str, int]:
    """Run ``plan`` in ``workers`` processes on this machine, each with ``threads`` torch
    threads: its networks, then its shared runs, then its configurations (the module
    docstring), calling ``store(i, result)`` for ``plan.configs[i]`` as soon as it finishes.
    Returns the counts ``reproduce`` records (as :func:`minipruner.book.runner.run_serial`).
    Raises :class:`~minipruner.experiments.cluster.ConfigurationsFailed` (as the Ray executor
    does) naming every configuration that failed, after the others are stored; a network or
    shared run that fails raises ``RuntimeError`` before any configuration runs."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    chapter, settings = plan.chapter, plan.settings
    timed = set(getattr(plan.module, "TIMED", ()))
    side_by_side = [i for i, c in enumerate(plan.configs) if c.get("experiment") not in timed]
    alone = [i for i, c in enumerate(plan.configs) if c.get("experiment") in timed]
    pool = _Pool(
        min(workers, max(len(plan.networks), len(plan.runs), len(plan.configs), 1)), threads
    )
    try:
        for kind, items, what in (
            ("network", plan.networks, "networks"),
            ("run", plan.runs, "shared runs"),
        ):
            if not items:
                continue
            tasks = [(kind, chapter, settings, item) for item in items]
            with tqdm(total=len(tasks), desc=what, disable=quiet, leave=False) as bar:
                failures = pool.run(tasks, lambda i, out: None, bar)
            if failures:
                i, trace = failures[0]
                raise RuntimeError(f"{chapter}: {what[:-1]} {items[i]} failed:\n{trace}")
        failed: list[tuple[int, str]] = []
        with tqdm(
            total=len(plan.configs), desc=desc or chapter, disable=quiet, unit="config"
        ) as bar:
            for group, width in ((side_by_side, None), (alone, 1)):
                tasks = [("config", chapter, settings, plan.configs[i]) for i in group]
                failures = pool.run(tasks, lambda j, out, g=group: store(g[j], out), bar, width)
                failed += [(group[j], trace) for j, trace in failures]
    finally:
        pool.close()
    if failed:
        raise ConfigurationsFailed(
            chapter, [Failure(dict(plan.configs[i]), trace) for i, trace in sorted(failed)]
        )
    return {"trained": len(plan.networks), "trained_in_configs": 0}
