"""The cost of running a chapter through Ray instead of one configuration after another.

Runs the same shrunk quick-scale chapter twice in this process, from empty result and cache
folders: serially, then with ``executor="ray"`` on a local cluster of ``--cpus`` CPUs (its
start counted separately). Prints the wall times and the ratio ray / serial. On a machine with
as many cores as tasks the ratio is below 1 (tasks run side by side); with 2 cores and
one-thread tasks it shows what the scheduling, the object store and the worker start-up add.

    python benchmarks/ray_overhead.py --chapter 1 --cpus 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import minipruner as mp
from minipruner.book.chapters import chapter_module


def shrunk(chapter: int) -> dict:
    """The chapter's quick settings with two seeds and one-epoch trainings where it has them."""
    settings = chapter_module(chapter).settings("quick")
    out = {**settings, "seeds": settings["seeds"][:2]}
    for key in ("train", "retrain"):
        if isinstance(settings.get(key), dict) and "epochs" in settings[key]:
            out[key] = {**settings[key], "epochs": 1}
    if "sparsities" in settings:
        out["sparsities"] = settings["sparsities"][:1]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapter", type=int, default=1)
    parser.add_argument("--cpus", type=int, default=os.cpu_count())
    args = parser.parse_args()
    import ray

    settings = shrunk(args.chapter)
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for executor in ("serial", "ray"):
            os.environ["MINIPRUNER_CACHE"] = str(Path(tmp) / f"cache-{executor}")
            if executor == "ray":
                t0 = time.perf_counter()
                ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
                seconds["ray start"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            results = mp.reproduce(
                args.chapter,
                "quick",
                root=Path(tmp) / executor,
                settings=settings,
                quiet=True,
                executor=executor,
            )
            seconds[executor] = time.perf_counter() - t0
            print(
                f"{executor:6s}: {results.computed} configurations, {results.networks_trained} "
                f"shared networks, {seconds[executor]:.1f} s"
            )
        ray.shutdown()
    print(f"ray start: {seconds['ray start']:.1f} s (once per driver)")
    print(f"ratio ray / serial: {seconds['ray'] / seconds['serial']:.2f} on {args.cpus} CPUs")


if __name__ == "__main__":
    main()
