"""Measured speed of 2:4 sparsity: a linear layer with a 2:4 weight, run by PyTorch's
semi-structured sparse kernels, against the same layer dense, in the same process.

A 2:4 pattern keeps 2 of every 4 consecutive weights of a row (:func:`minipruner.nm_mask`), so
half the multiply-adds of ``y = x W^T`` are zero. GPUs of compute capability 8.0 and later
(Ampere, Hopper) store such a weight compressed (the kept values and 2-bit indices) and run
``x W^T`` on sparse tensor cores: ``torch.sparse.to_sparse_semi_structured(W)``. The most the
pattern can give is 2x on the matrix product; what it gives depends on the shapes, the dtype and
the kernel. This script measures it for the linear layers of the full-scale models of chapter 7
(GPT-2 small and OPT-125M: width 768, MLP width 3,072) at a few token counts, in interleaved
rounds (dense, sparse, dense, ...; the median of each round's repeats), and prints per shape the
median times and the ratio dense / sparse (above 1: the sparse layer is faster), with the ratio's
spread over rounds. It also checks that the sparse layer computes what the dense masked one does.

Elsewhere (a CPU, or an older GPU) nothing is measured: the script says why and exits 0.

Run: ``python benchmarks/semi_structured.py [--tokens 512 2048 8192] [--rounds 7] [--repeats 20]
[--dtype float16] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

import minipruner as mp  # noqa: E402

SHAPES = ((768, 768), (3072, 768), (768, 3072))
"""(out, in) of the linear layers of GPT-2 small / OPT-125M: attention projections, the MLP's
up-projection and its down-projection."""


def support() -> tuple[bool, str]:
    """Whether this machine runs semi-structured (2:4) sparse kernels, and a sentence saying
    which device was found: CUDA with compute capability >= 8.0 is needed."""
    if not torch.cuda.is_available():
        return False, f"no CUDA device (torch {torch.__version__}); 2:4 kernels need CUDA"
    major, minor = torch.cuda.get_device_capability()
    name = torch.cuda.get_device_name()
    if major < 8:
        return False, f"{name} has compute capability {major}.{minor}; 2:4 kernels need >= 8.0"
    return True, f"{name} (compute capability {major}.{minor}, torch {torch.__version__})"


def two_four_weight(out_features: int, in_features: int, seed: int = 0) -> torch.Tensor:
    """A random ``out x in`` weight pruned to 2:4 by magnitude along each row
    (:func:`minipruner.nm_mask` with n=2, m=4): exactly 2 nonzeros in every 4 consecutive
    entries of a row."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out_features, in_features, generator=g)
    return w * mp.nm_mask(w.abs(), 2, 4)


def _median_time(fn: Any, repeats: int) -> float:
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(
    shapes: Sequence[tuple[int, int]] = SHAPES,
    tokens: Sequence[int] = (512, 2048, 8192),
    dtype: torch.dtype = torch.float16,
    rounds: int = 7,
    repeats: int = 20,
) -> list[dict[str, Any]]:
    """Per (shape, token count): the median time of ``F.linear(x, W)`` dense and with ``W`` as a
    semi-structured sparse tensor, over ``rounds`` interleaved rounds of ``repeats`` calls, the
    ratio dense / sparse per round (median, min, max), and the largest difference between the
    two outputs relative to the largest dense output. Needs :func:`support`."""
    from torch.nn.functional import linear
    from torch.sparse import to_sparse_semi_structured

    ok, why = support()
    if not ok:
        raise RuntimeError(why)
    out = []
    for out_features, in_features in shapes:
        dense_w = two_four_weight(out_features, in_features).to("cuda", dtype)
        sparse_w = to_sparse_semi_structured(dense_w)
        for n in tokens:
            x = torch.randn(n, in_features, device="cuda", dtype=dtype)
            ref = linear(x, dense_w)
            err = float((linear(x, sparse_w) - ref).abs().max() / ref.abs().max())
            ratios, dense_t, sparse_t = [], [], []
            for _ in range(rounds):
                td = _median_time(lambda: linear(x, dense_w), repeats)  # noqa: B023
                ts = _median_time(lambda: linear(x, sparse_w), repeats)  # noqa: B023
                dense_t.append(td)
                sparse_t.append(ts)
                ratios.append(td / ts)
            out.append(
                {
                    "out": out_features,
                    "in": in_features,
                    "tokens": n,
                    "dtype": str(dtype).removeprefix("torch."),
                    "dense_ms": 1e3 * statistics.median(dense_t),
                    "sparse_ms": 1e3 * statistics.median(sparse_t),
                    "speedup": statistics.median(ratios),
                    "speedup_min": min(ratios),
                    "speedup_max": max(ratios),
                    "relative_error": err,
                }
            )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[512, 2048, 8192])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--dtype", choices=["float16", "bfloat16"], default="float16")
    parser.add_argument("--json", default=None, help="also write the records to this file")
    args = parser.parse_args(argv)
    if min(args.tokens) < 1 or args.rounds < 1 or args.repeats < 1:
        parser.error("--tokens, --rounds and --repeats must be positive")
    ok, device = support()
    if not ok:
        print(f"2:4 speed not measured: {device}.")
        return 0
    records = measure(
        tokens=args.tokens,
        dtype=getattr(torch, args.dtype),
        rounds=args.rounds,
        repeats=args.repeats,
    )
    print(f"device: {device}")
    print(f"{'out x in':>12} {'tokens':>7} {'dense ms':>9} {'2:4 ms':>9} {'dense/2:4':>10} (range)")
    for r in records:
        print(
            f"{r['out']:>5} x {r['in']:<5} {r['tokens']:>7} {r['dense_ms']:>9.3f} "
            f"{r['sparse_ms']:>9.3f} {r['speedup']:>10.2f} "
            f"({r['speedup_min']:.2f}-{r['speedup_max']:.2f}), rel. error {r['relative_error']:.1e}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device, "records": records}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
