"""Inference latency of the dense, Fisher-pruned (compressed, and with masks only) and
uniformly reduced WRNs: chapter 5's latency configurations, run in this one process.

Crowley et al. (2019) ask whether a pruned network is faster than a reduced network of the
same size. Chapter 5 answers with :func:`minipruner.book.chapters.structured.run_latency`: for
each input setting (the 1-D WRN on MNIST-1D, and the same channel shapes as 2-D convolutions
on 28 x 28 inputs) and batch size, it times every network in interleaved rounds (warm-up,
repeated runs, the median per round, a fixed thread count). This script runs those same
configurations (at ``MINIPRUNER_SCALE``, default quick; the Fisher run of the first seed is
trained once and cached) and prints, per network, the median over rounds and its ratio to
the dense network measured in the same rounds, with the spread of that ratio over rounds.

Run: ``python benchmarks/latency.py [--rounds 5] [--repeats 10] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import os
import statistics

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import minipruner as mp  # noqa: E402
from minipruner.book.chapters import structured as chapter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None, help="default: the chapter's")
    parser.add_argument("--repeats", type=int, default=None, help="default: the chapter's")
    parser.add_argument("--threads", type=int, default=None, help="default: the chapter's")
    args = parser.parse_args()
    settings = chapter.settings(mp.get_scale())
    for key in ("rounds", "repeats", "threads"):
        if getattr(args, key) is not None:
            settings["latency"][key] = getattr(args, key)
    for name in chapter.latency_settings(settings):
        for batch in settings["latency"]["batch_sizes"]:
            record = chapter.run_latency(settings, name, batch)
            dense = record["rounds"]["dense"]
            print(f"\n{name}, batch {batch}, {record['threads']} thread(s), {record['device']}")
            for net in record["names"]:
                times = record["rounds"][net]
                ratios = [d / t for d, t in zip(dense, times, strict=True)]
                params, flops = record["counts"][net]
                print(
                    f"  {net:28s} {1e3 * statistics.median(times):8.3f} ms   "
                    f"speed-up vs dense {statistics.median(ratios):5.2f}x "
                    f"(rounds {min(ratios):.2f}-{max(ratios):.2f})   "
                    f"{params:>9,} params  {flops:>12,} FLOPs per example"
                )


if __name__ == "__main__":
    main()
