"""Which task waits for which in ``cluster.run_plan``, with a stand-in for Ray that
records every submission (no cluster started): a shared run receives the networks of its
seed and nothing else, so two shared runs of one seed run side by side; a configuration
receives the networks and shared runs of its seed (all of them when it has no seed)."""

import types
from typing import Any

from minipruner.experiments import cluster
from minipruner.experiments.plan import Plan


class Ref:
    def __init__(self, kind: str, name: Any) -> None:
        self.kind, self.name = kind, name

    def __repr__(self) -> str:
        return f"{self.kind}:{self.name}"


class FakeRay:
    """Records ``ray.remote(fn).options(...).remote(*args)`` and answers wait/get at once."""

    def __init__(self) -> None:
        self.received: dict[str, list[str]] = {}  # task name -> the refs it was given

    def cluster_resources(self) -> dict:
        return {"CPU": 2}

    def remote(self, fn):
        ray = self

        class Options:
            def options(self, **_: Any) -> "Options":
                return self

            def remote(self, *args: Any) -> Ref:
                name = {
                    "_train_task": lambda: args[0]["name"],
                    "_shared_task": lambda: args[2]["kwargs"]["name"],
                    "_config_task": lambda: args[1]["name"],
                }[fn.__name__]()
                ray.received[name] = sorted(repr(a) for a in args if isinstance(a, Ref))
                return Ref(fn.__name__.strip("_").split("_")[0], name)

        return Options()

    def wait(self, refs: list, num_returns: int = 1) -> tuple[list, list]:
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref: Ref) -> tuple[dict, int]:
        return {"config": ref.name}, 0

    def cancel(self, ref: Ref, force: bool = False) -> None:
        pass


def test_shared_runs_wait_for_networks_only_and_configs_for_their_seed(monkeypatch):
    fake = FakeRay()
    monkeypatch.setattr(cluster, "connect", lambda address=None, num_cpus=None: fake)
    networks = [{"name": "net0", "seed": 0}, {"name": "net1", "seed": 1}]
    runs = [
        {"call": "work", "kwargs": {"name": f"run{s}{m}"}, "seed": s}
        for s in (0, 1)
        for m in ("a", "b")
    ]
    configs = [{"name": "c0", "seed": 0}, {"name": "c1", "seed": 1}, {"name": "all"}]
    stored = []
    plan = Plan(types.ModuleType("ch"), {}, configs, networks, runs)
    out = cluster.run_plan(plan, lambda i, result: stored.append((i, result)), quiet=True)
    assert out == {"trained": 2, "trained_in_configs": 0}
    assert sorted(i for i, _ in stored) == [0, 1, 2]

    received = fake.received
    assert received["run0a"] == ["train:net0"]
    assert received["run0b"] == ["train:net0"]  # not after run0a
    assert received["run1b"] == ["train:net1"]
    assert received["c0"] == ["shared:run0a", "shared:run0b", "train:net0"]
    assert received["c1"] == ["shared:run1a", "shared:run1b", "train:net1"]
    assert len(received["all"]) == 6  # no seed: everything
