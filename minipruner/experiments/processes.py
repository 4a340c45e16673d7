"""Run a plan in several worker processes on this machine, one configuration per worker at a time.

A chapter's configurations are independent, so on a machine with ``W`` cores ``W`` processes,
each with its own torch thread count (one by default), run them side by side. Every
configuration then computes exactly what the serial executor computes for it (same seeds, same
thread count, its own process), so the stored results are the same bit for bit; only the wall
time changes. :func:`run_processes` runs the plan (:mod:`minipruner.experiments.plan`) as one
list of tasks, each started as soon as what it needs has finished:

1. the shared networks, one task each (each trained once, into the network cache);
2. the shared runs, one task each, after the networks of their seed (each cached by its
   chapter on disk);
3. the configurations, after the networks and shared runs of their seed (all of them for a
   configuration without a seed). A free worker takes shared work first (it unblocks the
   rest); of the configurations it takes one of the seed it ran last while one is left, else
   one of a seed no other worker is on (:func:`next_task`). A chapter that keeps a seed's work
   in memory between its configurations (chapter 4's gradients and Fisher) then computes it
   about once per seed, as the serial executor does.

Configurations whose ``"experiment"`` the chapter lists in ``TIMED`` (timings, which another
process on the next core would disturb) run after the others, one at a time, with no other
work beside them. A configuration that fails is reported with its settings and traceback after
the others have finished and been stored.

The workers are fresh interpreters (no OpenMP state copied from a parent that has already run
torch, and no rerun of the caller's script, as ``multiprocessing``'s spawn would do) that
inherit the environment (``MINIPRUNER_CACHE``, ``OMP_WAIT_POLICY``, ...) and ``sys.path``.
"""

from __future__ import annotations

import importlib
import os
import subprocess
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


def _serve() -> None:
    """The worker process's loop (``python -c "...; _serve()"``): read its set-up, then run
    each task it receives and answer it, until it receives ``None``. Tasks and answers travel
    as pickles over the process's standard input and a copy of its standard output; the
    output itself goes to standard error, so a stray print cannot corrupt the channel."""
    tx = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)
    rx = Connection(0, writable=False)
    threads, path = rx.recv()
    sys.path[:] = path
    if threads is not None:
        torch.set_num_threads(threads)
    while True:
        try:
            task = rx.recv()
        except EOFError:  # the parent is gone
            break
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
            tx.send(("ok", out))
        except BaseException:  # reported by the parent with the task's settings
            tx.send(("error", traceback.format_exc()))


_NO_SEED = object()  # the last seed of a worker that has run nothing yet


def next_task(seeds: list[Any], mine: Any, taken: set[Any]) -> int:
    """Which of the pending tasks (their ``seeds``, in the chapter's order) a free worker
    runs next: the first of the seed it ran last (``mine``), else the first of a seed no
    busy worker is on (``taken``), else the first (a seed another worker is on: better than
    idling when the chapter keeps nothing of a seed in memory)."""
    for preferred in (lambda s: s == mine, lambda s: s not in taken, lambda s: True):
        for i, s in enumerate(seeds):
            if preferred(s):
                return i
    raise ValueError("no pending task")


class _Worker:
    """One worker process, a fresh interpreter started with ``python -c`` (not
    ``multiprocessing``'s spawn, which would rerun a calling script that has no
    ``if __name__ == "__main__"`` guard), and its two pipes."""

    def __init__(self, threads: int | None) -> None:
        code = "from minipruner.experiments.processes import _serve; _serve()"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.tx = Connection(os.dup(self.proc.stdin.fileno()), readable=False)
        self.rx = Connection(os.dup(self.proc.stdout.fileno()), writable=False)
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.tx.send((threads, list(sys.path)))

    def close(self, now: bool = False) -> None:
        """Stop the worker: after its current task (``now=False``: it is sent ``None``), or
        at once (``now=True``: killed, as when the caller is interrupted)."""
        if not now:
            try:
                self.tx.send(None)
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                now = True
        if now:
            self.proc.kill()
            self.proc.wait()
        self.tx.close()
        self.rx.close()


class _Pool:
    """``workers`` worker processes."""

    def __init__(self, workers: int, threads: int | None) -> None:
        self.workers = [_Worker(threads) for _ in range(workers)]
        self.dead: set[_Worker] = set()

    def close(self, now: bool = False) -> None:
        for worker in self.workers:
            worker.close(now)

    def run(
        self,
        tasks: list[tuple[str, str, dict[str, Any], dict[str, Any]]],
        done: Callable[[int, Any], None],
        *,
        seeds: list[Any],
        needs: list[list[int]] | None = None,
        width: int | None = None,
    ) -> list[tuple[int, str]]:
        """Run ``tasks`` on at most ``width`` workers (all by default); ``done(i, out)`` for
        each finished task. Task ``i`` belongs to seed ``seeds[i]`` and starts only after the
        tasks ``needs[i]`` have finished; of the tasks that may start, a free worker takes the
        first one with no seed's work before it (shared work, which unblocks the rest), else
        one by :func:`next_task`. Returns the failures as ``(i, traceback)``; a task whose
        needed task failed fails without running."""
        workers = [w for w in self.workers if w not in self.dead][: width or len(self.workers)]
        needs = needs or [[] for _ in tasks]
        pending = list(range(len(tasks)))
        finished: set[int] = set()
        busy: dict[_Worker, int] = {}
        last: dict[_Worker, Any] = {}
        failures: list[tuple[int, str]] = []
        failed: set[int] = set()

        def assign(worker: _Worker) -> bool:
            for i in [i for i in pending if failed.intersection(needs[i])]:
                pending.remove(i)  # what it needs failed: it fails too
                failed.add(i)
                failures.append((i, f"not run: it needs {tasks[needs[i][0]][3]}, which failed"))
            ready = [i for i in pending if finished.issuperset(needs[i])]
            if not ready:
                return False
            shared = [i for i in ready if tasks[i][0] != "config"]
            if shared:
                i = shared[0]
            else:
                taken = {seeds[j] for j in busy.values()}
                mine = last.get(worker, _NO_SEED)
                i = ready[next_task([seeds[j] for j in ready], mine, taken)]
            pending.remove(i)
            busy[worker] = i
            last[worker] = seeds[i]
            worker.tx.send(tasks[i])
            return True

        idle = list(workers)
        while pending or busy:
            while idle and pending and assign(idle[0]):
                idle.pop(0)
            if not busy:  # nothing running and nothing can start: every worker died
                failures += [(i, "no worker process left to run it") for i in pending]
                break
            by_pipe = {w.rx: w for w in busy}
            for rx in wait(list(by_pipe)):
                worker = by_pipe[rx]  # type: ignore[index]
                i = busy.pop(worker)
                try:
                    status, out = worker.rx.recv()
                except (EOFError, OSError):  # the worker is gone: its task fails, it gets no other
                    status, out = "died", "the worker process died (out of memory?)"
                if status == "ok":
                    finished.add(i)
                    done(i, out)
                else:
                    failed.add(i)
                    failures.append((i, out))
                if status == "died":
                    self.dead.add(worker)
                else:
                    idle.append(worker)
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
    threads: its networks, shared runs and configurations, each as soon as what it needs has
    finished (the module docstring), calling ``store(i, result)`` for ``plan.configs[i]`` as
    soon as it finishes. Returns the counts ``reproduce`` records (as
    :func:`minipruner.book.runner.run_serial`). Raises
    :class:`~minipruner.experiments.cluster.ConfigurationsFailed` (as the Ray executor does)
    naming every configuration that failed, after the others are stored; a network or shared
    run that fails raises ``RuntimeError`` naming it, after the configurations that did not
    need it are stored."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    chapter, settings = plan.chapter, plan.settings
    timed = set(getattr(plan.module, "TIMED", ()))
    side_by_side = [i for i, c in enumerate(plan.configs) if c.get("experiment") not in timed]
    alone = [i for i, c in enumerate(plan.configs) if c.get("experiment") in timed]
    # one list of tasks: the networks, the shared runs (after their seed's networks), the
    # configurations (after their seed's networks and runs; Plan.needs)
    shared = [("network", n) for n in plan.networks] + [("run", r) for r in plan.runs]
    tasks = [(kind, chapter, settings, item) for kind, item in shared]
    seeds = [item.get("seed") for _, item in shared]
    needs = [
        [j for j in range(len(plan.networks)) if Plan.needs(seeds[k], seeds[j])]
        if kind == "run"
        else []
        for k, (kind, _) in enumerate(shared)
    ]
    for i in side_by_side:
        tasks.append(("config", chapter, settings, plan.configs[i]))
        seeds.append(plan.configs[i].get("seed"))
        needs.append([j for j in range(len(shared)) if Plan.needs(seeds[-1], seeds[j])])
    n_workers = min(workers, max(len(tasks), 1))
    pool = _Pool(n_workers, threads)
    failed: list[tuple[int, str]] = []
    try:
        work = tqdm(
            total=len(shared),
            desc="networks and shared runs",
            disable=quiet or not shared,
            leave=False,
        )
        bar = tqdm(total=len(plan.configs), desc=desc or chapter, disable=quiet, unit="config")
        with work, bar:

            def finished(k: int, out: Any) -> None:
                if k < len(shared):
                    work.update(1)
                else:
                    store(side_by_side[k - len(shared)], out)
                    bar.update(1)

            for k, trace in pool.run(tasks, finished, seeds=seeds, needs=needs):
                if k < len(shared):
                    kind, item = shared[k]
                    raise RuntimeError(f"{chapter}: {kind} {item} failed:\n{trace}")
                failed.append((side_by_side[k - len(shared)], trace))
                bar.update(1)
            if alone:  # what measures time: one at a time, nothing beside it
                tasks = [("config", chapter, settings, plan.configs[i]) for i in alone]

                def stored(j: int, out: Any) -> None:
                    store(alone[j], out)
                    bar.update(1)

                seeds = [plan.configs[i].get("seed") for i in alone]
                for j, trace in pool.run(tasks, stored, seeds=seeds, width=1):
                    failed.append((alone[j], trace))
                    bar.update(1)
    except BaseException:  # an interrupt (or a failed network): stop the workers at once
        pool.close(now=True)
        raise
    pool.close()
    if failed:
        raise ConfigurationsFailed(
            chapter, [Failure(dict(plan.configs[i]), trace) for i, trace in sorted(failed)]
        )
    return {"trained": len(plan.networks), "trained_in_configs": 0}
