"""Inference latency of dense, Fisher-pruned (compressed) and uniformly reduced WRNs.

Crowley et al. (2019) ask whether a pruned network is faster than a reduced network of the
same size (the same family, every block interior scaled by one multiplier). This script

1. trains a WRN-10-1 (block interiors 16 / 32 / 64) on MNIST-1D and Fisher-prunes it,
   one interior channel every ``--prune-every`` steps, taking snapshots at ``--fractions``
   of the interior channels removed (the profile of widths is what matters here);
2. builds, for the 1-D network (input 1 x 40) and for the same channel shapes as 2-D convs
   on 1 x 28 x 28 inputs: the dense net, the pruned net with its masks only (gated, not
   compressed), the compressed pruned net (``compress``), and the reduced net whose
   uniform interior multiplier gives the closest parameter count (``matched_interior``);
   the pruned architecture trained from scratch has exactly the compressed net's shapes,
   so it is not timed separately;
3. measures the median latency at batch 1 and 64 with a fixed thread count, warm-up, and
   ``--rounds`` interleaved rounds of ``--repeats`` runs (median of the round medians), all
   in this one process, and prints it with the ratio to the dense network.

Run: ``python benchmarks/latency.py [--threads 1] [--repeats 20] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from torch import nn  # noqa: E402

import minipruner as mp  # noqa: E402
from minipruner import structured as st  # noqa: E402
from minipruner.models import WideResNet  # noqa: E402

DEPTH, WIDEN = 10, 1
SHAPES = {"1-D 1x40": (1, (1, 40)), "2-D 1x28x28": (2, (1, 28, 28))}
BATCHES = (1, 64)


def wrn(dim: int, shape: tuple[int, ...], **kwargs: object) -> WideResNet:
    """WRN-10-1 for one-channel inputs of ``shape``."""
    return WideResNet(DEPTH, WIDEN, in_channels=1, dim=dim, input_shape=shape, **kwargs)


def pruned_profiles(args: argparse.Namespace) -> list[st.Snapshot]:
    """Train a 1-D WRN-10-1 on MNIST-1D and Fisher-prune it; one snapshot per fraction."""
    train_data, test_data = mp.load_dataset("mnist1d")
    mp.seed_everything(args.seed)
    model = wrn(1, (1, 40))
    t0 = time.perf_counter()
    mp.train(
        model,
        train_data,
        epochs=args.epochs,
        lr=0.1,
        schedule="onecycle",
        weight_decay=5e-4,
        seed=args.seed,
        device="cpu",
        quiet=True,
    )
    acc = mp.evaluate(model, test_data).accuracy
    print(f"dense WRN-{DEPTH}-{WIDEN} on MNIST-1D: {args.epochs} epochs, test accuracy {acc:.3f}")
    snaps = st.prune_and_finetune(
        model,
        train_data,
        prune_every=args.prune_every,
        snapshots_at=args.fractions,
        method="fisher",
        lr=1e-3,
        seed=args.seed,
        device="cpu",
        quiet=True,
    )
    for s in snaps:
        acc = mp.evaluate(s.model, test_data).accuracy
        print(
            f"Fisher-pruned {s.fraction:.0%} (step {s.step}): interior widths {s.widths}, "
            f"test accuracy before further fine-tuning {acc:.3f}"
        )
    print(f"(training and pruning: {time.perf_counter() - t0:.0f} s)\n")
    return snaps


def timed(
    models: dict[str, nn.Module], shape: tuple[int, ...], batch: int, args: argparse.Namespace
) -> dict[str, float]:
    """Median seconds per forward pass of each model, in interleaved rounds."""
    rounds: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            rounds[name].append(
                st.measure_latency(
                    model,
                    shape,
                    batch,
                    threads=args.threads,
                    warmup=args.warmup,
                    repeats=args.repeats,
                )
            )
    return {name: statistics.median(ts) for name, ts in rounds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.5, 0.75])
    parser.add_argument("--epochs", type=float, default=5)
    parser.add_argument("--prune-every", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    snaps = pruned_profiles(args)
    print(
        f"torch {torch.__version__}, CPU, threads={args.threads}, warm-up {args.warmup}, "
        f"median of {args.rounds} rounds x {args.repeats} runs; ratio = latency / dense"
    )
    header = f"{'input':<12} {'network':<22} {'params':>7} {'MFLOPs':>7}"
    for b in BATCHES:
        header += f" {f'b={b} ms':>9} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    for label, (dim, shape) in SHAPES.items():
        torch.manual_seed(args.seed)
        dense = wrn(dim, shape)
        models: dict[str, nn.Module] = {"dense": dense}
        for s in snaps:
            masked = wrn(dim, shape)
            st.set_channel_masks(masked, s.masks)
            pruned = st.compress(masked)
            assert pruned.interior_widths == s.widths
            f = st.matched_interior(DEPTH, WIDEN, st.count_parameters(pruned), **_kw(dim, shape))
            tag = f"{s.fraction:.0%}"
            models[f"masked {tag}"] = masked
            models[f"pruned {tag} (compress)"] = pruned
            models[f"reduced x{f:.2f}"] = wrn(dim, shape, interior=f)
        x = torch.zeros(1, *shape)
        latency = {b: timed(models, shape, b, args) for b in BATCHES}
        for name, model in models.items():
            row = f"{label:<12} {name:<22} {st.count_parameters(model):>7,}"
            row += f" {st.count_flops(model, x) / 1e6:>7.2f}"
            for b in BATCHES:
                t, t0 = latency[b][name], latency[b]["dense"]
                row += f" {t * 1e3:>9.3f} {t / t0:>6.2f}"
            print(row)
        print()


def _kw(dim: int, shape: tuple[int, ...]) -> dict[str, object]:
    return {"in_channels": 1, "dim": dim, "input_shape": shape}


if __name__ == "__main__":
    main()
