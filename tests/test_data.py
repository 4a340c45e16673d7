"""Datasets: offline ones for real, torchvision ones on tiny files in the official formats."""

import random
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision
from torch.utils.data import Dataset, TensorDataset

import minipruner as mp
from minipruner.core import data

MNIST_LO, MNIST_HI = (0 - 0.1307) / 0.3081, (1 - 0.1307) / 0.3081


# --------------------------------------------------------------------------- mnist-5k


def test_mnist_5k_split():
    train, test = mp.load_dataset("mnist-5k")
    assert isinstance(train, TensorDataset) and isinstance(test, TensorDataset)
    (xtr, ytr), (xte, yte) = train.tensors, test.tensors
    assert xtr.shape == (4000, 1, 28, 28) and xte.shape == (1000, 1, 28, 28)
    assert xtr.dtype == torch.float32 and ytr.dtype == torch.int64
    assert torch.bincount(ytr).tolist() == [400] * 10
    assert torch.bincount(yte).tolist() == [100] * 10
    # normalised with the MNIST mean/std after scaling to [0, 1]
    assert xtr.min().item() == pytest.approx(MNIST_LO, abs=1e-5)
    assert xtr.max().item() == pytest.approx(MNIST_HI, abs=1e-5)
    assert -0.3 < xtr.mean().item() < 0.3 and 0.7 < xtr.std().item() < 1.3
    # no test digit is also a training digit
    rows = {r.tobytes() for r in xtr.flatten(1).numpy()}
    assert not rows & {r.tobytes() for r in xte.flatten(1).numpy()}


def test_mnist_5k_is_deterministic_and_ignores_global_seed():
    torch.manual_seed(1)
    a_train, a_test = mp.load_dataset("mnist-5k", scale="quick")
    torch.manual_seed(2)
    b_train, b_test = mp.load_dataset("mnist-5k", scale="full")  # same at both scales
    for a, b in [(a_train, b_train), (a_test, b_test)]:
        assert all(torch.equal(s, t) for s, t in zip(a.tensors, b.tensors, strict=True))


# --------------------------------------------------------------------------- mnist1d


def test_mnist1d_in_memory_deterministic(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data._mnist1d_arrays.cache_clear()
    random.seed(7)
    np.random.seed(7)
    before = random.random(), np.random.rand()
    random.seed(7)
    np.random.seed(7)

    train, test = mp.load_dataset("mnist1d")

    assert (random.random(), np.random.rand()) == before  # global generators untouched
    assert list(tmp_path.iterdir()) == []  # nothing downloaded or pickled in the cwd
    assert train.tensors[0].shape == (4000, 1, 40) and test.tensors[0].shape == (1000, 1, 40)
    assert train.tensors[0].dtype == torch.float32 and train.tensors[1].dtype == torch.int64
    assert set(train.tensors[1].tolist()) == set(range(10))

    data._mnist1d_arrays.cache_clear()  # regenerate: same data
    train2, test2 = mp.load_dataset("mnist1d")
    assert torch.equal(train.tensors[0], train2.tensors[0])
    assert torch.equal(test.tensors[1], test2.tensors[1])
    train.tensors[0].zero_()  # datasets do not share memory with the cache
    assert mp.load_dataset("mnist1d")[0].tensors[0].abs().sum() > 0


# --------------------------------------------------------------- torchvision, tiny files


def transform_types(dataset: Dataset) -> list[type]:
    return [type(t) for t in dataset.transform.transforms]


@pytest.mark.parametrize(
    "name, folder, mean, std",
    [("mnist", "MNIST", 0.1307, 0.3081), ("fashion-mnist", "FashionMNIST", 0.2860, 0.3530)],
)
def test_mnist_like_from_official_files(tmp_path, name, folder, mean, std, write_mnist):
    arrays = write_mnist(tmp_path, folder)
    train, test = mp.load_dataset(name, scale="full", root=tmp_path, download=False)
    assert (len(train), len(test)) == (30, 20)
    x, y = test[3]
    assert x.shape == (1, 28, 28) and y == 3
    images = torch.tensor(arrays["t10k"][0][3], dtype=torch.float32)
    assert torch.allclose(x[0], (images / 255 - mean) / std, atol=1e-5)
    assert torch.equal(data.dataset_labels(train), torch.arange(30) % 10)


def test_cifar10_from_official_files(tmp_path, monkeypatch, write_cifar):
    arrays = write_cifar(tmp_path)
    train, test = mp.load_dataset("cifar10", scale="full", root=tmp_path, download=False)
    assert (len(train), len(test)) == (20, 10)
    x, y = test[2]
    assert x.shape == (3, 32, 32) and y == arrays["test_batch"][1][2]
    pixels = torch.tensor(arrays["test_batch"][0][2], dtype=torch.float32).view(3, 32, 32) / 255
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616]).view(3, 1, 1)
    assert torch.allclose(x, (pixels - mean) / std, atol=1e-5)
    expected = sum((arrays[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert data.dataset_labels(train).tolist() == expected
    T = torchvision.transforms
    assert T.RandomCrop in transform_types(train) and T.RandomHorizontalFlip in transform_types(
        train
    )
    assert T.RandomCrop not in transform_types(test)
    assert T.RandomHorizontalFlip not in transform_types(test)
    assert train[0][0].shape == (3, 32, 32)


def test_quick_scale_takes_a_stratified_subset(tmp_path, monkeypatch, write_mnist):
    write_mnist(tmp_path, "MNIST", n_train=40, n_test=20)
    train, test = mp.load_dataset("mnist", scale="quick", root=tmp_path)
    assert isinstance(train, TensorDataset) and (len(train), len(test)) == (40, 20)  # all
    monkeypatch.setattr(data, "QUICK_TRAIN_SIZE", 20)
    monkeypatch.setattr(data, "QUICK_TEST_SIZE", 10)
    train, test = mp.load_dataset("mnist", scale="quick", root=tmp_path)
    assert torch.bincount(data.dataset_labels(train)).tolist() == [2] * 10
    assert torch.bincount(data.dataset_labels(test)).tolist() == [1] * 10
    again, _ = mp.load_dataset("mnist", scale="quick", root=tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(train.tensors, again.tensors, strict=True))


def test_minipruner_data_environment_variable(tmp_path, monkeypatch, write_mnist):
    write_mnist(tmp_path / "elsewhere", "MNIST")
    monkeypatch.setenv("MINIPRUNER_DATA", str(tmp_path / "elsewhere"))
    train, _ = mp.load_dataset("mnist", scale="full", download=False)
    assert len(train) == 30
    assert data.data_root() == tmp_path / "elsewhere"
    assert data.data_root(tmp_path) == tmp_path  # an explicit root wins
    monkeypatch.delenv("MINIPRUNER_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data.data_root() == tmp_path / "cache" / "minipruner" / "data"


@pytest.mark.parametrize(
    "name, example",
    [
        ("mnist", "MNIST/raw/train-images-idx3-ubyte"),
        ("fashion-mnist", "FashionMNIST/raw/train-images-idx3-ubyte"),
        ("cifar10", "cifar-10-batches-py/data_batch_1"),
    ],
)
def test_missing_files_without_download(tmp_path, name, example):
    with pytest.raises(mp.DatasetNotFoundError) as info:
        mp.load_dataset(name, root=tmp_path, download=False)
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert repr(name) in message and str(tmp_path / example) in message
    assert "MINIPRUNER_DATA" in message and "network" in message
    assert info.value.__cause__ is not None


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_failed_download_is_dataset_not_found(tmp_path, monkeypatch, name):
    def offline(*args, **kwargs):
        raise URLError("no network")

    # torchvision's own download code runs; only the network access fails, at once
    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", offline)
    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", offline)
    with pytest.raises(mp.DatasetNotFoundError, match="download failed") as info:
        mp.load_dataset(name, root=tmp_path, download=True)
    assert str(tmp_path) in str(info.value)


def test_bad_name_and_bad_scale():
    with pytest.raises(ValueError, match="mnist-5k, mnist1d, mnist, fashion-mnist, cifar10"):
        mp.load_dataset("imagenet")
    assert mp.DATASETS == ("mnist-5k", "mnist1d", "mnist", "fashion-mnist", "cifar10")
    with pytest.raises(ValueError, match="quick, full"):
        mp.load_dataset("mnist-5k", scale="huge")


# --------------------------------------------------------------------------- helpers


def test_class_balanced_batch():
    train, _ = mp.load_dataset("mnist-5k")
    x, y = mp.class_balanced_batch(train, per_class=3, seed=0)
    assert x.shape == (30, 1, 28, 28) and y.tolist() == sorted(list(range(10)) * 3)
    x2, y2 = mp.class_balanced_batch(train, per_class=3, seed=0)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, _ = mp.class_balanced_batch(train, per_class=3, seed=1)
    assert not torch.equal(x, x3)
    label_of = {xi.numpy().tobytes(): int(yi) for xi, yi in train}
    assert [label_of[xi.numpy().tobytes()] for xi in x] == y.tolist()  # rows of the dataset
    with pytest.raises(ValueError, match="fewer than 401"):
        mp.class_balanced_batch(train, per_class=401)


class Plain(Dataset):
    """A dataset with neither tensors nor ``.targets``: labels come from iterating it."""

    def __init__(self, labels):
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return torch.full((2,), float(i)), self.labels[i]


def test_class_balanced_batch_generic_datasets(tmp_path, write_mnist):
    x, y = mp.class_balanced_batch(Plain([1, 0, 1, 0, 1, 2, 2]), per_class=2, seed=0)
    assert y.tolist() == [0, 0, 1, 1, 2, 2]
    first = x[:, 0].tolist()  # example i holds the value i
    assert first[:2] == [1, 3] and first[4:] == [5, 6] and set(first[2:4]) < {0, 2, 4}

    write_mnist(tmp_path, "MNIST")
    train, _ = mp.load_dataset("mnist", scale="quick", root=tmp_path)  # in-memory subset
    x, y = mp.class_balanced_batch(train, per_class=2)
    assert x.shape == (20, 1, 28, 28) and y.tolist() == sorted(list(range(10)) * 2)
    label_of = {xi.numpy().tobytes(): yi for xi, yi in train}
    assert [label_of[xi.numpy().tobytes()] for xi in x] == y.tolist()


def test_reading_a_torchvision_dataset_waits_for_the_file_lock(tmp_path, write_mnist):
    # parallel cluster tasks on one machine: while another process holds the dataset's lock
    # (downloading), a reader waits instead of downloading the same files at the same time
    import subprocess
    import sys
    import threading

    write_mnist(tmp_path, "MNIST")
    release = tmp_path / "release"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, pathlib; from filelock import FileLock\n"
            "with FileLock(sys.argv[1]):\n"
            "    print('held', flush=True)\n"
            "    while not pathlib.Path(sys.argv[2]).exists(): time.sleep(0.05)\n",
            str(tmp_path / ".mnist.lock"),
            str(release),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    done = threading.Event()

    def read():
        mp.load_dataset("mnist", scale="full", root=tmp_path, download=False)
        done.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert not done.wait(0.5)  # blocked on the other process's lock
    release.touch()
    reader.join(timeout=60)
    holder.wait(timeout=60)
    assert done.is_set()
