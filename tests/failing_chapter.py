"""A chapter module for tests/test_cluster.py whose configuration ``x = 2`` raises; it lives
in tests/ so that Ray's workers can import it (the test puts this folder on PYTHONPATH)."""

from typing import Any

VERSION = 1
TITLE = "a chapter with one failing configuration"
GRID = ("xs",)


def settings(scale: str) -> dict[str, Any]:
    return {"xs": [0, 1, 2, 3], "scale": scale, "seed_offset": 0}


def configurations(settings: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"x": x} for x in settings["xs"]]


def run(config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    if config["x"] == 2:
        raise ValueError("x is 2")
    return {"square": config["x"] ** 2}


def figures(results: Any) -> dict:
    return {}


def table(results: Any) -> str:
    return ""


def claims(results: Any) -> list:
    return []
