"""The device data pipeline (minipruner.core.device_data) on the CPU: the crop and flip
distributions, the crop's definition, the normalisation against the CPU path's transform,
epochs that visit every example once, seeding, and train(..., pipeline="device")."""

import importlib
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from scipy import stats
from torch import nn
from torch.utils.data import Subset, TensorDataset

import minipruner as mp
from minipruner.core import device_data as dd

train_mod = importlib.import_module("minipruner.core.train")

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def position_images(n: int, size: int = 32) -> torch.Tensor:
    """``n`` identical uint8 images whose channel 0 holds row + 1 and channel 1 column + 1
    (so 0 only in the padding): the crop offset and flip can be read off the output."""
    rows = torch.arange(1, size + 1, dtype=torch.uint8)
    image = torch.stack([rows[:, None].expand(size, size), rows[None, :].expand(size, size)])
    return image.expand(n, 2, size, size).contiguous()


def read_draws(out: torch.Tensor, padding: int = 4) -> tuple[torch.Tensor, ...]:
    """Offsets and flips recovered from crops of :func:`position_images` (size 32, p = 4).

    Row i of a crop at dy shows image row dy + i - p (value dy + i - p + 1); the middle row
    16 is always inside the image. Unflipped, column 16 shows image column dx + 16 - p;
    flipped, column 15 does (out[..., j] = padded[..., dx + W - 1 - j])."""
    middle = 16
    dy = out[:, 0, middle, middle].long() - 1 - middle + padding
    flip = out[:, 1, middle, middle + 1] < out[:, 1, middle, middle]
    col = torch.where(flip, out[:, 1, middle, middle - 1], out[:, 1, middle, middle])
    dx = col.long() - 1 - middle + padding
    return dy, dx, flip


def test_crop_offsets_are_uniform_over_all_81_and_flips_have_rate_one_half():
    n = 81 * 200
    x = position_images(n)
    out = dd.random_crop_flip(x, torch.Generator().manual_seed(0), padding=4)
    assert out.shape == x.shape and out.dtype == torch.uint8
    dy, dx, flip = read_draws(out)
    assert dy.min() == 0 and dy.max() == 8 and dx.min() == 0 and dx.max() == 8
    counts = torch.bincount(dy * 9 + dx, minlength=81).double()
    assert (counts > 0).all()  # every one of the 81 offsets occurs
    expected = n / 81
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < stats.chi2.ppf(1 - 1e-4, df=80)  # about 130
    # flips: Binomial(n, 1/2), within 4.5 standard deviations
    assert abs(flip.sum().item() - n / 2) < 4.5 * math.sqrt(n / 4)
    # the flip is drawn independently of the offset: rate about 1/2 in each column offset
    per_dx = torch.stack([flip[dx == k].double().mean() for k in range(9)])
    assert (per_dx - 0.5).abs().max() < 4.5 * math.sqrt(0.25 / (n / 9))


def test_the_recovered_draws_are_the_drawn_ones():
    x = position_images(500)
    out = dd.random_crop_flip(x, torch.Generator().manual_seed(3))
    draws = dd.draw_crop_flip(500, torch.Generator().manual_seed(3))
    dy, dx, flip = read_draws(out)
    assert torch.equal(dy, draws.dy) and torch.equal(dx, draws.dx)
    assert torch.equal(flip, draws.flip)


def test_crop_is_the_padded_image_sliced_at_the_offset_and_flip_is_torch_flip():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (64, 3, 32, 32), generator=g, dtype=torch.uint8)
    draws = dd.draw_crop_flip(64, torch.Generator().manual_seed(2))
    out = dd.crop_flip(x, draws)
    padded = F.pad(x, (4, 4, 4, 4))
    assert draws.flip.any() and not draws.flip.all()
    for b in range(64):
        i, j = int(draws.dy[b]), int(draws.dx[b])
        crop = padded[b, :, i : i + 32, j : j + 32]
        expected = torch.flip(crop, dims=[-1]) if draws.flip[b] else crop
        assert torch.equal(out[b], expected), b
    unflipped = dd.CropFlip(draws.dy, draws.dx, torch.zeros(64, dtype=torch.bool))
    flipped = dd.CropFlip(draws.dy, draws.dx, torch.ones(64, dtype=torch.bool))
    assert torch.equal(dd.crop_flip(x, flipped), torch.flip(dd.crop_flip(x, unflipped), [-1]))
    # offset (p, p) without flip is the identity; random_crop_flip uses draw_crop_flip
    centre = dd.CropFlip(torch.full((64,), 4), torch.full((64,), 4), unflipped.flip)
    assert torch.equal(dd.crop_flip(x, centre), x)
    again = dd.random_crop_flip(x, torch.Generator().manual_seed(2))
    assert torch.equal(again, out)


def test_normalisation_matches_the_cpu_path(tmp_path, write_cifar):
    arrays = write_cifar(tmp_path, per_batch=6, n_test=10)
    train, test = mp.load_dataset("cifar10", scale="full", root=tmp_path, download=False)
    on_cpu = dd.DeviceDataset.from_dataset(test, "cpu")
    assert not on_cpu.augment and on_cpu.images.dtype == torch.uint8
    x, y = next(on_cpu.batches(100))
    assert torch.equal(x, torch.stack([test[i][0] for i in range(len(test))]))
    assert y.tolist() == arrays["test_batch"][1]
    # the training set: augmented by its transform; without augmentation the same
    # normalisation as the CPU path's ToTensor + Normalize on the stored images
    device_train = dd.DeviceDataset.from_dataset(train, "cpu")
    assert device_train.augment
    assert torch.allclose(device_train.mean, torch.tensor(CIFAR_MEAN))
    assert torch.allclose(device_train.std, torch.tensor(CIFAR_STD))
    T = torchvision.transforms
    plain = T.Compose([T.ToTensor(), T.Normalize(CIFAR_MEAN, CIFAR_STD)])
    expected = torch.stack([plain(img) for img in train.data])
    x, _ = next(device_train.batches(len(train)))
    assert torch.equal(x, expected)
    # a Subset (the quick scale's) keeps its examples in order
    subset = dd.DeviceDataset.from_dataset(Subset(train, [5, 2, 7]), "cpu")
    assert torch.equal(next(subset.batches(3))[0], expected[[5, 2, 7]])
    # an augmented epoch: the permutation, then one crop and flip per position, then the
    # normalisation; the padding is black, (0 - mean) / std
    n = len(train)
    x, y = next(device_train.epoch_batches(n, torch.Generator().manual_seed(0)))
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(n, generator=g)
    draws = dd.draw_crop_flip(n, g)
    pixels = device_train.images[order]
    assert torch.equal(
        x, dd.normalise(dd.crop_flip(pixels, draws), device_train.mean, device_train.std)
    )
    assert torch.equal(y, device_train.labels[order])
    top_padded = draws.dy < 4  # row 0 of these crops is padding
    assert top_padded.any()
    black = -torch.tensor(CIFAR_MEAN) / torch.tensor(CIFAR_STD)
    assert torch.allclose(x[top_padded][:, :, 0, :], black[None, :, None].expand(-1, -1, 32))


def id_dataset(n: int) -> dd.DeviceDataset:
    """``n`` random uint8 CIFAR-shaped images labelled 0..n-1 (labels identify examples)."""
    g = torch.Generator().manual_seed(n)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    mean, std = torch.tensor(CIFAR_MEAN), torch.tensor(CIFAR_STD)
    return dd.DeviceDataset(images, torch.arange(n), mean, std, augment=True)


@pytest.mark.parametrize(("n", "batch_size"), [(40, 8), (40, 40), (37, 8), (37, 5), (5, 8)])
@pytest.mark.parametrize("augment", [True, False])
def test_one_epoch_visits_every_example_once(n, batch_size, augment):
    data = id_dataset(n)
    parts = list(data.epoch_batches(batch_size, torch.Generator().manual_seed(0), augment))
    assert len(parts) == math.ceil(n / batch_size)
    assert [len(y) for _, y in parts[:-1]] == [batch_size] * (len(parts) - 1)
    assert all(x.shape == (len(y), 3, 32, 32) and x.dtype == torch.float32 for x, y in parts)
    seen = torch.cat([y for _, y in parts])
    assert torch.equal(seen.sort().values, torch.arange(n))
    if n > 1 and batch_size < n:
        assert not torch.equal(seen, torch.arange(n))  # shuffled


def test_same_seed_same_batches_other_seed_other_batches():
    data = id_dataset(37)

    def epoch(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return list(data.epoch_batches(8, torch.Generator().manual_seed(seed)))

    a, b, c = epoch(5), epoch(5), epoch(6)
    assert all(
        torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b, strict=True)
    )
    assert not torch.equal(torch.cat([y for _, y in a]), torch.cat([y for _, y in c]))
    # not augmented: the stored images of the same examples, normalised
    plain = list(data.epoch_batches(8, torch.Generator().manual_seed(5), augment=False))
    assert all(torch.equal(ya, yp) for (_, ya), (_, yp) in zip(a, plain, strict=True))
    x, y = plain[0]
    assert torch.equal(x, dd.normalise(data.images[y], data.mean, data.std))


def test_bad_inputs_are_refused():
    floats = TensorDataset(torch.randn(4, 3, 8, 8), torch.arange(4))
    data = dd.DeviceDataset.from_dataset(floats, "cpu")  # used as they are, no augmentation
    assert not data.augment and data.mean is None
    assert torch.equal(next(data.batches(4))[0], floats.tensors[0])
    with pytest.raises(ValueError, match="uint8"):
        next(data.epoch_batches(2, torch.Generator(), augment=True))
    with pytest.raises(ValueError, match="mean and std"):
        dd.DeviceDataset.from_dataset(
            TensorDataset(torch.zeros(2, 3, 4, 4).byte(), torch.zeros(2)), "cpu"
        )
    with pytest.raises(ValueError, match="batch_size"):
        next(id_dataset(4).epoch_batches(0, torch.Generator()))
    with pytest.raises(TypeError, match="torchvision image dataset"):
        dd.DeviceDataset.from_dataset([(torch.zeros(3, 4, 4), 0)], "cpu")


def tiny_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 10),
    )


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_train_with_the_device_pipeline_trains_and_is_seeded(tmp_path, write_cifar):
    write_cifar(tmp_path, per_batch=8, n_test=10)
    train, test = mp.load_dataset("cifar10", scale="full", root=tmp_path, download=False)
    kw = dict(epochs=2, lr=0.1, batch_size=16, quiet=True, device="cpu", pipeline="device")
    start, a, b, c = tiny_cnn(), tiny_cnn(), tiny_cnn(), tiny_cnn()
    history = mp.train(a, train, seed=1, **kw)
    mp.train(b, train, seed=1, **kw)
    mp.train(c, train, seed=2, **kw)
    assert len(history) == 2 and all(math.isfinite(h) for h in history)
    assert not same_weights(a, start)  # it trained
    assert same_weights(a, b) and not same_weights(a, c)  # seeded
    # evaluation on the device equals the CPU path's
    loader, device = mp.evaluate(a, test), mp.evaluate(a, test, pipeline="device")
    assert device.accuracy == loader.accuracy
    assert device.loss == pytest.approx(loader.loss, rel=1e-6)
    with pytest.raises(ValueError, match="unknown pipeline"):
        mp.train(tiny_cnn(), train, **{**kw, "pipeline": "gpu"})


def test_the_default_pipeline_is_the_loader_and_never_builds_a_device_dataset(
    tmp_path, write_cifar, monkeypatch
):
    write_cifar(tmp_path, per_batch=8, n_test=10)
    train, _ = mp.load_dataset("cifar10", scale="full", root=tmp_path, download=False)

    def refuse(*args, **kwargs):
        raise AssertionError("the loader path built a DeviceDataset")

    monkeypatch.setattr(dd.DeviceDataset, "from_dataset", refuse)
    kw = dict(epochs=1, lr=0.1, batch_size=16, seed=3, quiet=True, device="cpu")
    a, b = tiny_cnn(), tiny_cnn()
    torch.manual_seed(0)  # the CPU path's transforms draw from the global generator
    mp.train(a, train, **kw)
    torch.manual_seed(0)
    mp.train(b, train, pipeline="loader", **kw)
    assert same_weights(a, b)
    assert "pipeline" not in train_mod.TRAIN_DEFAULTS


def test_trained_keys_the_cache_by_pipeline_only_when_it_is_not_the_default(monkeypatch):
    keys = []

    def record(kind, config, compute):
        keys.append(config)
        raise StopIteration

    monkeypatch.setattr(train_mod, "load_or_compute", record)
    for pipeline in (None, "loader", "device"):
        extra = {} if pipeline is None else {"pipeline": pipeline}
        with pytest.raises(StopIteration):
            mp.trained("mlpnet", "mnist-5k", scale="quick", iterations=1, **extra)
    default, loader, device = keys
    assert default == loader and "pipeline" not in default
    assert device == {**default, "pipeline": "device"}


def test_the_epoch_loss_is_summed_as_python_floats_would_be():
    """train sums the epoch's loss on the device in float64 (no per-step read); with lr 0
    the history must equal the sum of loss.item() * len(y) in Python floats, exactly."""
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(53, 3, 8, 8, generator=g), torch.randint(0, 10, (53,)))
    net = tiny_cnn()
    history = mp.train(net, data, epochs=2, lr=0.0, momentum=0.0, batch_size=8, seed=4, quiet=True)
    net.train()
    expected = []
    for epoch in range(2):
        total, count = 0.0, 0
        for x, y in train_mod.batches(data, 8, shuffle=True, seed=4 + epoch):
            total += nn.functional.cross_entropy(net(x), y).item() * len(y)
            count += len(y)
        expected.append(total / count)
    assert history == expected


def test_prune_and_finetune_reads_the_device_pipeline_and_is_seeded(tmp_path, write_cifar):
    """Chapter 5's pruning run at the full scale draws its fine-tuning batches on the device:
    the same channel schedule as the loader path (one removal every K steps), seeded."""
    from minipruner.core.models import WideResNet
    from minipruner.methods import structured as st

    write_cifar(tmp_path, per_batch=8, n_test=10)
    train, _ = mp.load_dataset("cifar10", scale="full", root=tmp_path, download=False)

    def run(seed: int, pipeline: str = "device") -> list:
        torch.manual_seed(0)
        model = WideResNet(10, 1, num_classes=10, interior=0.125)  # 14 interior channels
        kw = dict(prune_every=2, n_prune=3, batch_size=16, quiet=True, device="cpu")
        fractions = [k / 14 for k in range(4)]
        return st.prune_and_finetune(
            model, train, snapshots_at=fractions, seed=seed, pipeline=pipeline, **kw
        )

    a, b, c = run(1), run(1), run(2)
    assert [s.removed for s in a] == [0, 1, 2, 3] and [s.step for s in a] == [0, 2, 4, 6]
    assert [s.widths for s in a] == [s.widths for s in b]
    assert same_weights(a[-1].model, b[-1].model)  # seeded
    assert not same_weights(a[-1].model, c[-1].model)  # another seed, other batches
    with pytest.raises(ValueError, match="unknown pipeline"):
        run(1, pipeline="gpu")
