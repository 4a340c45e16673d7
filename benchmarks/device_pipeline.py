"""Training time per CIFAR-10 batch (and per epoch) of VGG-19 and WRN-40-2 with the two data
pipelines of :func:`minipruner.core.train.train`, measured in this one process.

``pipeline="loader"`` is the CPU path: a torchvision dataset read through a ``DataLoader``
whose transforms (4-pixel padded random crop, horizontal flip, normalisation) run one image
at a time on the CPU. ``pipeline="device"`` keeps the training set on the device as one
uint8 tensor and augments every batch there (:mod:`minipruner.core.device_data`). For each model
this script runs ``train`` with each pipeline for ``--warmup`` steps (not timed: kernel
selection, allocation), then for ``--batches`` steps (default: one epoch, 391 batches of
128), timed on the wall clock with the device synchronised, and prints seconds per batch,
the implied epoch time, and the ratio loader / device. The device pipeline's time includes
copying the training set to the device, as a training run pays it once. First it times the
batches alone, without a network ("data only"): what each pipeline costs per batch.

The data are the real CIFAR-10 training set when it is under the data root
(``$MINIPRUNER_DATA``, see :func:`minipruner.core.data.data_root`), else 50,000 random images in
the same uint8 format with the same transforms (the time does not depend on the pixels).

Run: ``python benchmarks/device_pipeline.py [--batches 5] [--models vgg19 wrn-40-2]
[--device cuda] [--threads 1]``. On a CPU the two pipelines share the cores, so the ratio
says little about a GPU.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import Dataset  # noqa: E402

import minipruner as mp  # noqa: E402
from minipruner.core.data import NORMALIZATION, DatasetNotFoundError  # noqa: E402

MODELS: dict[str, Callable[[], nn.Module]] = {
    "vgg19": lambda: mp.get_model("vgg19"),
    # chapter 5's full-scale network
    "wrn-40-2": lambda: mp.get_model(
        "wrn", depth=40, widen=2, num_classes=10, in_channels=3, dim=2, input_shape=[3, 32, 32]
    ),
}
# the full-scale training recipe of chapters 3 and 5 (SGD, momentum, weight decay)
RECIPE = dict(lr=0.1, momentum=0.9, weight_decay=5e-4, batch_size=128, seed=0, quiet=True)


class SyntheticCIFAR10(torchvision.datasets.CIFAR10):
    """``n`` random 32 x 32 RGB uint8 images with random labels, stored and transformed as
    torchvision's CIFAR-10 (``.data`` (N, 32, 32, 3), ``.targets``, PIL transforms)."""

    def __init__(self, n: int, seed: int = 0) -> None:  # no files: skip the parent's
        T = torchvision.transforms
        rng = np.random.default_rng(seed)
        self.data = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        self.targets = [int(v) for v in rng.integers(0, 10, size=n)]
        self.transform = T.Compose(
            [
                T.RandomCrop(32, padding=4),
                T.RandomHorizontalFlip(),
                T.ToTensor(),
                T.Normalize(*NORMALIZATION["cifar10"]),
            ]
        )
        self.target_transform = None


def training_set() -> tuple[Dataset, str]:
    """The CIFAR-10 training set if it is on disk, else :class:`SyntheticCIFAR10`."""
    try:
        train, _ = mp.load_dataset("cifar10", scale="full", download=False)
        return train, "CIFAR-10"
    except DatasetNotFoundError:
        return SyntheticCIFAR10(50_000), "50,000 random CIFAR-shaped images (no CIFAR-10 found)"


def timed_training(
    model: nn.Module, data: Dataset, steps: int, pipeline: str, device: torch.device
) -> float:
    """Wall-clock seconds of ``train(model, data, iterations=steps, pipeline=...)``."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    mp.train(model, data, iterations=steps, pipeline=pipeline, device=device, **RECIPE)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def timed_data(data: Dataset, steps: int, pipeline: str, device: torch.device) -> float:
    """Wall-clock seconds to draw ``steps`` training batches of ``pipeline`` onto ``device``
    (no network), as :func:`minipruner.core.train.train` draws them; includes the device
    pipeline's copy of the set to the device."""
    from minipruner.core.train import epoch_batches

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    epoch = epoch_batches(data, RECIPE["batch_size"], 0, device, pipeline)(0)
    for _, (x, y) in zip(range(steps), epoch, strict=False):
        x, y = x.to(device), y.to(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batches", type=int, default=None, help="default: one epoch")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else mp.default_device()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    data, source = training_set()
    per_epoch = math.ceil(len(data) / RECIPE["batch_size"])
    steps = args.batches if args.batches is not None else per_epoch
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"data: {source}; {steps} timed batches of {RECIPE['batch_size']} per run")
    data_seconds = {p: timed_data(data, steps, p, device) for p in ("loader", "device")}
    for pipeline, s in data_seconds.items():
        print(f"  {'data only':9s} {pipeline:6s} {s / steps * 1e3:9.1f} ms/batch")
    ratio = data_seconds["loader"] / data_seconds["device"]
    print(f"  {'data only':9s} ratio loader / device {ratio:.2f}")
    for model_name in args.models:
        seconds = {}
        for pipeline in ("loader", "device"):
            torch.manual_seed(0)
            model = MODELS[model_name]()
            if args.warmup:
                timed_training(model, data, args.warmup, pipeline, device)
            seconds[pipeline] = timed_training(model, data, steps, pipeline, device)
        for pipeline, s in seconds.items():
            print(
                f"  {model_name:9s} {pipeline:6s} {s / steps * 1e3:9.1f} ms/batch   "
                f"epoch ({per_epoch} batches) {s / steps * per_epoch:8.1f} s"
            )
        print(
            f"  {model_name:9s} ratio loader / device {seconds['loader'] / seconds['device']:.2f}"
        )


if __name__ == "__main__":
    main()
