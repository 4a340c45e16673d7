"""One plan of a chapter's missing work, which every executor consumes.

Running a chapter's missing configurations is three steps: train the networks they share
(:func:`minipruner.experiments.protocol.shared_networks`), run the other work they share
(:func:`minipruner.experiments.protocol.shared_runs`), then run each configuration and store its
result. :func:`plan_work` lists all three for the configurations that have no result yet,
keeping of the shared work only what the seeds of those configurations need;
the serial executor (:func:`minipruner.book.runner.run_serial`) runs a plan one step after
another, the Ray executor (:func:`minipruner.experiments.cluster.run_plan`) as tasks that wait for
the networks and runs of their seed (:meth:`Plan.needs`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from .protocol import shared_networks, shared_runs


@dataclass
class Plan:
    """The work that stands between a chapter's stored results and all of them.

    ``configs``: the configurations to run, in the chapter's order; ``networks``: the shared
    networks their seeds need (:func:`minipruner.core.train.trained` keyword arguments), trained
    first; ``runs``: the shared runs their seeds need, run after the networks. A
    configuration without a ``"seed"`` needs all of them."""

    module: ModuleType
    settings: dict[str, Any]
    configs: list[dict[str, Any]]
    networks: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def chapter(self) -> str:
        """The module path of the chapter (what a cluster worker imports)."""
        return self.module.__name__

    def __len__(self) -> int:
        return len(self.configs)

    @staticmethod
    def needs(config_seed: Any, seed: Any) -> bool:
        """Whether shared work of ``seed`` must finish before work of ``config_seed`` starts
        (and hands it its results): the same seed, or ``config_seed`` is ``None`` (work
        without a seed needs every seed's)."""
        return config_seed is None or config_seed == seed


def plan_work(
    module: ModuleType, settings: Mapping[str, Any], configs: Sequence[Mapping[str, Any]]
) -> Plan:
    """The plan that runs ``configs`` (the missing configurations of the chapter ``module``
    at ``settings``): the shared networks and shared runs of their seeds only (all of them
    when one configuration has no seed), then the configurations."""
    settings = dict(settings)
    seeds = {c.get("seed") for c in configs}

    def of_these_seeds(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in entries if e["seed"] in seeds or None in seeds]

    if not configs:
        return Plan(module, settings, [])
    return Plan(
        module,
        settings,
        [dict(c) for c in configs],
        of_these_seeds(shared_networks(module, settings)),
        of_these_seeds(shared_runs(module, settings)),
    )
