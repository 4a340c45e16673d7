"""Override a chapter's settings from the command line: ``--set key=value``.

``apply_overrides(settings, ["train.epochs=3", "sparsities=[0.5, 0.9]"])`` returns a copy
of ``settings`` with each dotted key replaced by its value. The value is read as JSON where
it parses (``3``, ``0.5``, ``true``, ``null``, ``[0.5, 0.9]``, ``{"lr": 0.1}``) and as a
plain string otherwise, and it must have the type of the value it replaces, so that a typo
fails at once with a clear message instead of running the wrong experiment.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any

FORBIDDEN = {"scale": "--scale", "seed_offset": "--seed-offset"}


def parse_assignment(text: str) -> tuple[list[str], Any]:
    """``"a.b=value"`` as ``(["a", "b"], value)``: the value read as JSON where it parses,
    else as the string itself. Raises ``ValueError`` without ``=`` or with an empty key part."""
    key, sep, raw = text.partition("=")
    path = key.strip().split(".")
    if not sep or not all(part.strip() for part in path):
        raise ValueError(f"--set expects key=value (dotted keys for nested settings), got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return [part.strip() for part in path], value


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def checked_value(key: str, default: Any, value: Any) -> Any:
    """``value`` if it has the type of ``default`` (the setting it replaces), else a
    ``ValueError`` naming the key and both types. An integer stands for a float (and becomes
    one); a ``bool`` is not an integer; a list's items must have the type of the default
    list's items (when those share one type); a ``None`` default takes any value."""
    if default is None:
        return value
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(default, bool) and isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ValueError(
            f"--set {key}: expected {_type_name(default)} like {json.dumps(default)}, "
            f"got {_type_name(value)} {json.dumps(value)}"
        )
    if isinstance(default, list) and default:
        kinds = {type(item) for item in default}
        if len(kinds) == 1:
            value = [checked_value(f"{key}[{i}]", default[0], v) for i, v in enumerate(value)]
    return value


def apply_overrides(settings: Mapping[str, Any], assignments: Iterable[str]) -> dict[str, Any]:
    """A copy of ``settings`` with every ``key=value`` of ``assignments`` applied in order
    (:func:`parse_assignment`, :func:`checked_value`). A dotted key walks into nested
    settings. Raises ``ValueError`` for an unknown key (listing the known ones at that
    level), a value of the wrong type, or ``scale``/``seed_offset``, which have their own
    flags."""
    out = copy.deepcopy(dict(settings))
    for text in assignments:
        path, value = parse_assignment(text)
        if path[0] in FORBIDDEN:
            raise ValueError(f"--set {path[0]}: use {FORBIDDEN[path[0]]} instead")
        node: Any = out
        for depth, part in enumerate(path):
            where = ".".join(path[:depth]) or "the settings"
            if not isinstance(node, dict):
                raise ValueError(f"--set {'.'.join(path)}: {where} is not a mapping")
            if part not in node:
                known = ", ".join(sorted(node)) or "none"
                raise ValueError(
                    f"--set {'.'.join(path)}: unknown key {part!r} in {where} (known: {known})"
                )
            if depth == len(path) - 1:
                node[part] = checked_value(".".join(path), node[part], value)
            else:
                node = node[part]
    return out
