"""Storing results: the cache folder, a stable key for a configuration, an atomic file
writer, and a load-or-compute cache keyed by the full configuration.

Training (:func:`minipruner.core.train.trained`) and the chapters' results
(:mod:`minipruner.experiments.records`) both store through these, so neither needs the other to
write a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CACHE_VERSION",
    "Entry",
    "cache_dir",
    "config_key",
    "load_or_compute",
    "preloaded",
    "recording",
    "write_atomic",
]

CACHE_VERSION = 1

Entry = tuple[str, dict[str, Any], Any]
"""One cached result: ``(kind, normalised config, result)``, as :func:`recording` collects it
and :func:`preloaded` hands it back."""

_PRELOADED: dict[tuple[str, str], Entry] = {}
_RECORDERS: list[list[tuple[str, dict[str, Any], Any, bool]]] = []


@contextlib.contextmanager
def preloaded(entries: Iterable[Entry]) -> Iterator[None]:
    """Inside the block, :func:`load_or_compute` returns these results for their exact
    configurations without reading or writing the disk. How a cluster task receives a network
    that another task trained (:mod:`minipruner.experiments.cluster`) instead of training it again
    or racing on a shared cache folder."""
    added = []
    for kind, config, result in entries:
        key = (kind, config_key(config))
        if key not in _PRELOADED:
            _PRELOADED[key] = (kind, config, result)
            added.append(key)
    try:
        yield
    finally:
        for key in added:
            del _PRELOADED[key]


@contextlib.contextmanager
def recording() -> Iterator[list[tuple[str, dict[str, Any], Any, bool]]]:
    """Collect every :func:`load_or_compute` call made inside the block as
    ``(kind, normalised config, result, computed)``, ``computed`` telling whether the result
    had to be computed (neither preloaded nor on disk)."""
    calls: list[tuple[str, dict[str, Any], Any, bool]] = []
    _RECORDERS.append(calls)
    try:
        yield calls
    finally:
        _RECORDERS.remove(calls)


def _record(kind: str, config: dict[str, Any], result: Any, computed: bool) -> Any:
    for calls in _RECORDERS:
        calls.append((kind, config, result, computed))
    return result


def cache_dir() -> Path:
    """The cache folder: ``$MINIPRUNER_CACHE``, else ``$XDG_CACHE_HOME/minipruner``,
    else ``~/.cache/minipruner``."""
    if os.environ.get("MINIPRUNER_CACHE"):
        return Path(os.environ["MINIPRUNER_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "minipruner"


def config_key(config: dict[str, Any]) -> str:
    """A stable hash of a JSON-serialisable configuration."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _normalise(config: dict[str, Any]) -> dict[str, Any]:
    # Round-trip through JSON so tuples and lists (and so on) compare equal after loading.
    return json.loads(json.dumps(config, sort_keys=True, default=str))


def write_atomic(path: Path, write: Callable[[Any], None], mode: str = "w") -> None:
    """Write a file atomically: ``write(f)`` fills a temporary file in ``path``'s folder,
    which is flushed to disk and then renamed over ``path`` (``os.replace``), so a reader
    never sees half a file and an interrupted write leaves the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_or_compute(
    kind: str,
    config: dict[str, Any],
    compute: Callable[[], Any],
    directory: str | os.PathLike | None = None,
) -> Any:
    """Return the cached result of ``compute()`` for ``config``, computing it when needed.

    The entry lives at ``<cache_dir>/<kind>/<hash of config>.pt`` and stores the config
    beside the result. It is recomputed, with a warning and never a crash, when the file
    cannot be read (corrupt, truncated) or holds another configuration (stale). Writes
    are atomic: a temporary file in the same folder, then ``os.replace``. The result
    must be loadable by ``torch.load(weights_only=True)``: tensors, numbers, strings,
    and lists/dicts of those. Results handed in with :func:`preloaded` come first, and
    :func:`recording` sees every call.
    """
    config = _normalise({**config, "cache_version": CACHE_VERSION})
    given = _PRELOADED.get((kind, config_key(config)))
    if given is not None and given[1] == config:
        return _record(kind, config, given[2], False)
    folder = Path(directory) if directory is not None else cache_dir()
    path = folder / kind / f"{config_key(config)}.pt"
    if path.exists():
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            if entry.get("config") == config:
                return _record(kind, config, entry["result"], False)
            warnings.warn(
                f"stale cache entry {path} (other configuration); recomputing", stacklevel=2
            )
        except Exception as err:  # noqa: BLE001 - any unreadable entry is recomputed
            warnings.warn(f"unreadable cache entry {path} ({err!r}); recomputing", stacklevel=2)
    result = compute()
    write_atomic(path, lambda f: torch.save({"config": config, "result": result}, f), "wb")
    return _record(kind, config, result, True)
