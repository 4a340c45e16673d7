"""Fixtures shared by several test files: the torchvision datasets written as tiny files in
their official formats (the real ones need a download that the test machines cannot make),
and a clean environment for every unit test.

Unit tests do not read the user's ``MINIPRUNER_*`` variables that change *what* is computed
(the scale, the seed offset, the widget mode): each test starts without them (a test that
wants one sets it). The variables that only say *where* files go (``MINIPRUNER_CACHE``,
``MINIPRUNER_RESULTS``, ``MINIPRUNER_DATA``) are left alone. The notebooks, run by nbval, do
read them: a reader's ``MINIPRUNER_SEED_OFFSET`` reruns the book on other seeds.

``write_mnist(root, folder, n_train, n_test)`` writes MNIST-style idx files under
``root/folder/raw``; ``write_cifar(root, per_batch, n_test, balanced)`` writes CIFAR-10
python batches under ``root`` and points torchvision's md5 checks at them. Both return the
arrays they wrote.

The tiny models several test files build are made here, each seeded with
``torch.manual_seed(seed)`` just before its layers are created, so a test's numbers depend
only on its widths and seed: ``seeded_mlp`` (the package's ``MLP``), ``seeded_sequential``
(an ``nn.Sequential`` of linear layers) and ``seeded_wrn`` (a small ``WideResNet``). A test
file imports them (``from conftest import seeded_mlp``) and names its own shapes.
``shrunk_chapter1()`` is chapter 1's settings cut to 10 quick configurations, which the
executors' tests (serial, worker processes, Ray) run and compare.
"""

import hashlib
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from minipruner.book.chapters import chapter_module
from minipruner.core.models import MLP, WideResNet

WHERE_FILES_GO = ("MINIPRUNER_CACHE", "MINIPRUNER_RESULTS", "MINIPRUNER_DATA")


@pytest.fixture(autouse=True, scope="module")
def _without_the_users_settings():
    """Remove every ``MINIPRUNER_*`` variable but those that only place files, for each test
    module (module scope: before the module's own module-scoped fixtures build settings;
    restored after it, so the notebooks that nbval runs next see the user's variables)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("MINIPRUNER_") and name not in WHERE_FILES_GO:
                patch.delenv(name)
        yield


def _write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the idx-ubyte format of the MNIST files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    magic = 0x0800 | array.ndim  # 0x08 = unsigned byte
    header = b"".join(int(v).to_bytes(4, "big") for v in (magic, *array.shape))
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _write_mnist(root: Path, folder: str, n_train: int = 30, n_test: int = 20) -> dict:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in [("train", n_train), ("t10k", n_test)]:
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        _write_idx(root / folder / "raw" / f"{split}-images-idx3-ubyte", images)
        _write_idx(root / folder / "raw" / f"{split}-labels-idx1-ubyte", labels)
        arrays[split] = images, labels
    return arrays


def _write_cifar(
    root: Path, monkeypatch, per_batch: int = 4, n_test: int = 10, balanced: bool = False
) -> dict:
    """CIFAR-10 python batches; torchvision's md5 checks are pointed at these files. With
    ``balanced`` the labels cycle through the classes, as in the real test set."""
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def dump(name: str, content: dict) -> list[str]:
        (folder / name).write_bytes(pickle.dumps(content))
        return [name, hashlib.md5((folder / name).read_bytes()).hexdigest()]

    arrays, train_list = {}, []
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        pixels = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        if balanced:
            labels = [i % 10 for i in range(n)]
        entry = dump(name, {"data": pixels, "labels": labels, "batch_label": name})
        arrays[name] = pixels, labels
        if name != "test_batch":
            train_list.append(entry)
    meta = dump("batches.meta", {"label_names": [f"class{i}" for i in range(10)]})
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", train_list)
    monkeypatch.setattr(cls, "test_list", [entry])
    monkeypatch.setattr(cls, "meta", {"filename": meta[0], "key": "label_names", "md5": meta[1]})
    return arrays


@pytest.fixture
def write_mnist() -> Callable[..., dict]:
    """The MNIST writer: ``write_mnist(root, folder, n_train=30, n_test=20)``."""
    return _write_mnist


@pytest.fixture
def write_cifar(monkeypatch) -> Callable[..., dict]:
    """The CIFAR-10 writer: ``write_cifar(root, per_batch=4, n_test=10, balanced=False)``."""
    return lambda root, **kwargs: _write_cifar(root, monkeypatch, **kwargs)


# --------------------------------------------------------------------------------------
# Tiny models, seeded
# --------------------------------------------------------------------------------------


def seeded_mlp(
    widths: list[int], seed: int = 0, *, bias: bool = True, dtype: torch.dtype | None = None
) -> MLP:
    """The package's ``MLP(widths, bias)`` (``flatten, fc1, relu1, ..., fcL``), created right
    after ``torch.manual_seed(seed)``, then cast to ``dtype`` if given."""
    torch.manual_seed(seed)
    net = MLP(widths, bias=bias)
    return net if dtype is None else net.to(dtype)


def seeded_sequential(
    widths: list[int],
    seed: int = 0,
    *,
    bias: bool = True,
    activation: Callable[[], nn.Module] = nn.ReLU,
    flatten: bool = False,
    dtype: torch.dtype | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> nn.Sequential:
    """``nn.Sequential([Flatten,] Linear(w_0, w_1), act, Linear(w_1, w_2), ..., Linear(w_{L-1},
    w_L))``, created right after ``torch.manual_seed(seed)``, then cast to ``dtype`` if
    given; ``input_shape`` is set as the attribute the package reads, if given."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Flatten()] if flatten else []
    for i in range(len(widths) - 1):
        if i:
            layers.append(activation())
        layers.append(nn.Linear(widths[i], widths[i + 1], bias=bias))
    net = nn.Sequential(*layers)
    if input_shape is not None:
        net.input_shape = input_shape
    return net if dtype is None else net.to(dtype)


def seeded_wrn(dim: int, depth: int = 10, interior: float = 0.5, seed: int = 0) -> WideResNet:
    """``WideResNet(depth, 1)`` with 5 classes and ``interior`` of its interior channels,
    created right after ``torch.manual_seed(seed)``: 1-D on ``(1, 12)`` inputs (``dim=1``)
    or 2-D on ``(3, 8, 8)`` (``dim=2``)."""
    torch.manual_seed(seed)
    if dim == 1:
        kw = {"dim": 1, "in_channels": 1, "input_shape": (1, 12)}
    else:
        kw = {"dim": 2, "in_channels": 3, "input_shape": (3, 8, 8)}
    return WideResNet(depth, 1, num_classes=5, interior=interior, **kw)


def shrunk_chapter1() -> dict:
    """Chapter 1 at the quick scale (seed offset 0) with two seeds, one sparsity and one epoch:
    10 configurations (4 sweeps, 6 distortion curves) on two shared networks."""
    settings = chapter_module(1).settings("quick", seed_offset=0)
    return {
        **settings,
        "seeds": [0, 1],
        "sparsities": [0.9],
        "layer_sparsities": [0.5, 0.9],
        "train": {**settings["train"], "epochs": 1},
        "retrain": {**settings["retrain"], "epochs": 1},
    }
