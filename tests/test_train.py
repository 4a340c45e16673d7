"""Training, evaluation, seeding, and the load-or-train cache."""

import importlib
import warnings

import pytest
import torch
from conftest import seeded_sequential
from torch import nn
from torch.utils.data import TensorDataset

import minipruner as mp

# the package re-exports the function train, which shadows the module of the same name
train_mod = importlib.import_module("minipruner.core.train")


def blobs(n: int = 200, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centres = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    x = centres[y] + torch.randn(n, 2, generator=g)
    return TensorDataset(x, y)


def small_mlp(seed: int) -> nn.Module:
    return seeded_sequential([2, 16, 3], seed)


def test_train_learns_and_evaluate_reports_loss_and_accuracy():
    data = blobs()
    net = small_mlp(0)
    before = mp.evaluate(net, data)
    history = mp.train(net, data, epochs=5, lr=0.1, batch_size=20, quiet=True, device="cpu")
    after = mp.evaluate(net, data)
    assert len(history) == 5 and history[-1] < history[0]
    assert after.loss < before.loss and after.accuracy > 0.95
    assert 0.0 <= before.accuracy <= 1.0


def test_training_is_deterministic_given_the_seed():
    data = blobs()
    a, b, c = small_mlp(3), small_mlp(3), small_mlp(3)
    for net, seed in ((a, 1), (b, 1), (c, 2)):
        mp.train(net, data, epochs=2, lr=0.05, batch_size=16, seed=seed, quiet=True, device="cpu")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))


@pytest.mark.parametrize("schedule", ["constant", "onecycle", "multistep", "cosine"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_every_optimizer_and_schedule_runs(schedule, optimizer):
    net = small_mlp(0)
    lr = 0.05 if optimizer == "sgd" else 0.01
    mp.train(
        net,
        blobs(),
        iterations=30,
        lr=lr,
        batch_size=20,
        optimizer=optimizer,
        schedule=schedule,
        milestones=(1,),
        quiet=True,
        device="cpu",
    )
    assert mp.evaluate(net, blobs()).accuracy > 0.8


def test_iterations_counts_optimizer_steps():
    steps = []
    net = small_mlp(0)
    net.register_forward_hook(lambda *a: steps.append(1))
    mp.train(net, blobs(), iterations=23, batch_size=20, quiet=True, device="cpu")
    assert len(steps) == 23


def test_train_bad_arguments():
    with pytest.raises(ValueError, match="optimizer"):
        mp.train(small_mlp(0), blobs(), optimizer="rmsprop", quiet=True)
    with pytest.raises(ValueError, match="schedule"):
        mp.train(small_mlp(0), blobs(), schedule="step", quiet=True)
    with pytest.raises(ValueError, match="empty"):
        mp.train(small_mlp(0), TensorDataset(torch.zeros(0, 2), torch.zeros(0)), quiet=True)


def test_default_device_is_cuda_only_when_available():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert mp.default_device().type == expected


def test_load_or_compute_caches_and_recomputes_corrupt_or_stale(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"w": torch.arange(3.0)}

    config = {"a": 1, "b": (1, 2)}
    first = mp.load_or_compute("thing", config, compute, tmp_path)
    second = mp.load_or_compute("thing", {"b": [1, 2], "a": 1}, compute, tmp_path)
    assert len(calls) == 1 and torch.equal(first["w"], second["w"])
    (entry,) = (tmp_path / "thing").glob("*.pt")
    assert not list((tmp_path / "thing").glob("*.tmp"))  # atomic write leaves no temp file

    entry.write_bytes(b"truncated garbage")
    with pytest.warns(UserWarning, match="unreadable cache entry"):
        third = mp.load_or_compute("thing", config, compute, tmp_path)
    assert len(calls) == 2 and torch.equal(third["w"], first["w"])

    # a file holding another configuration under this key is stale: recomputed
    torch.save({"config": {"other": True}, "result": 0}, entry)
    with pytest.warns(UserWarning, match="stale cache entry"):
        mp.load_or_compute("thing", config, compute, tmp_path)
    assert len(calls) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mp.load_or_compute("thing", config, compute, tmp_path)
    assert len(calls) == 3


def test_failed_compute_leaves_no_entry(tmp_path):
    def boom():
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        mp.load_or_compute("thing", {"a": 1}, boom, tmp_path)
    assert not list(tmp_path.rglob("*.pt"))


def test_trained_uses_the_cache_keyed_by_full_config(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIPRUNER_CACHE", str(tmp_path))
    fits = []
    real_train = train_mod.train

    def counting_train(*args, **kwargs):
        fits.append(kwargs.get("lr"))
        return real_train(*args, **kwargs)

    monkeypatch.setattr(train_mod, "train", counting_train)
    kw = dict(iterations=2, batch_size=50, quiet=True, device="cpu", scale="quick")
    a = mp.trained("mlpnet", "mnist-5k", seed=0, lr=0.01, **kw)
    b = mp.trained("mlpnet", "mnist-5k", seed=0, lr=0.01, **kw)
    assert len(fits) == 1
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    mp.trained("mlpnet", "mnist-5k", seed=0, lr=0.02, **kw)
    mp.trained("mlpnet", "mnist-5k", seed=1, lr=0.01, **kw)
    assert len(fits) == 3
    assert not a.training
    with pytest.raises(ValueError, match="unknown training argument"):
        mp.trained("mlpnet", "mnist-5k", learning_rate=0.1, **kw)


def test_seed_everything_makes_model_init_reproducible():
    mp.seed_everything(7)
    a = mp.get_model("mlpnet")
    mp.seed_everything(7)
    b = mp.get_model("mlpnet")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
