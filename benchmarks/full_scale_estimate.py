"""Estimate each chapter's full-scale wall time on 1, 8 and 32 workers (GPUs) from the count
of its tasks and training steps and the measured time of one training step.

    python benchmarks/full_scale_estimate.py                 # every chapter, this device
    python benchmarks/full_scale_estimate.py --chapters 3 5 --workers 1 8 32

The model (state it with every number it prints):

* A chapter at a scale is a list of tasks, as ``reproduce(..., executor="ray")`` submits
  them: the networks it declares (``trained_networks``), its shared runs (``shared_runs``,
  chapter 5's pruning runs) and its configurations. A shared run waits for the networks of
  its seed, a configuration for the networks and shared runs of its seed (all of them if it
  has none), as in ``cluster.run_plan``.
* A task's trainings are what the chapter declares as its full-scale cost beside
  ``trained_networks`` and ``shared_runs``: ``config_trainings`` for a configuration,
  ``shared_run_trainings`` for a shared run (see :class:`minipruner.experiments.protocol.Chapter`).
* A task's time is the sum over its trainings of ``steps x t_step``, where ``steps`` comes
  from the chapter's settings (``iterations``, or ``epochs x ceil(N_train / batch)``) and
  ``t_step`` is measured here: forward, backward and an SGD step of that network on a
  random batch of its batch size, on this device (median of ``--repeats`` steps after
  ``--warmup``). Evaluation, pruning scores, Fisher matrices and CBS searches are not
  counted, so the estimate is a lower bound where they matter: chapter 4's one-shot
  configurations are not training at all, and chapter 3's GraSP scores need a
  Hessian-gradient product per mask. Chapter 3's configurations that empty a layer of
  VGG-19 are recorded untrained; all of them are counted as trained (an upper bound there).
  Chapter 5's networks trained from scratch are counted at the full WRN-40-2's step time
  (they are narrower: an upper bound).
* ``k`` workers run the tasks in submission order: each free worker takes the first task
  whose dependencies are done (list scheduling). One worker is the serial path.

Run it on the GPU a full-scale run would use: the step times, and so the hours, are this
device's. The ratios between 1, 8 and 32 workers depend only on the counts and the relative
step times.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from minipruner.book.chapters import CHAPTERS, chapter_module, chapter_name
from minipruner.core.models import VGG, get_model
from minipruner.core.train import TRAIN_DEFAULTS, default_device
from minipruner.experiments.protocol import (
    config_trainings,
    shared_networks,
    shared_run_trainings,
    shared_runs,
)

TRAIN_SIZE = {"mnist": 60_000, "cifar10": 50_000, "mnist1d": 4_000, "mnist-5k": 4_000}
INPUT = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32), "mnist1d": (1, 40), "mnist-5k": (1, 28, 28)}
CLASSES = 10


@dataclass(frozen=True)
class Net:
    """One network at one batch size: what a training step's time depends on."""

    model: str
    kwargs: str  # JSON of the constructor's keyword arguments
    dataset: str
    batch_size: int

    def build(self) -> nn.Module:
        kwargs = json.loads(self.kwargs)
        if "input_shape" in kwargs:
            kwargs["input_shape"] = tuple(kwargs["input_shape"])
        return VGG(**kwargs) if self.model == "vgg" else get_model(self.model, **kwargs)

    def label(self) -> str:
        extra = json.loads(self.kwargs)
        shown = {k: v for k, v in extra.items() if k in ("depth", "widen", "width")}
        args = ", ".join(f"{k}={v}" for k, v in shown.items())
        return f"{self.model}({args}) on {self.dataset}, batch {self.batch_size}"


@dataclass
class Task:
    kind: str  # "network", "shared" or "config"
    seed: int | None
    work: list[tuple[Net, int]]  # (network, training steps)
    deps: list[int] = field(default_factory=list)


def steps(train: dict[str, Any], dataset: str) -> int:
    """Training steps of one ``train(...)`` call with these settings."""
    if train.get("iterations"):
        return int(train["iterations"])
    batch = train.get("batch_size", TRAIN_DEFAULTS["batch_size"])
    return int(train.get("epochs", TRAIN_DEFAULTS["epochs"])) * math.ceil(
        TRAIN_SIZE[dataset] / batch
    )


def net(model: str, kwargs: dict[str, Any] | None, dataset: str, train: dict[str, Any]) -> Net:
    batch = train.get("batch_size", TRAIN_DEFAULTS["batch_size"])
    return Net(model, json.dumps(kwargs or {}, sort_keys=True), dataset, int(batch))


def trained_work(model: str, kwargs: dict | None, dataset: str, train: dict) -> list:
    return [(net(model, kwargs, dataset, train), steps(train, dataset))]


def declared_work(trainings: list[dict[str, Any]]) -> list:
    """The (network, training steps) pairs of trainings a chapter declares
    (:func:`minipruner.experiments.protocol.training`): its own step count where it states one,
    else the count its training settings imply (:func:`steps`)."""
    out = []
    for t in trainings:
        item = net(t["model"], t.get("model_kwargs"), t["dataset"], t["train"])
        n = t["steps"] if t.get("steps") is not None else steps(t["train"], t["dataset"])
        out.append((item, n))
    return out


def tasks(name: str, scale: str) -> list[Task]:
    """The chapter's tasks in submission order, with their dependencies."""
    module = chapter_module(name)
    settings = module.settings(scale)
    out: list[Task] = []
    for args in shared_networks(module, settings):
        train = {k: v for k, v in args.items() if k in TRAIN_DEFAULTS}
        work = trained_work(args["model"], args.get("model_kwargs"), args["dataset"], train)
        out.append(Task("network", args["seed"], work))
    networks = list(range(len(out)))
    for run in shared_runs(module, settings):
        deps = [i for i in networks if run["seed"] in (out[i].seed, None)]
        work = declared_work(shared_run_trainings(module, settings, run))
        out.append(Task("shared", run["seed"], work, deps))
    shared = list(range(len(out)))
    for config in module.configurations(settings):
        deps = [i for i in shared if config.get("seed") in (out[i].seed, None)]
        work = declared_work(config_trainings(module, settings, config))
        out.append(Task("config", config.get("seed"), work, deps))
    return out


# ------------------------------------------------------------------------ measure, schedule


def step_time(item: Net, device: torch.device, warmup: int, repeats: int) -> float:
    """Median seconds of one SGD training step of ``item`` on a random batch."""
    model = item.build().to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(item.batch_size, *INPUT[item.dataset], device=device)
    y = torch.randint(0, CLASSES, (item.batch_size,), device=device)
    times = []
    for i in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def wall_time(durations: list[float], deps: list[list[int]], workers: int) -> float:
    """List scheduling: each free worker takes the first task (in order) whose dependencies
    have finished; the time the last task finishes."""
    finish: dict[int, float] = {}
    waiting = list(range(len(durations)))
    free = [(0.0, w) for w in range(workers)]
    heapq.heapify(free)
    while waiting:
        now, w = heapq.heappop(free)
        ready = [i for i in waiting if all(d in finish and finish[d] <= now for d in deps[i])]
        if not ready:  # idle until the next task finishes somewhere
            later = [t for t in finish.values() if t > now]
            if not later:
                raise ValueError("a task depends on one that never runs")
            heapq.heappush(free, (min(later), w))
            continue
        i = ready[0]
        waiting.remove(i)
        finish[i] = now + durations[i]
        heapq.heappush(free, (finish[i], w))
    return max(finish.values(), default=0.0)


def hours(seconds: float) -> str:
    return f"{seconds / 3600:,.1f} h" if seconds >= 360 else f"{seconds / 60:,.1f} min"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chapters", nargs="*", type=int, default=None, help="default: all")
    parser.add_argument("--scale", default="full", choices=("quick", "full"))
    parser.add_argument("--workers", nargs="*", type=int, default=[1, 8, 32])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads on a CPU")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = default_device()
    names = [chapter_name(n) for n in args.chapters] if args.chapters else list(CHAPTERS)
    plans = {name: tasks(name, args.scale) for name in names}
    nets = sorted({item for plan in plans.values() for t in plan for item, _ in t.work}, key=str)
    kind = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {device} ({kind}),")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; scale {args.scale}\n")
    print("| network | seconds per training step |\n|---|---|")
    per_step = {}
    for item in nets:
        per_step[item] = step_time(item, device, args.warmup, args.repeats)
        print(f"| {item.label()} | {per_step[item]:.4f} |", flush=True)
    head = " | ".join(f"{k} worker{'s' if k > 1 else ''}" for k in args.workers)
    columns = "networks | shared runs | configurations (training) | training steps"
    print(f"\n| chapter | {columns} | {head} | critical path |")
    print("|---" * (6 + len(args.workers)) + "|")
    for name, plan in plans.items():
        durations = [sum(n * per_step[item] for item, n in t.work) for t in plan]
        deps = [t.deps for t in plan]
        count = {
            kind: sum(t.kind == kind for t in plan) for kind in ("network", "shared", "config")
        }
        training = sum(bool(t.work) for t in plan if t.kind == "config")
        total_steps = sum(n for t in plan for _, n in t.work)
        walls = " | ".join(hours(wall_time(durations, deps, k)) for k in args.workers)
        critical = hours(wall_time(durations, deps, len(plan)))  # a worker for every task
        print(
            f"| {name} | {count['network']} | {count['shared']} | {count['config']} ({training}) "
            f"| {total_steps:,} | {walls} | {critical} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
