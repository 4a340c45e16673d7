"""Inverse of the damped empirical Fisher at MLPNet size: direct route vs Woodbury recursion.

``H = damp I + G^T G / N`` with ``G`` the ``N x d`` per-sample gradients of MLPNet
(784-40-20-10, no bias, d = 32,360) trained on mnist-5k as in chapter 4 (SGD lr 0.05,
momentum 0.9, 30 epochs). For each ``N`` it times, in one process and one dtype:

* ``woodbury``: WoodFisher's recursion, one rank-one update of a d x d matrix per gradient
  (:func:`minipruner.methods.obs.woodbury_inverse`);
* ``direct``: the push-through identity ``(I - G^T (N damp I + G G^T)^-1 G) / damp``, the
  full d x d inverse (:func:`minipruner.methods.obs.fisher_inverse`, route ``"direct"``);
* ``diag`` and ``solve``: ``diag(H^-1)`` and ``H^-1 v`` by the same identity without any
  d x d matrix (:class:`minipruner.methods.obs.DampedFisher`, set-up included),

and the largest absolute difference of each against the Woodbury result. When ``N`` is
larger than ``--max-updates`` the recursion is run for its first ``k = --max-updates``
gradients only (``H_k = damp I + G_k^T G_k / N``, the rows shuffled first, seeded, so
that they are a random sample): its time is extrapolated linearly to ``N`` (each update
costs the same; the first, which also allocates the d x d matrix, is timed apart) and
marked as such, and the differences are measured on that ``H_k``, for which every route
is recomputed. Beyond the 4,000 training images, ``G`` uses copies shifted by one pixel;
the network has not memorised those, so their gradients are far larger and the Fisher's
scale (and a relative ``damp``) grows with ``N`` past 4,000.

With ``--steps`` it instead times each step of chapter 4's Fisher on its own quick-scale
network and gradients (N = 4,000, d = 32,360, float64) and prints, for each, the ratio of
its time to the roofline bound ``max(flops / R, bytes / B)``, where ``R`` (GEMM rate) and
``B`` (memory bandwidth) are measured in the same run: ``G G^T`` (one triangle, banded),
the ``N x N`` Cholesky, ``L^-1 G``, ``eigh`` of ``G G^T``, ``Q^T G``, ``diag(H^-1)`` for a
new damping from the spectrum, and one CBS-S swap iteration from the magnitude start at
90 %. A ratio of 1 is the machine's limit for that step.

Run: ``python benchmarks/fisher_inverse.py [--n 1000 10000] [--max-updates 1000]`` or
``python benchmarks/fisher_inverse.py --steps [--threads 1]``.
Peak memory about 14 GB in float32 (two d x d matrices of 4.2 GB and temporaries).
Cost on one CPU thread: about 12 minutes for N = 1,000, 20 for N = 10,000 with 300 updates.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import time
from collections.abc import Callable
from typing import TypeVar

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

import minipruner as mp  # noqa: E402
from minipruner.methods import obs  # noqa: E402

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``(fn(), seconds)``."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def max_abs_diff(a: torch.Tensor, b: torch.Tensor, rows: int = 2048) -> float:
    """max |a - b| in row chunks, so that no third d x d matrix is allocated."""
    return max(
        float((a[i : i + rows] - b[i : i + rows]).abs().max()) for i in range(0, len(a), rows)
    )


def gradients(n: int, seed: int) -> tuple[torch.Tensor, int]:
    train, _ = mp.load_dataset("mnist-5k")
    x, y = train.tensors[0], train.tensors[1]
    mp.seed_everything(seed)
    model = mp.get_model("mlpnet")
    mp.train(
        model, train, epochs=30, lr=0.05, momentum=0.9, batch_size=128, quiet=True, device="cpu"
    )
    shifts = [(0, 0), (0, 1), (1, 0), (0, -1), (-1, 0)]
    copies = math.ceil(n / len(x))
    if copies > len(shifts):
        raise SystemExit(f"at most {len(shifts) * len(x)} gradients available, asked for {n}")
    xs = torch.cat([torch.roll(x, s, dims=(2, 3)) for s in shifts[:copies]])[:n]
    ys = y.repeat(copies)[:n]
    g = obs.per_sample_grads(model, xs, ys, chunk_size=1000)
    return g, sum(p.numel() for p in mp.prunable(model).values())


def run(n: int, args: argparse.Namespace) -> list[list[str]]:
    dtype = getattr(torch, args.dtype)
    grads, d = gradients(n, args.seed)
    grads = grads.to(dtype)
    lam = obs.absolute_damp(grads, args.damp, relative=not args.absolute)
    v = torch.randn(d, generator=torch.Generator().manual_seed(0), dtype=dtype)
    print(
        f"\nN = {n:,}, d = {d:,}, dtype {args.dtype}, damp = {lam:.3e} "
        f"({'absolute' if args.absolute else f'{args.damp:g} x mean diag(F)'})",
        flush=True,
    )

    direct, t_direct = timed(lambda: obs.fisher_inverse(grads, lam, route="direct"))
    print(f"  direct   {t_direct:9.1f} s", flush=True)
    diag, t_diag = timed(lambda: obs.DampedFisher(grads, lam).diag_inverse())
    print(f"  diag     {t_diag:9.2f} s", flush=True)
    solve, t_solve = timed(lambda: obs.DampedFisher(grads, lam).solve(v))
    print(f"  solve    {t_solve:9.3f} s", flush=True)

    k = min(n, args.max_updates)
    if k < n:  # compare on H_k = lam I + G_k^T G_k / N: scale G_k so that route 'direct' sees it
        del direct
        # a seeded random sample of the rows, not just the first (unshifted) images
        grads = grads[torch.randperm(n, generator=torch.Generator().manual_seed(args.seed))]
        sub = grads[:k] * math.sqrt(k / n)
        direct = obs.fisher_inverse(sub, lam, route="direct")
        diag = obs.DampedFisher(sub, lam).diag_inverse()
        solve = obs.DampedFisher(sub, lam).solve(v)
    if k < n:  # first update (with allocating the d x d matrix) timed apart, for extrapolating
        t_1 = timed(lambda: obs.woodbury_inverse(grads[:1], lam, scale_n=n))[1]
    wood, t_k = timed(lambda: obs.woodbury_inverse(grads[:k], lam, scale_n=n))
    t_wood = t_k if k == n else t_1 + (t_k - t_1) * (n - 1) / (k - 1)
    print(f"  woodbury {t_k:9.1f} s for {k:,} of {n:,} updates ({t_k / k:.2f} s each)", flush=True)

    wv = wood @ v
    diffs = {  # (max |difference|, max |Woodbury value|)
        "direct": (max_abs_diff(direct, wood), float(wood.abs().max())),
        "diag": (float((diag - wood.diagonal()).abs().max()), float(wood.diagonal().abs().max())),
        "solve": (float((solve - wv).abs().max()), float(wv.abs().max())),
    }
    del direct, wood
    mark = "" if k == n else "*"
    rows = [[f"woodbury (rank-one x {n:,})", f"{n:,}", f"{t_wood:.1f}{mark}", "1", "-", "-"]]
    for name, label, t in (
        ("direct", "direct: push-through H^-1", t_direct),
        ("diag", "push-through diag(H^-1)", t_diag),
        ("solve", "push-through H^-1 v", t_solve),
    ):
        diff, ref = diffs[name]
        rows.append(
            [label, f"{n:,}", f"{t:.3g}", f"{t_wood / t:,.0f}{mark}"]
            + [f"{diff:.2e}{mark}", f"{diff / ref:.1e}{mark}"]
        )
    if k < n:
        print(
            f"  * woodbury time extrapolated from {k:,} measured updates ({t_k:.1f} s); "
            f"differences measured on H_k with the first {k:,} gradients",
            flush=True,
        )
    return rows


def gemm_rate(dtype: torch.dtype, size: int = 2048, repeats: int = 3) -> float:
    """This machine's matrix-multiply rate (flop/s): ``2 size^3`` flops, best of ``repeats``."""
    a = torch.randn(size, size, dtype=dtype)
    best = min(timed(lambda: a @ a)[1] for _ in range(repeats))
    return 2 * size**3 / best


def bandwidth(dtype: torch.dtype, numel: int = 1 << 25, repeats: int = 3) -> float:
    """Memory bandwidth (bytes/s) of reading a large vector once (a sum), best of
    ``repeats``: the bound for the steps that stream ``G`` or ``Q^T G``."""
    a = torch.randn(numel, dtype=dtype)
    best = min(timed(lambda: a.sum())[1] for _ in range(repeats))
    return numel * a.element_size() / best


def steps(args: argparse.Namespace) -> None:
    """Time each step of chapter 4's Fisher against the roofline of this machine."""
    from minipruner.book.chapters import obs as chapter
    from minipruner.methods import cbs, fisher, fisher_spectrum

    settings = chapter.settings("quick")
    p = chapter.prepared(settings, "mlpnet", settings["seeds"][0])
    g, w = p.grads, p.w
    n, d = g.shape
    lam = settings["networks"]["mlpnet"]["damp"]["damp"]
    size = g.element_size()
    rate, bw = gemm_rate(g.dtype), bandwidth(g.dtype)
    print(
        f"N = {n:,}, d = {d:,}, {g.dtype}: GEMM {rate / 1e9:.1f} GFLOP/s, read {bw / 1e9:.1f} GB/s"
    )
    bands = 8
    k, t_gram = timed(lambda: fisher._outer_gram(g, bands))
    (_, q), t_eigh = timed(lambda: torch.linalg.eigh(k))
    t_qtg = timed(lambda: q.T @ g)[1]
    k.diagonal().add_(n * lam)
    chol, t_chol = timed(lambda: torch.linalg.cholesky(k))
    _, t_solve = timed(lambda: torch.linalg.solve_triangular(chol, g, upper=False))
    spectrum = fisher_spectrum.FisherSpectrum(g)
    t_diag = min(timed(lambda i=i: spectrum.at(lam * 10**-i).diag_inverse())[1] for i in range(3))
    gram = cbs._Gram(g)
    start = cbs.cbs_starts(w, round(0.9 * d), n_starts=1)[0]
    _, t_iter = timed(lambda: cbs._swap_iteration(w, gram, ~start, **_cbs_args(settings)))
    rows = [  # (step, seconds, flops, bytes moved at least once)
        ("G G^T, one triangle in 8 bands", t_gram, (bands + 1) / bands * n * n * d, n * d * size),
        ("Cholesky of N damp I + G G^T", t_chol, n**3 / 3, n * n * size),
        ("L^-1 G (triangular solve)", t_solve, n * n * d, 2 * n * d * size),
        ("eigh of G G^T (about 10/3 N^3)", t_eigh, 10 / 3 * n**3, n * n * size),
        ("Q^T G", t_qtg, 2 * n * n * d, 2 * n * d * size),
        ("diag(H^-1) for a new damping", t_diag, 2 * n * d, n * d * size),
        ("one CBS-S iteration at 90 %", t_iter, 4 * n * d, 2 * n * d * size),
    ]
    print(f"\n{'step':34} {'seconds':>8} {'flops/R':>8} {'bytes/B':>8} {'ratio':>6}")
    for name, t, flops, moved in rows:
        bound = max(flops / rate, moved / bw)
        print(f"{name:34} {t:8.3f} {flops / rate:8.3f} {moved / bw:8.3f} {t / bound:6.2f}")
    print(
        "\nratio = seconds / max(flops / R, bytes / B): 1 is this machine's limit for the step "
        "(R and B measured above, in this process)."
    )


def _cbs_args(settings: dict) -> dict:
    c = settings["cbs"]
    return {"rho": c["rho"], "tau": c["tau"], "epsilon": c["epsilon"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--damp", type=float, default=1e-4)
    parser.add_argument("--absolute", action="store_true", help="damp is absolute, not relative")
    parser.add_argument("--max-updates", type=int, default=1000)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", action="store_true", help="time each step (see above)")
    args = parser.parse_args()
    if args.max_updates < 2:
        parser.error("--max-updates must be at least 2")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), OMP_WAIT_POLICY=PASSIVE")
    if args.steps:
        steps(args)
        return
    rows = [["route", "N", "seconds", "woodbury/route", "max |diff|", "relative"]]
    for n in args.n:
        rows += run(n, args)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    for j, r in enumerate(rows):
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        if j == 0:
            print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"\npeak memory {peak:.1f} GB. max |diff| is against the Woodbury result; relative ="
        " max |diff| / max |Woodbury value|. * = Woodbury time extrapolated from the first"
        " updates, differences measured on those updates"
    )


if __name__ == "__main__":
    main()
