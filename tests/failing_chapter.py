"""A chapter module for tests/test_cluster.py whose configuration ``x = 2`` raises and whose
configurations share one cached piece of work (``squares``, declared in ``shared_runs``); it
lives in tests/ so that Ray's workers can import it (the test puts this folder on PYTHONPATH)."""

import os
from pathlib import Path
from typing import Any

from minipruner.core.store import load_or_compute

VERSION = 1
TITLE = "a chapter with one failing configuration"
GRID = ("xs",)


def settings(scale: str) -> dict[str, Any]:
    return {"xs": [0, 1, 2, 3], "scale": scale, "seed_offset": 0}


def configurations(settings: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"x": x} for x in settings["xs"]]


def shared_runs(settings: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"call": "squares", "kwargs": {}, "seed": None}]


def squares(settings: dict[str, Any]) -> dict[str, int]:
    """The shared work: cached; each computation adds a line to $MINIPRUNER_TEST_CALLS_FILE."""

    def compute() -> dict[str, int]:
        with open(os.environ["MINIPRUNER_TEST_CALLS_FILE"], "a") as f:
            f.write("computed\n")
        return {str(x): x * x for x in settings["xs"]}

    return load_or_compute("test-squares", {"xs": settings["xs"]}, compute)


def run(config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    if config["x"] == 2:
        raise ValueError("x is 2")
    return {"square": squares(settings)[str(config["x"])]}


def calls() -> int:
    path = Path(os.environ["MINIPRUNER_TEST_CALLS_FILE"])
    return len(path.read_text().splitlines()) if path.exists() else 0


def figures(results: Any) -> dict:
    return {}


def table(results: Any) -> str:
    return ""


def claims(results: Any) -> list:
    return []
