"""Measuring what pruning buys and costs: parameter and FLOP counts, wall time and peak
memory of a computation, and the latency of a forward pass.

Counting (:func:`count_parameters`, :func:`count_flops`) holds on any machine; timing and
memory (:func:`measure_cost`, :func:`measure_latency`) are this machine's, and a claim about
them says so.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .masks import flop_counter

__all__ = ["count_flops", "count_parameters", "measure_cost", "measure_latency"]


# ------------------------------------------------------------------ counts


def count_parameters(model: nn.Module) -> int:
    """Number of parameters, ``sum numel(p)`` (pruned-but-present channels count)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, example: Tensor | None = None) -> int:
    """FLOPs of one forward pass on ``example`` (default: one zero example of ``model.input_shape``)
    counted by :class:`torch.utils.flop_counter.FlopCounterMode`: 2 per multiply-add of
    convs and matmuls; batch norm, activations and bias additions are not counted."""
    return int(flop_counter(model, example).get_total_flops())


# ------------------------------------------------------------------ cost of a computation


def _rss_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    # Linux >= 4.0: writing 5 to clear_refs resets the peak resident set size (VmHWM).
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure_cost(
    fn: Callable[[], Any], device: torch.device | str | None = None
) -> tuple[Any, dict[str, Any]]:
    """Run ``fn()`` once and measure its wall time and the peak memory it added.

    Returns ``(fn(), cost)`` with ``cost = {"seconds", "peak_mb", "memory"}``:

    - ``seconds``: wall-clock time (``time.perf_counter``; CUDA is synchronised first and
      last, so queued kernels count);
    - ``peak_mb``: on CUDA, ``max_memory_allocated - memory_allocated`` before the call
      (``torch.cuda.reset_peak_memory_stats``); on the CPU under Linux, the peak resident
      set size during the call minus the resident size before it (the kernel's high-water
      mark ``VmHWM``, reset through ``/proc/self/clear_refs``), so every byte the call
      touched counts, not only torch's; ``None`` where neither is available;
    - ``memory``: which of the two was measured (``"cuda allocated"``, ``"process rss"``
      or ``"unavailable"``).

    Memory already held before the call (the model, the data) is not counted.
    """
    device = torch.device(device) if device is not None else None
    cuda = device is not None and device.type == "cuda"
    gc.collect()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        rss = _rss_kib("VmRSS")
        base = rss if rss is not None and _reset_peak_rss() else None
    start = time.perf_counter()
    result = fn()
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    if cuda:
        peak, kind = (torch.cuda.max_memory_allocated(device) - base) / 2**20, "cuda allocated"
    elif base is not None and (hwm := _rss_kib("VmHWM")) is not None:
        peak, kind = (hwm - base) / 1024, "process rss"
    else:
        peak, kind = None, "unavailable"
    return result, {"seconds": seconds, "peak_mb": peak, "memory": kind}


# --------------------------------------------------------------------------------------
# Latency
# --------------------------------------------------------------------------------------


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int] | None = None,
    batch_size: int = 1,
    *,
    threads: int = 1,
    warmup: int = 10,
    repeats: int = 50,
) -> float:
    """Median wall-clock seconds of one forward pass: ``median_r t_r`` over ``repeats`` timed
    runs (``time.perf_counter``) after ``warmup`` untimed ones, on a random batch of shape
    ``(batch_size, *input_shape)`` (default ``model.input_shape``), in eval mode under
    ``torch.inference_mode``, with ``torch.set_num_threads(threads)`` (restored afterwards).
    On a GPU the device is synchronised around each run.
    """
    if batch_size < 1 or threads < 1 or warmup < 0 or repeats < 1:
        raise ValueError(
            f"need batch_size >= 1, threads >= 1, warmup >= 0, repeats >= 1; got "
            f"{batch_size}, {threads}, {warmup}, {repeats}"
        )
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
        if input_shape is None:
            raise ValueError(f"{type(model).__name__} has no input_shape; pass input_shape")
    p = next(model.parameters())
    x = torch.randn(batch_size, *input_shape, device=p.device, dtype=p.dtype)
    sync = torch.cuda.synchronize if p.device.type == "cuda" else (lambda: None)
    previous, was_training = torch.get_num_threads(), model.training
    times = []
    try:
        torch.set_num_threads(threads)
        model.eval()
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            for _ in range(repeats):
                sync()
                start = time.perf_counter()
                model(x)
                sync()
                times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
        model.train(was_training)
    return statistics.median(times)
