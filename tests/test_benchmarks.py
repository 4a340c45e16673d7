"""The benchmark scripts' own functions on tiny inputs, so that a change of the package's API
shows here and not first on a GPU machine (the scripts are not run end to end: they time
things), and the full-scale estimate's scheduler and cost model of every chapter."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from minipruner.book.chapters import CHAPTERS

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_device_pipeline_times_both_pipelines_on_a_small_set():
    bench = load("device_pipeline")
    data = bench.SyntheticCIFAR10(64)
    cpu = torch.device("cpu")
    for pipeline in ("loader", "device"):
        assert bench.timed_data(data, 2, pipeline, cpu) > 0
        model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
        assert bench.timed_training(model, data, 1, pipeline, cpu) > 0


# ------------------------------------------------------ benchmarks/full_scale_estimate.py

fe = load("full_scale_estimate")


def test_full_scale_estimate_times_a_training_step():
    item = fe.net("mlpnet", None, "mnist", {"batch_size": 4})
    assert fe.step_time(item, torch.device("cpu"), warmup=1, repeats=2) > 0


def test_list_scheduling_respects_dependencies_and_workers():
    # two networks (3 and 1), then a task on each, then one on both
    durations, deps = [3.0, 1.0, 2.0, 2.0, 1.0], [[], [], [0], [1], [0, 1]]
    assert fe.wall_time(durations, deps, 1) == sum(durations)
    # 2 workers: 0 on w0 [0,3]; 1 on w1 [0,1], 3 on w1 [1,3]; 2 [3,5] and 4 [3,4]
    assert fe.wall_time(durations, deps, 2) == 5.0
    assert fe.wall_time(durations, deps, 5) == 5.0  # the critical path 0 -> 2
    assert fe.wall_time([], [], 3) == 0.0


def test_steps_from_iterations_or_epochs():
    assert fe.steps({"iterations": 50_000, "batch_size": 60}, "mnist") == 50_000
    assert fe.steps({"epochs": 160, "batch_size": 128}, "cifar10") == 160 * 391
    assert fe.steps({"epochs": 2}, "mnist") == 2 * 469  # the default batch of 128


@pytest.mark.parametrize("scale", ["quick", "full"])
@pytest.mark.parametrize("name", CHAPTERS)
def test_every_chapter_has_a_cost_model_at_both_scales(name, scale):
    plan = fe.tasks(name, scale)
    assert plan and all(d < i for i, t in enumerate(plan) for d in t.deps)  # submission order
    configs = [t for t in plan if t.kind == "config"]
    if name in ("01_magnitude", "02_lookahead", "03_init_pruning", "06_comparison"):
        assert any(t.work for t in configs)  # they retrain or train
    for t in plan:
        for item, n in t.work:
            assert n > 0 and item.batch_size > 0 and item.dataset in fe.INPUT


def test_chapter_5_at_the_full_scale_counts_what_its_settings_say():
    plan = fe.tasks("05_structured", "full")
    runs = [t for t in plan if t.kind == "shared"]
    assert len(runs) == 6  # 3 seeds x 2 methods
    ((item, n),) = runs[0].work
    # 75 % of WRN-40-2's 1,344 interior channels, one every 100 steps, then 2,000 more
    assert n == 1008 * 100 + 2000 and item.model == "wrn"
    assert all(all(plan[d].kind == "network" for d in t.deps) for t in runs)


# ------------------------------------------------------------ benchmarks/fisher_inverse.py


def test_fisher_inverse_measures_the_machines_rates():
    bench = load("fisher_inverse")
    assert bench.gemm_rate(torch.float64, size=64, repeats=1) > 0
    assert bench.bandwidth(torch.float64, numel=1 << 12, repeats=1) > 0
    assert bench._cbs_args({"cbs": {"rho": 1, "tau": 2, "epsilon": 0.1, "n_starts": 5}}) == {
        "rho": 1,
        "tau": 2,
        "epsilon": 0.1,
    }


def test_semi_structured_weight_is_two_of_four_and_cpu_says_why_it_measures_nothing(capsys):
    bench = load("semi_structured")
    w = bench.two_four_weight(8, 16, seed=3)
    groups = (w != 0).reshape(8, 4, 4).sum(-1)
    assert groups.eq(2).all()  # exactly 2 kept in every 4 consecutive weights of a row
    ok, why = bench.support()
    if torch.cuda.is_available():
        pytest.skip(f"a CUDA machine: {why}")
    assert not ok and "no CUDA device" in why
    assert bench.main(["--rounds", "1"]) == 0
    assert "2:4 speed not measured: no CUDA device" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="no CUDA"):
        bench.measure()
    with pytest.raises(SystemExit):
        bench.main(["--rounds", "0"])
