"""The full-scale code path of every chapter, run end to end on the CPU: the papers' networks
and datasets (MNIST, CIFAR-10 read from tiny files in their official formats), with every
setting that sets an amount of work shrunk (one seed, a few steps, a few examples).

This cannot check the papers' numbers; it checks that `python -m minipruner reproduce N
--scale full` runs to the end, stores its results, and draws its figures and table, so a GPU
run does not fail on a code path nobody has executed.
"""

from typing import Any

import pytest

import minipruner as mp
from minipruner.book.chapters import CHAPTERS, chapter_module
from minipruner.book.runner import save_outputs

SHRINK: dict[str, Any] = {
    "seeds": [0],
    "sparsities": [0.9, 0.98],
    "layer_sparsities": [0.9],
    "trained_sparsities": [0.98],
    "shuffle_sparsities": [0.98],
    "levels": [4],
    "retrain_levels": [4],
    "iterations": 2,
    "epochs": 1,
    "batch_size": 8,
    "per_class": 2,
    "cbs_loss_per_class": 2,
    "rate_examples_per_class": 2,
    "max_iters": 2,
    "tune_steps": 2,
    "prune_every": 1,
    "examples": 20,
    "batch_sizes": [1, 2],
    "rounds": 1,
    "repeats": 1,
    "warmup": 0,
    # chapter 7: a tiny random OPT over bytes instead of OPT-125M, on WikiText-shaped files
    "pretrained": "tiny-opt",
    "windows": 4,
    "patterns": ["2:4"],
    "group_sparsities": [0.9],
    "widths": [16],
    "obc_widths": [8],
    "tokens": 32,
}


def shrink(value: Any, key: str = "") -> Any:
    """``value`` with every amount of work in :data:`SHRINK` replaced, recursively; WRNs are
    cut to depth 10 (one block per group: the same code path, a sixteenth of the work)."""
    if key in SHRINK:
        return SHRINK[key]
    if key == "depth" and isinstance(value, int):
        return min(value, 10)
    if isinstance(value, dict):
        return {k: shrink(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [shrink(v) for v in value]
    return value


@pytest.fixture
def offline_full_data(tmp_path, monkeypatch, write_mnist, write_cifar):
    write_mnist(tmp_path / "data", "MNIST", n_train=40, n_test=20)
    write_cifar(tmp_path / "data", per_batch=10, n_test=20, balanced=True)
    wikitext = pytest.importorskip("minipruner.core.pretrained")
    line = " = Pruning = \n A network loses most of its weights and keeps its accuracy . \n"
    wikitext.write_wikitext_parquet(
        tmp_path / "data" / "wikitext",
        {split: [line] * 8 for split in ("train", "validation", "test")},
    )
    monkeypatch.setenv("MINIPRUNER_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MINIPRUNER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MINIPRUNER_RESULTS", str(tmp_path / "results"))
    return tmp_path


@pytest.mark.slow  # about 4 CPU-minutes in all, most of it chapters 3 and 5
@pytest.mark.parametrize("chapter", list(CHAPTERS))
def test_full_scale_path_runs_end_to_end(chapter, offline_full_data):
    module = chapter_module(chapter)
    settings = shrink(module.settings("full"))
    results = mp.reproduce(chapter, "full", settings=settings, quiet=True)
    assert results.computed == len(results) > 0
    written = save_outputs(results)
    assert any(p.suffix == ".png" for p in written)
    assert "|---|" in (results.folder / "table.md").read_text()
    again = mp.reproduce(chapter, "full", settings=settings, compute=False)
    assert again.computed == 0 and again.records == results.records
    if chapter == "07_language_models":  # the pretrained path, not the TinyGPT trained here
        (dense,) = results.select(experiment="dense")
        assert dense["model"] == "tiny-opt" and dense["ppl"] > 1


# Through a local Ray cluster (reproduce --ray), for the chapters whose full scale reads only
# MNIST: the tiny CIFAR-10 files pass torchvision's checksum only where write_cifar patched it,
# in this process, not in Ray's workers (real CIFAR-10 files pass it everywhere).
@pytest.mark.slow
@pytest.mark.parametrize("chapter", ["01_magnitude", "06_comparison"])
def test_full_scale_path_runs_through_ray(chapter, offline_full_data):
    pytest.importorskip("ray")
    from minipruner.experiments import cluster

    cluster.connect(num_cpus=2)
    module = chapter_module(chapter)
    settings = shrink(module.settings("full"))
    results = mp.reproduce(chapter, "full", settings=settings, quiet=True, executor="ray")
    assert results.computed == len(results) > 0 and results.trained_in_configs == 0
    again = mp.reproduce(chapter, "full", settings=settings, compute=False)
    assert again.computed == 0 and again.records == results.records
