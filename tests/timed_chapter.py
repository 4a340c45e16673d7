"""A chapter module for tests/test_processes.py: four configurations of two seeds that each
log when they start (with their process id) and end (to ``$MINIPRUNER_TEST_CALLS_FILE``),
sleep ``$MINIPRUNER_TEST_SLEEP`` seconds (default 0.3) and return the process that ran them,
and one ``timing`` configuration listed in ``TIMED``; each seed has a shared run (seed 1's
slow). It lives in tests/ so that the worker
processes can import it (they inherit ``sys.path``)."""

import os
import time
from typing import Any

VERSION = 1
TITLE = "a chapter whose configurations log when they run"
TIMED = ("timing",)


def settings(scale: str, seed_offset: int | None = None) -> dict[str, Any]:
    return {"seeds": [0, 1], "scale": scale, "seed_offset": 0}


def configurations(settings: dict[str, Any]) -> list[dict[str, Any]]:
    work = [{"experiment": "work", "seed": s, "k": k} for s in settings["seeds"] for k in (0, 1)]
    return [{"experiment": "timing", "seed": 0}, *work]


def shared_runs(settings: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"call": "prepare", "kwargs": {"seed": s}, "seed": s} for s in settings["seeds"]]


def prepare(settings: dict[str, Any], seed: int) -> None:
    """A seed's shared work, logged like a configuration: seed 1's takes longer."""
    with open(os.environ["MINIPRUNER_TEST_CALLS_FILE"], "a") as f:
        f.write(f"start prepare-{seed} {time.time()!r} {os.getpid()}\n")
    time.sleep(2.0 if seed == 1 else 0.1)
    with open(os.environ["MINIPRUNER_TEST_CALLS_FILE"], "a") as f:
        f.write(f"end prepare-{seed} {time.time()!r}\n")


def run(config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    name = f"{config['experiment']}-{config['seed']}-{config.get('k', '')}"
    with open(os.environ["MINIPRUNER_TEST_CALLS_FILE"], "a") as f:
        f.write(f"start {name} {time.time()!r} {os.getpid()}\n")
    time.sleep(float(os.environ.get("MINIPRUNER_TEST_SLEEP", "0.3")))
    with open(os.environ["MINIPRUNER_TEST_CALLS_FILE"], "a") as f:
        f.write(f"end {name} {time.time()!r}\n")
    return {"pid": os.getpid(), "value": 10 * config["seed"] + config.get("k", 0)}


def figures(results: Any) -> dict:
    return {}


def table(results: Any) -> str:
    return ""


def claims(results: Any) -> list:
    return []
