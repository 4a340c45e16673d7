"""Which claims a page asserts, computed: the power of each claim over many seed offsets.

A claim is a statement about a distribution over seeds. A page's verdict reads one seed set
(3 or 5 seeds); a claim is worth asserting only when a *fresh* seed set confirms it almost
always. Choosing what to assert from the runs that judged it is selection: a claim whose
bound cleared its margin narrowly in a few runs fails often in the next. So the decision is
made from a calibration, committed with the package (``chapters/calibration/<chapter>.json``):
the chapter's quick scale run at several seed offsets (:func:`minipruner.book.runner.calibrate`),
every claim's per-seed effects pooled over them, and from those the chance that a fresh run
with the page's own number of seeds ``n`` gives ``held``, its *power*:

- **mean claims** over seeds (:func:`~minipruner.book.claims.exceeds`,
  :func:`~minipruner.book.claims.within`): the per-seed effects are modelled as normal with mean
  ``μ`` and sd ``σ``. The page's test "lower bound ``d̄ - t s/√n`` above ``m``" then holds
  with probability ``P(T > t_{0.95, n-1})``, ``T`` noncentral t with ``n - 1`` degrees of
  freedom and noncentrality ``(μ - m)√n / σ`` (:func:`power_exceeds`); an equivalence claim
  holds when both of its bounds lie inside ``±m`` (:func:`power_within`, integrated over the
  distribution of ``s``). ``μ`` and ``σ`` are not known, only estimated from the ``N``
  pooled seeds, so the power is computed at conservative plug-ins (:func:`plug_ins`): the
  one-sided 95 % lower bound of ``μ`` (for ``within``, the upper bound of ``|μ|``) and the
  one-sided 95 % upper bound of ``σ`` (from ``χ²_{N-1}``);
- **every-seed claims** (:func:`~minipruner.book.claims.every_seed`): a fresh set of ``n`` seeds
  all have it with probability ``pⁿ``, computed at the one-sided 95 % Clopper–Pearson lower
  bound of the per-seed rate ``p`` from the ``K`` of ``N`` pooled seeds that had it;
- claims whose sample is **not the seeds** (the gates of one network): every run gives the
  power of a run like it, a mean claim from its own sample by the same plug-ins, a rank
  correlation by a bootstrap over its pairs; the claim's power is the smallest over the runs;
- claims on the **timings of one machine** (:data:`minipruner.book.claims.TIMING`) get power 0: a
  calibration on one machine says nothing of another machine's timings.

A claim is asserted if and only if its power is at least :data:`POWER_TO_ASSERT`, and only
on the settings the calibration ran (the settings hash, :func:`settings_hash`). The book-level
figure, the chance that a fresh seed set passes every asserted claim, is the product of their
powers (:func:`book_probability`): it must be at least :data:`BOOK_LEVEL`.
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from scipy import integrate, stats

from ..core.store import config_key
from .claims import (
    CONFIDENCE,
    HELD,
    REVERSED,
    TIMING,
    UNDECIDED,
    Claim,
    spearman_bounds,
    standing_text,
)

POWER_TO_ASSERT = 0.999
"""A claim is asserted when a fresh seed set confirms it with at least this probability."""
BOOK_LEVEL = 0.95
"""The chance that a fresh seed set passes every asserted claim must be at least this."""
PLUG_IN = 0.95
"""One-sided confidence of the conservative plug-ins for ``μ`` and ``σ`` (and of the
Clopper–Pearson bound on a per-seed rate)."""
BOOTSTRAP = 20_000
"""Resamples per run for the power of a rank-correlation claim."""
MIN_OFFSETS = 6
"""A chapter's calibration runs at least this many seed offsets."""
FOLDER = Path(__file__).parent / "chapters" / "calibration"
"""Where the committed calibrations live (package data, so a wheel asserts the same claims)."""


def power_exceeds(
    mu: float, sigma: float, n: int, margin: float, confidence: float = CONFIDENCE
) -> float:
    """Probability that ``n`` normal draws (mean ``mu``, sd ``sigma``) give a one-sided
    ``confidence`` lower bound ``d̄ - t_{c, n-1} s/√n`` above ``margin``: the noncentral-t
    power ``P(T_{n-1, δ} > t_{c, n-1})`` with ``δ = (mu - margin)√n / sigma``. With
    ``sigma = 0`` every draw equals ``mu``: 1 when ``mu > margin``, else 0."""
    if n < 2:
        return 0.0
    if sigma <= 0:
        return float(mu > margin)
    delta = (mu - margin) * math.sqrt(n) / sigma
    return float(stats.nct.sf(stats.t.ppf(confidence, n - 1), n - 1, delta))


def power_within(
    mu: float, sigma: float, n: int, margin: float, confidence: float = CONFIDENCE
) -> float:
    """Probability that ``n`` normal draws (mean ``mu``, sd ``sigma``) put both one-sided
    ``confidence`` bounds ``d̄ ∓ t s/√n`` inside ``(-margin, margin)``:
    ``E_s[max(0, Φ(a - b - w) - Φ(-a - b + w))]`` with ``a = margin√n/σ``, ``b = mu√n/σ`` and
    ``w = t_{c,n-1} s/σ``, where ``(n - 1)s²/σ² ~ χ²_{n-1}`` (integrated numerically)."""
    if n < 2:
        return 0.0
    if sigma <= 0:
        return float(abs(mu) < margin)
    t, df = stats.t.ppf(confidence, n - 1), n - 1
    a, b = margin * math.sqrt(n) / sigma, mu * math.sqrt(n) / sigma

    def inside(u: float) -> float:
        w = t * math.sqrt(u / df)
        return max(0.0, stats.norm.cdf(a - b - w) - stats.norm.cdf(-a - b + w)) * stats.chi2.pdf(
            u, df
        )

    # beyond ((a / t)² df) the interval is wider than the margin: nothing to integrate there
    top = (a / t) ** 2 * df
    value, _ = integrate.quad(inside, 0, top, limit=200, points=[min(df, top / 2)])
    return float(min(1.0, max(0.0, value)))


def plug_ins(sample: Sequence[float], level: float = PLUG_IN) -> tuple[float, float, float]:
    """Conservative estimates from a pooled sample of ``N`` per-seed effects: the one-sided
    ``level`` bounds on the mean, ``x̄ ∓ t_{level, N-1} s/√N``, and the one-sided upper bound
    on the sd, ``s √((N - 1) / χ²_{1-level, N-1})``. Returns ``(mean low, mean high, sd high)``."""
    x = np.asarray(sample, dtype=float)
    if x.size < 2:
        return -math.inf, math.inf, math.inf
    m, s, big_n = float(x.mean()), float(x.std(ddof=1)), x.size
    half = stats.t.ppf(level, big_n - 1) * s / math.sqrt(big_n)
    sd_high = s * math.sqrt((big_n - 1) / stats.chi2.ppf(1 - level, big_n - 1))
    return m - half, m + half, sd_high


def mean_power(sample: Sequence[float], n: int, kind: str, margin: float) -> float:
    """Power of a mean claim (``kind`` ``"exceeds"`` or ``"within"``) at ``n`` seeds, from a
    pooled sample of per-seed effects, at the conservative :func:`plug_ins`."""
    low, high, sd = plug_ins(sample)
    if not math.isfinite(sd):
        return 0.0
    if kind == "exceeds":
        return power_exceeds(low, sd, n, margin)
    if kind == "within":
        return power_within(max(abs(low), abs(high)), sd, n, margin)
    raise ValueError(f"unknown claim kind {kind!r}")


def every_power(flags: Sequence[float], n: int, level: float = PLUG_IN) -> float:
    """Power of an every-seed claim at ``n`` seeds: ``p_low ** n``, ``p_low`` the one-sided
    ``level`` Clopper–Pearson lower bound of the per-seed rate from the pooled 0/1 ``flags``
    (``K`` of ``N``): the ``1 - level`` quantile of ``Beta(K, N - K + 1)``."""
    f = np.asarray(flags, dtype=float)
    k, big_n = int(f.sum()), f.size
    if k == 0:
        return 0.0
    p_low = float(stats.beta.ppf(1 - level, k, big_n - k + 1))
    return p_low**n


def rank_power(
    x: Sequence[float], y: Sequence[float], margin: float, resamples: int = BOOTSTRAP
) -> float:
    """Power of a rank-correlation claim for a run like this one: the share of bootstrap
    resamples of the ``n`` pairs (with replacement, a fixed generator) whose Bonett–Wright
    lower bound on Spearman's ρ (:func:`minipruner.book.claims.spearman_bounds`) is above
    ``margin``."""
    xv, yv = np.asarray(x, float), np.asarray(y, float)
    n = xv.size
    idx = np.random.default_rng(0).integers(0, n, size=(resamples, n))
    rx = stats.rankdata(xv[idx], axis=1)
    ry = stats.rankdata(yv[idx], axis=1)
    rx, ry = rx - rx.mean(1, keepdims=True), ry - ry.mean(1, keepdims=True)
    den = np.sqrt((rx * rx).sum(1) * (ry * ry).sum(1))
    r = np.where(den > 0, (rx * ry).sum(1) / np.where(den > 0, den, 1), 0.0)
    held = [spearman_bounds(float(v), n)[0] > margin for v in r]
    return float(np.mean(held))


def claim_power(entry: Mapping[str, Any]) -> float:
    """The power of one calibrated claim (an entry of a calibration file: its ``test``,
    ``kind``, ``over``, ``margin``, the page's ``n`` and the ``runs``, each with its
    ``sample`` and ``sample_y``), by the rules of the module docstring."""
    runs, test, n = entry["runs"], entry["test"], entry["n"]
    if not runs or any(not r["sample"] for r in runs) or entry["over"] == TIMING:
        return 0.0  # an unpaired claim keeps no per-seed effects; timings are the machine's
    if test == "rank":
        return min(rank_power(r["sample"], r["sample_y"], entry["margin"]) for r in runs)
    if entry["over"] != "seeds":
        return min(
            mean_power(r["sample"], len(r["sample"]), entry["kind"], entry["margin"]) for r in runs
        )
    pooled = [v for r in runs for v in r["sample"]]
    if test == "every":
        return every_power(pooled, n)
    return mean_power(pooled, n, entry["kind"], entry["margin"])


def settings_hash(version: int, settings: Mapping[str, Any]) -> str:
    """A hash of a chapter's ``VERSION`` and ``settings`` with the seed offset taken out:
    every ``"seeds"`` list and ``"seed"`` value, at any depth (chapter 5's saliency and latency
    runs name their own seed), shifted back by ``settings["seed_offset"]``. What the
    calibration ran, whatever the offset."""
    plain = dict(settings)
    offset = int(plain.pop("seed_offset", 0) or 0)

    def unshift(value: Any, key: str = "") -> Any:
        if isinstance(value, Mapping):
            return {k: unshift(v, k) for k, v in value.items()}
        if key == "seeds" and isinstance(value, list):
            return [int(s) - offset for s in value]
        if key == "seed" and isinstance(value, int) and not isinstance(value, bool):
            return value - offset
        return value

    return config_key({"version": int(version), "settings": unshift(plain)})


def path(chapter: str) -> Path:
    """The committed calibration file of ``chapter``."""
    return FOLDER / f"{chapter}.json"


@cache
def load(chapter: str) -> dict[str, Any] | None:
    """The chapter's committed calibration (``None`` if it has none)."""
    file = path(chapter)
    return json.loads(file.read_text()) if file.is_file() else None


def apply(results: Any, found: Sequence[Claim], version: int) -> list[Claim]:
    """The claims with their calibrated ``power`` and ``asserted`` = power at least
    :data:`POWER_TO_ASSERT`, looked up by statement in the chapter's calibration. Only at
    the quick scale and on the settings the calibration ran (the same
    :func:`settings_hash` of the chapter's ``version`` and the results' settings); anywhere
    else nothing is asserted and the power is ``None``. Every chapter's ``claims(results)``
    ends with this call."""
    cal = load(results.chapter)
    same = (
        cal is not None
        and results.scale == cal["scale"]
        and settings_hash(version, results.settings) == cal["settings_hash"]
    )
    powers = {c["statement"]: c["power"] for c in cal["claims"]} if same else {}
    out = []
    for c in found:
        p = powers.get(c.statement)
        out.append(replace(c, power=p, asserted=p is not None and p >= POWER_TO_ASSERT))
    return out


def build(
    chapter: str,
    module: ModuleType,
    settings: Mapping[str, Any],
    runs: Sequence[tuple[int, int, Sequence[Claim]]],
) -> dict[str, Any]:
    """A chapter's calibration from its claims at several seed offsets: ``runs`` holds
    ``(offset, threads, claims)`` per run (``settings``: the chapter's settings at any of
    them). Each claim (matched by statement; a claim missing from a run is calibrated on
    the runs that have it) gets its per-run samples, the pooled mean and sd, and its power
    (:func:`claim_power`)."""
    statements: dict[str, dict[str, Any]] = {}
    for offset, threads, found in runs:
        for c in found:
            entry = statements.setdefault(
                c.statement,
                {
                    "statement": c.statement,
                    "kind": c.kind,
                    "test": c.test,
                    "over": c.over,
                    "margin": c.margin,
                    "n": c.n,
                    "runs": [],
                },
            )
            entry["runs"].append(
                {
                    "offset": offset,
                    "threads": threads,
                    "sample": list(c.sample),
                    "sample_y": list(c.sample_y),
                    "verdict": c.verdict,
                }
            )
    for entry in statements.values():
        pooled = np.array([v for r in entry["runs"] for v in r["sample"]], float)
        entry["pooled"] = {
            "count": int(pooled.size),
            "mean": float(pooled.mean()) if pooled.size else None,
            "sd": float(pooled.std(ddof=1)) if pooled.size > 1 else None,
        }
        entry["power"] = claim_power(entry)
    return {
        "chapter": chapter,
        "scale": settings["scale"],
        "settings_hash": settings_hash(getattr(module, "VERSION", 1), settings),
        "offsets": [r[0] for r in runs],
        "threads": {str(r[0]): r[1] for r in runs},
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "machine": platform.machine(),
            "processor": platform.processor() or "unknown",
        },
        "rule": {
            "power_to_assert": POWER_TO_ASSERT,
            "plug_in": PLUG_IN,
            "confidence": CONFIDENCE,
            "bootstrap": BOOTSTRAP,
        },
        "claims": list(statements.values()),
    }


def save(calibration: Mapping[str, Any], folder: Path | None = None) -> Path:
    """Write a calibration as ``<folder>/<chapter>.json`` (default: the package's)."""
    target = (folder or FOLDER) / f"{calibration['chapter']}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(calibration, indent=1) + "\n")
    load.cache_clear()
    return target


def _claim(name: str, words: Sequence[str]) -> dict[str, Any]:
    # The one calibrated claim of `name` (a chapter or a variant) containing every word.
    cal = load(name)
    found = [c for c in (cal["claims"] if cal else ()) if all(w in c["statement"] for w in words)]
    if len(found) != 1:
        raise KeyError(f"{len(found)} calibrated claims of {name} contain {words}")
    return found[0]


def standing(chapter: str, *words: str) -> str:
    """A claim's standing from the committed calibration alone (no results needed, for a page
    that cites another chapter's claim): ``"asserted"`` or ``"not asserted: a fresh seed set
    confirms it with probability p"``, the claim being the one whose statement contains every
    one of ``words``. Raises ``KeyError`` unless exactly one claim matches."""
    p = _claim(chapter, words)["power"]
    return standing_text(p >= POWER_TO_ASSERT, p)


def verdicts(name: str, *words: str) -> dict[str, Any]:
    """How one calibrated claim fared in each run of a calibration (``name``: a chapter, or a
    variant ``<chapter>.<variant>`` written by ``calibrate --set ... --variant``): the number
    of runs (``runs``), how many gave each verdict (``held``, ``not distinguishable``,
    ``reversed``), the offsets of the runs that did not hold (``not_held``) and the claim's
    calibrated ``power``. The claim is the one whose statement contains every word of
    ``words`` (``KeyError`` unless exactly one does)."""
    return run_record(_claim(name, words))


def run_record(claim: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`verdicts` of one claim entry of a calibration file."""
    runs = claim["runs"]
    return {
        "runs": len(runs),
        "held": sum(r["verdict"] == HELD for r in runs),
        "not distinguishable": sum(r["verdict"] == UNDECIDED for r in runs),
        "reversed": sum(r["verdict"] == REVERSED for r in runs),
        "not_held": [r["offset"] for r in runs if r["verdict"] != HELD],
        "power": claim["power"],
    }


def book_probability(chapters: Sequence[str]) -> tuple[float, int]:
    """The chance that a fresh seed set passes every asserted claim of ``chapters``, the
    product of the asserted claims' powers, and how many claims are asserted (from the
    committed calibrations)."""
    p, count = 1.0, 0
    for name in chapters:
        cal = load(name)
        for c in cal["claims"] if cal else ():
            if c["power"] >= POWER_TO_ASSERT:
                p *= c["power"]
                count += 1
    return p, count
