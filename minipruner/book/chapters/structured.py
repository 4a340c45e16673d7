"""Chapter 5's experiments: prune channels, or train a narrower network, and time both.

Crowley et al.'s comparison of pruned-and-tuned, pruned-architecture and reduced wide
residual networks, and the measurements behind it. Configurations, by ``experiment``:

- ``saliency``: on the trained 1-D WRN-10-1 (MNIST-1D, the first seed), close every fourth gate of
  each block in turn and compare the actual increase of the mean training loss with its
  second-order Taylor estimate and with the Fisher saliency (float64, eval mode);
- ``dense``: the dense network of one seed (trained once, cached): test error, parameters;
- ``prune``: one seed's dense network pruned channel by channel with Fisher or L1 saliency
  (:func:`pruning_run`, cached because the ``scratch``, ``reduced`` and ``latency``
  configurations build on it): test error of every snapshot, and of the compared snapshot
  after its extra fine-tuning;
- ``scratch``: the architecture Fisher pruning found (seed's snapshot at ``compare``),
  freshly initialised and trained from scratch;
- ``reduced``: the uniformly narrowed WRN with the parameter count closest to it, trained
  from scratch;
- ``latency``: for one input setting and batch size, the forward-pass time of the dense,
  pruned (compressed and masks-only) and reduced networks, in interleaved rounds; each such
  configuration measures in its own ``run`` call and records the machine it ran on.

A reader maps chapter 5 to this module (the experiments and the claims, tables of rows), to
:mod:`minipruner.book.chapters.structured_page` (what the page shows from stored results alone:
the accessors the claims read, three figures and the tables) and to
:mod:`minipruner.methods.structured` (the methods, with :mod:`minipruner.methods.channels`,
:mod:`minipruner.methods.architectures` and :mod:`minipruner.core.measure`).
"""

from __future__ import annotations

import copy
import os
import platform
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...core.measure import count_flops, count_parameters, measure_latency
from ...core.models import WideResNet
from ...core.scale import by_scale, shifted_seeds
from ...core.scale import seed_offset as checked_offset
from ...core.store import load_or_compute
from ...core.train import default_device, evaluate, train, trained
from ...experiments.protocol import training
from ...experiments.records import Results
from ...methods import structured as st
from ...methods.architectures import matched_interior
from ...methods.channels import add_gates, compress, prunable_channels, set_channel_masks
from .. import calibration
from ..claims import TIMING, Claim, claims_from, exceeds, rank_correlation_exceeds, within
from . import load_data, network_args, structured_page
from .structured_page import (
    FISHER,
    L1,
    at_compare,
    at_fraction,
    errors,
    latency_counts,
    latency_rounds,
    latency_settings,
    saliency_arrays,
    snapshots,
)

VERSION = 1
GRID = ("seeds", "methods")  # enumerate configurations only (latency names its seed)
TITLE = "Structured pruning: channels, reduced networks, and what is really faster"
EXPLORER = "structured_explorer"  # its explorer in minipruner.book.explorers
TIMED = ("latency",)  # measure time: run with no other configuration beside them
HEADLINES = (
    ("not worse than its pruned-and-tuned weights by more than 2",),
    ("reduced networks beat the Fisher pruned-and-tuned ones",),
    ("Fisher saliency ranks the",),
)
"""The claims (words of their statements) the README's summary table shows for this chapter."""
SALIENCY = {FISHER: "fisher", L1: "l1"}
"""The page's two methods (ids of :data:`minipruner.methods.METHODS`) and the saliency each
ranks channels by. The table's pruners remove channels in one shot; this page runs the same
saliencies the way Crowley et al. do, one channel at a time between fine-tuning steps
(:func:`minipruner.methods.structured.prune_and_finetune`), which no one-shot interface can
express."""
METHODS = tuple(SALIENCY)
figures = structured_page.figures
"""The chapter's three plots (:func:`.structured_page.figures`)."""
table = structured_page.table
"""The chapter's tables of errors and latencies (:func:`.structured_page.table`)."""

# The 1-D WRN-10-1 for MNIST-1D (interior widths 16 / 32 / 64) and its training recipe: the
# quick-scale experiment, and the network the saliency check runs on at every scale.
MNIST1D_WRN: dict[str, Any] = dict(
    depth=10, widen=1, num_classes=10, in_channels=1, dim=1, input_shape=[1, 40]
)
MNIST1D_TRAIN: dict[str, Any] = dict(
    epochs=15, lr=0.1, schedule="onecycle", weight_decay=5e-4, batch_size=128
)


def settings(scale: str, seed_offset: int | None = None) -> dict[str, Any]:
    """The chapter's settings at ``scale``: the 1-D WRN-10-1 on MNIST-1D on the CPU (quick)
    or Crowley et al.'s WRN-40-2 on CIFAR-10 with its 200-epoch schedule (full)."""
    offset = checked_offset(seed_offset)  # added to every seed; None: $MINIPRUNER_SEED_OFFSET
    arch = by_scale(
        MNIST1D_WRN,
        dict(depth=40, widen=2, num_classes=10, in_channels=3, dim=2, input_shape=[3, 32, 32]),
        scale,
    )
    prune = by_scale(dict(prune_every=5, lr=1e-3), dict(prune_every=100, lr=8e-4), scale)
    # the input settings timed, in order (a list: settings are stored with sorted keys)
    latency_inputs = [{"name": f"{arch['dim']}-D, as trained", "arch": arch}]
    if scale == "quick":  # the same channel shapes as 2-D convolutions on 28x28 inputs
        latency_inputs.insert(
            0, {"name": "2-D 28x28", "arch": dict(arch, dim=2, input_shape=[1, 28, 28])}
        )
    return {
        "scale": scale,
        "seeds": shifted_seeds([0, 1, 2], offset),
        "seed_offset": offset,
        "methods": list(METHODS),
        "dataset": by_scale("mnist1d", "cifar10", scale),
        "arch": arch,
        "train": by_scale(
            MNIST1D_TRAIN,
            dict(
                epochs=200,
                lr=0.1,
                schedule="multistep",
                milestones=[60, 120, 160],
                gamma=0.2,
                weight_decay=5e-4,
                batch_size=128,
                pipeline="device",  # the training set on the GPU, augmented there
            ),
            scale,
        ),
        "device": by_scale("cpu", "auto", scale),  # "auto": a GPU if there is one
        # torch threads while a configuration runs (None: torch's default). One thread is
        # fastest for these small convolutions on a shared 2-core CPU, and makes the numbers
        # the same whether the notebook or the command line computes them.
        "threads": by_scale(1, None, scale),
        "prune": prune,
        # extra fine-tuning of the compared snapshot, with its mask fixed
        "tune_steps": 20 * prune["prune_every"],
        "tune_weight_decay": 5e-4,
        "compare": 0.75,  # fraction of interior channels removed where the families meet
        "grid": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75],  # snapshots of each run
        "saliency": {
            "dataset": "mnist1d",
            "arch": MNIST1D_WRN,
            "train": MNIST1D_TRAIN,
            "seed": shifted_seeds([0], offset)[0],  # the first seed
            "examples": 300,
            "every": 4,  # close channels 0, 4, 8, ... of each block
            "h": 1e-3,  # step of the central difference for phi''
        },
        "latency": {
            "inputs": latency_inputs,
            "fractions": [0.5, 0.75],  # snapshots of the Fisher run of the first seed
            "batch_sizes": [1, 64],
            "rounds": 5,
            "repeats": 10,
            "warmup": 3,
            "threads": 1,
            # random weights (latency does not depend on their values), drawn with the first seed
            "seed": shifted_seeds([0], offset)[0],
        },
    }


def configurations(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """One ``saliency`` configuration; per seed one ``dense``, one ``prune`` per method, one
    ``scratch`` and one ``reduced``; one ``latency`` per (input setting, batch size)."""
    seeds = settings["seeds"]
    lat = settings["latency"]
    return (
        [{"experiment": "saliency"}]
        + [{"experiment": "dense", "seed": s} for s in seeds]
        + [
            {"experiment": "prune", "seed": s, "method": m}
            for s in seeds
            for m in settings["methods"]
        ]
        + [{"experiment": "scratch", "seed": s} for s in seeds]
        + [{"experiment": "reduced", "seed": s} for s in seeds]
        + [
            {"experiment": "latency", "setting": name, "batch_size": b, "seed": seeds[0]}
            for name in latency_settings(settings)
            for b in lat["batch_sizes"]
        ]
    )


# ----------------------------------------------------------------------------- networks


def _device(settings: dict[str, Any]) -> torch.device:
    return default_device() if settings["device"] == "auto" else torch.device(settings["device"])


def _pipeline(settings: dict[str, Any]) -> str:
    """How the chapter's CIFAR batches are drawn: on the device at the full scale."""
    return settings["train"].get("pipeline", "loader")


def model(settings: dict[str, Any], seed: int, **width: Any) -> nn.Module:
    """The WRN of ``settings["arch"]`` for ``seed``, narrowed by ``interior`` or
    ``interior_widths`` if given, trained from scratch with ``settings["train"]`` (trained
    once, then loaded from the cache)."""
    return trained(
        "wrn",
        settings["dataset"],
        seed=seed,
        model_kwargs={**settings["arch"], **width},
        scale=settings["scale"],
        device=_device(settings),
        quiet=True,
        **settings["train"],
    )


def mnist1d_model(settings: dict[str, Any], seed: int | None = None) -> nn.Module:
    """The dense 1-D WRN-10-1 trained on MNIST-1D (cached; at the quick scale the same
    network as ``model(settings, seed)``), on the CPU."""
    seed = settings["seeds"][0] if seed is None else seed  # the first seed by default
    sal = settings["saliency"]
    return trained(
        "wrn",
        sal["dataset"],
        seed=seed,
        model_kwargs=sal["arch"],
        scale=settings["scale"],
        device="cpu",
        quiet=True,
        **sal["train"],
    )


def trained_networks(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The dense WRN of every seed (what the pruning runs start from) and the MNIST-1D WRN the
    saliency check reads."""
    sal, scale = settings["saliency"], settings["scale"]
    dense = {"model": "wrn", "dataset": settings["dataset"], "model_kwargs": settings["arch"]}
    small = {"model": "wrn", "dataset": sal["dataset"], "model_kwargs": sal["arch"]}
    return [
        network_args({**dense, "train": settings["train"]}, scale, seed)
        for seed in settings["seeds"]
    ] + [network_args({**small, "train": sal["train"]}, scale, sal["seed"])]


def error_rate(settings: dict[str, Any], net: nn.Module) -> float:
    """Test error (%) of ``net`` on the chapter's dataset."""
    _, test_data = load_data(settings["dataset"], settings["scale"])
    result = evaluate(net, test_data, device=_device(settings), pipeline=_pipeline(settings))
    return 100 * (1 - result.accuracy)


def shared_runs(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The pruning run of every seed and method (:func:`pruning_run`): the ``prune``,
    ``scratch`` and ``latency`` configurations of a seed all build on them."""
    return [
        {"call": "pruning_run", "kwargs": {"seed": seed, "method": method}, "seed": seed}
        for seed in settings["seeds"]
        for method in settings["methods"]
    ]


def config_trainings(settings: dict[str, Any], config: dict[str, Any]) -> list[dict[str, Any]]:
    """The full-scale cost of ``config``
    (:func:`~minipruner.experiments.protocol.config_trainings`): the training from scratch of a
    ``scratch`` or ``reduced`` network, counted at the full WRN's step time (they are narrower: an
    upper bound); none for the others, which read the pruning runs
    (:func:`shared_run_trainings`)."""
    if config["experiment"] in ("scratch", "reduced"):
        arch, train = settings["arch"], settings["train"]
        return [training("wrn", settings["dataset"], train, model_kwargs=arch)]
    return []


def shared_run_trainings(settings: dict[str, Any], run: dict[str, Any]) -> list[dict[str, Any]]:
    """The full-scale cost of one pruning run (:func:`pruning_run`): WRN steps with the
    ``train`` settings updated by ``prune``, one removal every ``prune_every`` steps until the
    last fraction of ``grid`` of the interior channels is removed, then ``tune_steps`` more:
    ``round(grid[-1] x interior channels) x prune_every + tune_steps``."""
    if run["call"] != "pruning_run":
        raise ValueError(f"no cost declared for the shared run {run['call']!r}")
    total = sum(WideResNet(**{**settings["arch"], "input_shape": None}).interior_widths)
    removed = round(settings["grid"][-1] * total)
    prune = {**settings["train"], **settings["prune"]}
    n = removed * settings["prune"]["prune_every"] + settings["tune_steps"]
    return [training("wrn", settings["dataset"], prune, model_kwargs=settings["arch"], steps=n)]


def pruning_run(settings: dict[str, Any], seed: int, method: str) -> dict[str, Any]:
    """Prune the dense network of ``seed`` one channel every ``prune_every`` steps with
    ``method`` saliency (:func:`~minipruner.methods.structured.prune_and_finetune`), taking
    snapshots at the fractions ``settings["grid"]`` of interior channels removed; the snapshot at
    ``settings["compare"]`` is compressed and fine-tuned ``tune_steps`` more steps.

    Returns ``{"snapshots": [{step, removed, total, widths, parameters, masks, state}],
    "tuned": state}`` (``state``: a state dict; the snapshots are gated networks, ``tuned``
    the compressed one). Cached like a trained network, keyed by every setting it uses, so
    the configurations that build on a run (``prune``, ``scratch``, ``reduced``,
    ``latency``) share it.
    """
    device = _device(settings)
    train_data, _ = load_data(settings["dataset"], settings["scale"])
    pipeline = _pipeline(settings)

    def compute() -> dict[str, Any]:
        snaps = st.prune_and_finetune(
            model(settings, seed),
            train_data,
            snapshots_at=settings["grid"],
            method=SALIENCY[method],
            seed=seed,
            device=device,
            quiet=True,
            pipeline=pipeline,
            **settings["prune"],
        )
        out, tuned = [], None
        for s in snaps:
            out.append(
                dict(
                    step=s.step,
                    removed=s.removed,
                    total=s.total,
                    widths=s.widths,
                    parameters=s.parameters,
                    masks=s.masks,
                    state={k: v.detach().cpu() for k, v in s.model.state_dict().items()},
                )
            )
            if s.removed == round(settings["compare"] * s.total):
                small = compress(s.model)
                train(
                    small,
                    train_data,
                    iterations=settings["tune_steps"],
                    lr=settings["prune"]["lr"],
                    weight_decay=settings["tune_weight_decay"],
                    seed=seed,
                    device=device,
                    quiet=True,
                    pipeline=pipeline,
                )
                tuned = {k: v.detach().cpu() for k, v in small.state_dict().items()}
        return {"snapshots": out, "tuned": tuned}

    keys = ("dataset", "arch", "train", "prune", "tune_steps", "tune_weight_decay", "grid")
    config = {k: settings[k] for k in keys}
    # keyed by the saliency's name, as before results were keyed by method id
    config.update(
        seed=seed, method=SALIENCY[method], compare=settings["compare"], scale=settings["scale"]
    )
    return load_or_compute("ch05-pruning-run", config, compute)


def snapshot_model(settings: dict[str, Any], snapshot: dict[str, Any]) -> nn.Module:
    """The gated network of one snapshot of :func:`pruning_run`, in eval mode on the CPU."""
    net = set_channel_masks(WideResNet(**settings["arch"]), snapshot["masks"])
    net.load_state_dict(snapshot["state"])
    return net.eval()


# --------------------------------------------------------------------------------- runs


def run(config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration (see the module docstring) and return its measurements, with
    ``settings["threads"]`` torch threads if given."""
    experiment, previous = config["experiment"], torch.get_num_threads()
    torch.set_num_threads(settings["threads"] or previous)
    try:
        if experiment == "saliency":
            return run_saliency(settings)
        if experiment == "dense":
            return _network_record(settings, model(settings, config["seed"]))
        if experiment == "prune":
            return run_prune(settings, config["seed"], config["method"])
        if experiment in ("scratch", "reduced"):
            return run_from_scratch(settings, config["seed"], experiment)
        if experiment == "latency":
            return run_latency(settings, config["setting"], config["batch_size"], config["seed"])
        raise ValueError(f"unknown experiment {experiment!r}")
    finally:
        torch.set_num_threads(previous)


def _network_record(settings: dict[str, Any], net: nn.Module) -> dict[str, Any]:
    return dict(
        error=error_rate(settings, net),
        parameters=count_parameters(net),
        widths=list(net.interior_widths),
    )


def _per_example_loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return F.cross_entropy(net(x), y, reduction="none")


def run_saliency(settings: dict[str, Any]) -> dict[str, Any]:
    """Close every ``every``-th gate of each block of the trained MNIST-1D WRN one at a time:
    the actual increase of the mean loss on ``examples`` training signals, the first-order
    term ``-phi'(1)`` (from the gate gradients), half the curvature ``phi''(1)/2`` (central
    difference of step ``h``), their sum (the second-order Taylor estimate) and the Fisher
    saliency ``Delta_k``; float64, eval mode."""
    sal = settings["saliency"]
    net = copy.deepcopy(mnist1d_model(settings, sal["seed"])).double().eval()
    add_gates(net)
    train_data, _ = load_data(sal["dataset"], settings["scale"])
    x, y = (
        train_data.tensors[0][: sal["examples"]].double(),
        train_data.tensors[1][: sal["examples"]],
    )
    grads = st.gate_gradients(net, x, y)
    fisher = st.fisher_saliency(net, x, y)
    loss_1 = _per_example_loss(net, x, y).mean().item()
    h, rows = sal["h"], []
    for chain in prunable_channels(net):
        gate = net.get_submodule(chain.act)
        for k in range(0, gate.channels, sal["every"]):
            phi = {}
            for t in (0.0, 1 - h, 1 + h):
                gate.mask[k] = t
                phi[t] = _per_example_loss(net, x, y).mean().item()
            gate.mask[k] = 1.0
            d1 = grads[chain.block][:, k].mean().item()
            d2 = (phi[1 + h] - 2 * loss_1 + phi[1 - h]) / h**2
            rows.append(
                dict(
                    block=chain.block,
                    channel=k,
                    actual=phi[0.0] - loss_1,
                    taylor2=-d1 + d2 / 2,
                    fisher=fisher[chain.block][k].item(),
                    first=-d1,
                    half_curvature=d2 / 2,
                )
            )
    return {"loss": loss_1, "gates": rows}


def run_prune(settings: dict[str, Any], seed: int, method: str) -> dict[str, Any]:
    """The test error of every snapshot of :func:`pruning_run` right after its last removal,
    and of the compared snapshot after its extra fine-tuning (``tuned_error``), with the
    snapshot's widths, parameter count (compressed), step and keep-masks (0/1 lists)."""
    pruned = pruning_run(settings, seed, method)
    records = []
    for snap in pruned["snapshots"]:
        net = snapshot_model(settings, snap)
        rec = dict(
            fraction=snap["removed"] / snap["total"],
            step=snap["step"],
            widths=snap["widths"],
            parameters=snap["parameters"],
            masks={k: m.int().tolist() for k, m in snap["masks"].items()},
            error=error_rate(settings, net),
        )
        if snap["removed"] == round(settings["compare"] * snap["total"]):
            small = compress(net)
            small.load_state_dict(pruned["tuned"])
            rec["tuned_error"] = error_rate(settings, small)
        records.append(rec)
    return {"snapshots": records}


def _compared_snapshot(settings: dict[str, Any], seed: int, method: str) -> dict[str, Any]:
    snaps = pruning_run(settings, seed, method)["snapshots"]
    return next(s for s in snaps if s["removed"] == round(settings["compare"] * s["total"]))


def run_from_scratch(settings: dict[str, Any], seed: int, family: str) -> dict[str, Any]:
    """Train from scratch (with the dense network's schedule) either the architecture that
    Fisher pruning found at ``compare`` (``family="scratch"``: its interior widths, a fresh
    initialisation) or the reduced WRN whose common interior factor gives the parameter
    count closest to it (``family="reduced"``); its test error, parameters and widths."""
    snap = _compared_snapshot(settings, seed, FISHER)
    if family == "scratch":
        return _network_record(settings, model(settings, seed, interior_widths=snap["widths"]))
    arch = settings["arch"]
    shape = {k: v for k, v in arch.items() if k not in ("depth", "widen")}
    factor = matched_interior(arch["depth"], arch["widen"], snap["parameters"], **shape)
    net = model(settings, seed, interior=factor)
    return dict(_network_record(settings, net), factor=factor)


def latency_models(
    settings: dict[str, Any], arch: dict[str, Any], seed: int | None = None
) -> dict[str, nn.Module]:
    """The timed networks, with random weights (seeded): the dense WRN of ``arch``; for each
    latency fraction, the Fisher-pruned network of ``seed`` (default: the first seed)
    compressed (and, at ``compare``, with its masks only) and the reduced WRN with the
    parameter count closest to it."""
    lat = settings["latency"]
    torch.manual_seed(lat["seed"])
    dense_net = WideResNet(**arch)
    models: dict[str, nn.Module] = {"dense": dense_net}
    seed = settings["seeds"][0] if seed is None else seed  # the first seed by default
    snaps = pruning_run(settings, seed, FISHER)["snapshots"]
    shape = {k: v for k, v in arch.items() if k not in ("depth", "widen")}
    for f in lat["fractions"]:
        snap = next(s for s in snaps if abs(s["removed"] / s["total"] - f) < 0.01)
        gated = set_channel_masks(copy.deepcopy(dense_net), snap["masks"])
        if f == settings["compare"]:
            models[f"pruned {f:.0%}, masks only"] = gated
        models[f"pruned {f:.0%}"] = compress(gated)
        p = count_parameters(models[f"pruned {f:.0%}"])
        factor = matched_interior(arch["depth"], arch["widen"], p, **shape)
        models[f"reduced {f:.0%}"] = WideResNet(**arch, interior=factor)
    return models


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def run_latency(
    settings: dict[str, Any], setting: str, batch_size: int, seed: int | None = None
) -> dict[str, Any]:
    """Time every network of :func:`latency_models` (pruned networks of ``seed``, default the
    first seed) for input setting ``setting``: in each
    of ``rounds`` rounds, one :func:`~minipruner.core.measure.measure_latency` per network in
    turn (``threads`` threads, ``warmup`` untimed and ``repeats`` timed forward passes of a
    batch of ``batch_size``, the median in seconds). Returns the round medians per network,
    each network's parameters and FLOPs per example, and the device, thread count and batch
    size the times were measured with."""
    lat = settings["latency"]
    (arch,) = [i["arch"] for i in lat["inputs"] if i["name"] == setting]
    models = latency_models(settings, arch, seed)
    rounds: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(lat["rounds"]):
        for name, net in models.items():
            rounds[name].append(
                measure_latency(
                    net,
                    batch_size=batch_size,
                    threads=lat["threads"],
                    warmup=lat["warmup"],
                    repeats=lat["repeats"],
                )
            )
    device = next(models["dense"].parameters()).device
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    return {
        "names": list(models),
        "rounds": rounds,
        "counts": {n: [count_parameters(m), count_flops(m)] for n, m in models.items()},
        "device": f"{device.type}: {device_name}",
        "threads": lat["threads"],
        "batch_size": batch_size,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
    }


# ------------------------------------------------------------------------------- claims


def flops_at_compare(results: Results, seed: int, arch: dict[str, Any]) -> tuple[int, int]:
    """FLOPs per example of the Fisher-pruned architecture of ``seed`` at ``compare`` and of
    its reduced network, both built with the input setting ``arch`` (e.g. the 2-D 28x28
    shapes); no weights or training needed."""
    widths = at_compare(results, FISHER, seed)["widths"]
    factor = results.select(experiment="reduced", seed=seed)[0]["factor"]
    pruned = WideResNet(**arch, interior_widths=widths)
    reduced = WideResNet(**arch, interior=factor)
    return count_flops(pruned), count_flops(reduced)


def _round_ratios(results: Results, setting: str, batch: int, name: str, ref: str) -> np.ndarray:
    """latency(``name``) / latency(``ref``) per round, timed in the same round."""
    times = latency_rounds(results)[setting, batch]
    return np.array(times[name]) / np.array(times[ref])


def claims(results: Results) -> list[Claim]:
    """The chapter's claims. Test errors (points) at ``compare`` are measured once per seed
    and paired (the families of a seed share its dense network and pruning run); where the
    channels go and the FLOPs of the compared networks, per seed; the saliency check on the
    gates of one trained network (the gates are the sample); latency ratios per timing round
    of one machine (the rounds are the sample). Each row of the tables below is one claim
    (:func:`minipruner.book.claims.claims_from`). Which claims are asserted is computed from
    the chapter's calibration (:func:`minipruner.book.calibration.apply`); timings depend on
    the machine, so no latency claim is (:data:`minipruner.book.claims.TIMING`)."""
    cfg = results.settings
    seeds = cfg["seeds"]
    err = errors(results)
    tuned, scratch = err["Fisher: pruned-and-tuned"], err["Fisher architecture, from scratch"]
    reduced, l1_tuned = err["reduced, from scratch"], err["L1: pruned-and-tuned"]
    after = err["Fisher: right after the last removal"]
    dense_widths = {
        s: np.array(results.select(experiment="dense", seed=s)[0]["widths"]) for s in seeds
    }

    def last_block_margin(seed: int) -> float:
        """Smallest, over Fisher's snapshots, of (lowest kept share of the other blocks
        minus the kept share of the last block), in points of share."""
        gaps = []
        for r in snapshots(results, FISHER, seed)[1:]:
            share = 100 * np.array(r["widths"]) / dense_widths[seed]
            gaps.append(share[:-1].min() - share[-1])
        return min(gaps)

    def l1_peak_ratio(seed: int) -> float:
        """L1's over Fisher's mean error right after a removal, at 20-40 % removed."""
        grid = [f for f in cfg["grid"] if 0.2 <= f <= 0.4]
        mean = {
            m: np.mean([at_fraction(results, m, seed, f)["error"] for f in grid]) for m in METHODS
        }
        return float(mean[L1] / mean[FISHER])

    def param(method: str) -> np.ndarray:
        return np.array([at_compare(results, method, s)["parameters"] for s in seeds], float)

    mid_l1 = np.array(
        [100 * at_fraction(results, L1, s, 0.5)["widths"][1] / dense_widths[s][1] for s in seeds]
    )
    gates = saliency_arrays(results)
    actual = gates["actual"]
    rises = actual > 0  # closing a few gates can lower the loss: no ratio to take there
    compare, share, gate_rows = f"{cfg['compare']:.0%}", "points of share", {"over": "gates"}
    crowley = "Crowley et al.: from scratch at least as good as pruned-and-tuned"
    rows = [  # (judge, statement, a, b, margin, options): see claims_from
        (exceeds, f"{compare}: the Fisher-pruned architecture trained from scratch is not worse "
            "than its pruned-and-tuned weights by more than 2 points of test error",
            tuned, scratch, -2, {"paper": crowley}),
        (exceeds, f"{compare}: the Fisher-pruned architecture trained from scratch beats its "
            "pruned-and-tuned weights", tuned, scratch, {"paper": crowley}),
        (exceeds, f"{compare}: reduced networks are not worse than the Fisher pruned-and-tuned "
            "ones by more than 1 point of test error", tuned, reduced, -1,
            {"paper": "a weaker form of Crowley et al.'s claim (next row)"}),
        (exceeds, f"{compare}: reduced networks beat the Fisher pruned-and-tuned ones",
            tuned, reduced,
            {"paper": "Crowley et al.: reduced networks consistently outperform pruned networks"}),
        (exceeds, f"{compare}: the Fisher-pruned architecture from scratch beats the reduced "
            "network of the same size",
            reduced, scratch, {"paper": "Crowley et al.: pruning as architecture search"}),
        (exceeds, f"{compare}: Fisher pruning beats L1 pruning after fine-tuning by more than 1 "
            "point of test error", l1_tuned, tuned, 1),
        (exceeds, f"{compare}: L1-pruned networks keep more parameters than Fisher-pruned ones",
            param(L1), param(FISHER), {"unit": "parameters"}),
        (exceeds, "Fisher pruning keeps the smallest share of the last block at every snapshot "
            "(per seed, the smallest lead of the other blocks)",
            [last_block_margin(s) for s in seeds], {"unit": share}),
        (exceeds, "50 %: L1 pruning keeps less than a tenth of the middle block's channels (10 % "
            "minus the share kept)", 10 - mid_l1, {"unit": share}),
        (exceeds, "20-40 % removed: L1's test error right after a removal is more than twice "
            "Fisher's (ratio of the mean errors)",
            [l1_peak_ratio(s) for s in seeds], None, 2, {"unit": "× (ratio)"}),
        (exceeds, f"{compare}: the extra fine-tuning lowers the Fisher-pruned networks' test "
            "error", after, tuned),
        (rank_correlation_exceeds, f"closing one gate: the Fisher saliency ranks the "
            f"{len(actual)} gates like the actual loss increase (rank correlation above 0.7)",
            gates["fisher"], actual, 0.7, gate_rows),
        (exceeds, "closing one gate: the Fisher saliency underestimates the loss increase more "
            "than tenfold (log10 of actual / Fisher, mean over the gates whose closing raises "
            "the loss)", np.log10(actual[rises] / gates["fisher"][rises]), None, 1,
            {"unit": "decades", **gate_rows}),
        (exceeds, "closing one gate: the first-order term is less than half the loss increase "
            "(log10 of actual / |first-order term|, mean over the gates whose closing raises "
            "the loss)", np.log10(actual[rises] / np.abs(gates["first"][rises])), None,
            0.3, {"unit": "decades", **gate_rows}),  # 0.3: log10(2)
    ]  # fmt: skip
    two_d = [i for i in cfg["latency"]["inputs"] if i["arch"]["dim"] == 2]
    if two_d:
        name, arch = two_d[0]["name"], two_d[0]["arch"]
        flops = np.array([flops_at_compare(results, s, arch) for s in seeds], float)
        b = max(cfg["latency"]["batch_sizes"])
        f_lo, f_hi = (f"{f:.0%}" for f in cfg["latency"]["fractions"])
        speed = {
            (n, ref): 1 / _round_ratios(results, name, b, n, ref)
            for n, ref in [
                (f"pruned {f_hi}", "dense"),
                (f"pruned {f_hi}, masks only", "dense"),
                (f"reduced {f_lo}", f"pruned {f_lo}"),
                (f"reduced {f_hi}", f"pruned {f_hi}"),
            ]
        }
        timed = {"unit": "speed-up", "over": TIMING}
        faster = {**timed, "paper": "Crowley et al.: reduced networks faster than pruned ones"}
        rows += [
            (exceeds, f"{compare}, {name}: the Fisher-pruned architecture needs more than 1.5 "
                "times the FLOPs of the reduced network of the same size",
                flops[:, 0] / flops[:, 1], None, 1.5, {"unit": "× (ratio)"}),
            (exceeds, f"{name}, batch {b}: the compressed {f_hi} network runs more than 1.1 times "
                "as fast as the dense one", speed[f"pruned {f_hi}", "dense"], None, 1.1,
                {**timed, "paper": "Crowley et al.: compressed networks are faster"}),
            (within, f"{name}, batch {b}: the {f_hi} network with its masks only runs at the "
                "dense network's speed (within 25 %)", speed[f"pruned {f_hi}, masks only", "dense"],
                np.ones(len(speed[f"pruned {f_hi}", "dense"])), 0.25, timed),
            *[(exceeds, f"{name}, batch {b}: the reduced {f} network runs faster than the pruned "
                "one of the same size", speed[f"reduced {f}", f"pruned {f}"], None, 1, faster)
              for f in (f_lo, f_hi)],
        ]  # fmt: skip
    one_d = [i["name"] for i in cfg["latency"]["inputs"] if i["arch"]["dim"] == 1]
    if one_d:
        name, f_hi = one_d[0], f"{cfg['latency']['fractions'][-1]:.0%}"
        counts = latency_counts(results)
        flop_ratio = counts[name, f"pruned {f_hi}"][1] / counts[name, "dense"][1]
        b = min(cfg["latency"]["batch_sizes"])
        rows.append(
            (exceeds, f"{name}, batch {b}: time falls less than FLOPs (the compressed {f_hi} "
                f"network's time ratio to dense minus its FLOP ratio, {flop_ratio:.2f}, above "
                "0.2)", _round_ratios(results, name, b, f"pruned {f_hi}", "dense") - flop_ratio,
                None, 0.2, {"unit": "ratio", "over": TIMING})
        )  # fmt: skip
    return calibration.apply(results, claims_from(rows), VERSION)
