"""Claims as data: a statement, the effect that measures it over seeds, and a computed verdict.

A chapter states claims such as "LAP beats MP by more than 5 points at 0.43 % of the weights".
Each is measured once per seed, so it is a small sample, and seed-to-seed noise is often as
large as the effect. This module turns a claim's per-seed measurements into a verdict with one
rule, the same for every chapter:

- the effect of seed ``i`` is ``d_i = a_i - b_i`` (paired: both measured on seed ``i``'s
  network) or ``a_i`` alone when there is nothing to compare with;
- its mean ``d̄``, sample standard deviation ``s`` (``ddof = 1``) and the one-sided 95 %
  Student-t bounds ``d̄ ∓ t_{0.95, n-1} s / √n``;
- :func:`exceeds` ("``a`` beats ``b`` by more than ``margin``"): **held** when the lower
  bound is above ``margin``; **reversed** when the upper bound is below the claim's direction
  (``min(margin, 0)`` when two methods are compared: "A beats B by more than 5" is reversed
  only when B is distinguishably ahead, not when A's lead is merely under 5; ``margin`` for a
  single measurement against a threshold); **not distinguishable at this scale** otherwise;
- :func:`within` ("``a`` and ``b`` differ by less than ``margin``", an equivalence claim,
  two one-sided tests, i.e. a 90 % two-sided interval): **held** when both bounds lie inside
  ``(-margin, margin)``, **reversed** when both lie on one side outside it, not
  distinguishable otherwise;
- :func:`every_seed` ("in every seed, ..."): held when the statement is true in every seed,
  reversed when it is true in none, not distinguishable otherwise (a binomial claim: no
  t bound on 0/1 values);
- :func:`rank_correlation_exceeds` (Spearman's ρ over ``n`` pairs above ``margin``): the
  one-sided 95 % bound from Fisher's z with Bonett and Wright's standard error for Spearman's
  ρ, ``√((1 + ρ²/2) / (n - 3))``.

When the methods do not share networks (``paired=False``) the difference of the means is
used with Welch's standard error ``√(s_a²/n_a + s_b²/n_b)`` and Welch–Satterthwaite degrees
of freedom. With one seed there is no spread to judge by: the bounds are infinite and the
verdict is "not distinguishable".

A chapter's ``claims(results)`` returns a list of :class:`Claim`; its page shows
:func:`claims_table`, and :func:`check_claims` asserts that every claim marked ``asserted``
held. Which claims are asserted is computed, not chosen: :mod:`minipruner.book.calibration` gives
each claim its power (the chance that a fresh seed set confirms it, from the chapter's
committed calibration over many seed offsets) and asserts those whose power is at least
:data:`minipruner.book.calibration.POWER_TO_ASSERT`. Every claim keeps its per-seed ``sample``
(the effects the verdict was computed from), which is what the calibration pools::

    >>> c = exceeds("A beats B", [0.95, 0.93, 0.94], [0.90, 0.89, 0.91], scale=100)
    >>> c.verdict, round(c.effect, 1)
    ('held', 4.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from ..experiments.tables import markdown_table

HELD = "held"
UNDECIDED = "not distinguishable at this scale"
REVERSED = "reversed"
VERDICTS = (HELD, UNDECIDED, REVERSED)
CONFIDENCE = 0.95


TIMING = "timings, one machine"
"""The ``over`` of a claim whose sample is the timings of one machine: never asserted (a
calibration on one machine says nothing of another's clock)."""
TESTS = ("mean", "every", "rank")
"""How a claim is judged: ``"mean"`` (a Student-t bound on the mean of its sample),
``"every"`` (true in every seed) or ``"rank"`` (a bound on Spearman's ρ over pairs)."""


@dataclass(frozen=True)
class Claim:
    """One claim with its measurement and verdict (see the module docstring for the rule).

    ``effect`` is the mean effect over seeds (``mean(a - b)``, in ``unit``), ``sd`` its
    sample standard deviation over seeds (of the paired differences when ``paired``), ``n``
    the number of seeds, ``low``/``high`` the one-sided 95 % bounds on the mean effect, and
    ``margin`` what the claim needs (``kind`` ``"exceeds"``: effect > margin; ``"within"``:
    |effect| < margin). ``paper`` says what the paper reports on the same point, if anything.

    ``test`` says how it is judged (:data:`TESTS`), ``over`` what its sample is (``"seeds"``,
    or the gates or timing rounds of one run), ``sample`` the per-unit effects (scaled; 0/1
    for an ``"every"`` claim; the first variable of a ``"rank"`` claim, ``sample_y`` the
    second), ``reference`` the value below which an ``exceeds`` claim is reversed, and
    ``power`` the calibrated chance that a fresh seed set gives ``held`` (``None`` where no
    calibration covers the claim).
    """

    statement: str
    kind: str
    effect: float
    sd: float
    n: int
    low: float
    high: float
    margin: float
    verdict: str
    unit: str = "points"
    paired: bool = True
    paper: str = ""
    asserted: bool = False
    test: str = "mean"
    over: str = "seeds"
    sample: tuple[float, ...] = ()
    sample_y: tuple[float, ...] = ()
    reference: float | None = None
    power: float | None = None

    @property
    def held(self) -> bool:
        """Whether the verdict is ``held``."""
        return self.verdict == HELD

    def as_dict(self) -> dict[str, Any]:
        """The claim as a JSON-ready dict (infinite bounds become ``None``)."""
        out = asdict(self)
        for key in ("low", "high", "sd"):
            if not math.isfinite(out[key]):
                out[key] = None
        out["sample"], out["sample_y"] = list(self.sample), list(self.sample_y)
        return out


def _clean(values: Iterable[float] | None, name: str) -> np.ndarray | None:
    if values is None:
        return None
    v = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    v = v.reshape(-1)
    if v.size == 0:
        raise ValueError(f"{name}: no measurements")
    if not np.isfinite(v).all():
        raise ValueError(f"{name}: measurements must be finite, got {v.tolist()}")
    return v


def effect_bounds(
    a: Iterable[float],
    b: Iterable[float] | None = None,
    *,
    paired: bool = True,
    confidence: float = CONFIDENCE,
) -> tuple[float, float, int, float, float]:
    """Mean effect, its sample sd, n and the one-sided ``confidence`` bounds on the mean.

    Paired (or ``b is None``): ``d = a - b`` per seed, bounds ``d̄ ∓ t_{c, n-1} s_d / √n``.
    Unpaired: ``d̄ = ā - b̄``, standard error ``√(s_a²/n_a + s_b²/n_b)``, Welch–Satterthwaite
    degrees of freedom; ``sd`` is then the standard error times ``√n`` with ``n = min(n_a,
    n_b)`` (for display). Returns ``(mean, sd, n, low, high)``; with fewer than two seeds the
    sd is ``nan`` and the bounds are infinite.
    """
    if not 0.5 < confidence < 1:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence}")
    av, bv = _clean(a, "a"), _clean(b, "b")
    if bv is None or paired:
        if bv is not None and av.shape != bv.shape:
            raise ValueError(
                f"paired claims need one measurement of each side per seed; got {av.size} "
                f"and {bv.size}"
            )
        d = av if bv is None else av - bv
        n, mean = d.size, float(d.mean())
        if n < 2:
            return mean, math.nan, n, -math.inf, math.inf
        sd = float(d.std(ddof=1))
        half = stats.t.ppf(confidence, n - 1) * sd / math.sqrt(n)
        return mean, sd, n, mean - half, mean + half
    mean = float(av.mean() - bv.mean())
    n = min(av.size, bv.size)
    if n < 2:
        return mean, math.nan, n, -math.inf, math.inf
    va, vb = av.var(ddof=1) / av.size, bv.var(ddof=1) / bv.size
    se = math.sqrt(va + vb)
    if se == 0:
        return mean, 0.0, n, mean, mean
    df = (va + vb) ** 2 / (va**2 / (av.size - 1) + vb**2 / (bv.size - 1))
    half = stats.t.ppf(confidence, df) * se
    return mean, se * math.sqrt(n), n, mean - half, mean + half


def exceeds(
    statement: str,
    a: Iterable[float],
    b: Iterable[float] | None = None,
    margin: float = 0.0,
    *,
    scale: float = 1.0,
    unit: str = "points",
    paired: bool = True,
    paper: str = "",
    asserted: bool = False,
    confidence: float = CONFIDENCE,
    over: str = "seeds",
) -> Claim:
    """The claim "``a`` exceeds ``b`` by more than ``margin``" (or "``a`` > ``margin``" when
    ``b`` is None), judged over seeds: held when the one-sided lower bound of
    ``mean(a - b)`` is above ``margin``, reversed when the upper bound is below it.

    ``scale`` multiplies the measurements first (``100`` turns accuracies in [0, 1] into
    points); ``margin`` is in the scaled unit. To claim "``a`` is below ``b``", pass them
    the other way round. Reversed when the upper bound is below ``min(margin, 0)`` (two
    measurements compared) or ``margin`` (one against a threshold). ``over`` names the
    sample when it is not the seeds (the gates of one network, say).
    """
    reference = min(margin, 0.0) if b is not None else margin

    def verdict(low: float, high: float) -> str:
        return HELD if low > margin else REVERSED if high < reference else UNDECIDED

    return _judged(
        statement, "exceeds", a, b, margin, verdict, scale, unit, paired, paper, asserted,
        confidence, over, reference,
    )  # fmt: skip


def within(
    statement: str,
    a: Iterable[float],
    b: Iterable[float] | None = None,
    margin: float = 1.0,
    *,
    scale: float = 1.0,
    unit: str = "points",
    paired: bool = True,
    paper: str = "",
    asserted: bool = False,
    confidence: float = CONFIDENCE,
    over: str = "seeds",
) -> Claim:
    """The claim "``a`` and ``b`` differ by less than ``margin``" (equivalence, two one-sided
    tests): held when both one-sided bounds of ``mean(a - b)`` lie in ``(-margin, margin)``,
    reversed when both lie above ``margin`` or both below ``-margin``."""
    if margin <= 0:
        raise ValueError(f"an equivalence margin must be positive, got {margin}")

    def verdict(low: float, high: float) -> str:
        if -margin < low and high < margin:
            return HELD
        return REVERSED if low > margin or high < -margin else UNDECIDED

    return _judged(
        statement, "within", a, b, margin, verdict, scale, unit, paired, paper, asserted,
        confidence, over, None,
    )  # fmt: skip


def _judged(
    statement: str,
    kind: str,
    a: Iterable[float],
    b: Iterable[float] | None,
    margin: float,
    verdict: Callable[[float, float], str],
    scale: float,
    unit: str,
    paired: bool,
    paper: str,
    asserted: bool,
    confidence: float,
    over: str,
    reference: float | None,
) -> Claim:
    # What exceeds and within share: scale, bound (effect_bounds), judge, keep the sample.
    av = _clean(a, "a") * scale
    bv = None if b is None else _clean(b, "b") * scale
    mean, sd, n, low, high = effect_bounds(av, bv, paired=paired, confidence=confidence)
    return Claim(
        statement, kind, mean, sd, n, low, high, margin, verdict(low, high), unit, paired, paper,
        asserted, over=over, sample=_sample(av, bv, paired), reference=reference,
    )  # fmt: skip


def _sample(av: np.ndarray, bv: np.ndarray | None, paired: bool) -> tuple[float, ...]:
    # The per-seed effects a paired or one-sample verdict is computed from; an unpaired
    # claim has no per-seed effect (its two samples are not matched), so none is kept.
    if bv is None:
        return tuple(float(x) for x in av)
    return tuple(float(x) for x in av - bv) if paired else ()


def every_seed(
    statement: str,
    flags: Iterable[bool],
    *,
    paper: str = "",
    asserted: bool = False,
    confidence: float = CONFIDENCE,
) -> Claim:
    """The claim "in every seed, <statement>" from one true/false per seed: **held** when
    every seed has it, **reversed** when none has, not distinguishable otherwise. The effect
    is the share of seeds that have it, its bounds the one-sided ``confidence``
    Clopper–Pearson bounds on the per-seed rate ``p`` (for display: the verdict needs every
    seed, which a fresh set of ``n`` seeds gives with probability ``pⁿ``)."""
    f = _clean([bool(x) for x in flags], "flags")
    n, k = f.size, int(f.sum())
    low = float(stats.beta.ppf(1 - confidence, k, n - k + 1)) if k > 0 else 0.0
    high = float(stats.beta.ppf(confidence, k + 1, n - k)) if k < n else 1.0
    verdict = HELD if k == n else REVERSED if k == 0 else UNDECIDED
    return Claim(
        statement,
        "exceeds",
        k / n,
        math.nan,
        n,
        low,
        high,
        1.0,
        verdict,
        "share of seeds",
        True,
        paper,
        asserted,
        test="every",
        sample=tuple(float(x) for x in f),
    )


def spearman(x: Iterable[float], y: Iterable[float]) -> float:
    """Spearman's rank correlation, the Pearson correlation of the ranks
    ``corr(rank(x), rank(y))``, ties given their average rank."""
    rx, ry = stats.rankdata(list(x)), stats.rankdata(list(y))
    if rx.size != ry.size or rx.size < 2:
        raise ValueError(f"need two equally long samples of at least 2, got {rx.size}, {ry.size}")
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def spearman_bounds(r: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """One-sided ``confidence`` bounds on Spearman's ρ from ``r`` over ``n`` pairs: Fisher's
    z transform with Bonett and Wright's (2000) standard error for Spearman's ρ,
    ``tanh(atanh(r) ∓ z_c √((1 + r²/2) / (n - 3)))`` (the Pearson formula ``1/√(n - 3)`` is
    too narrow for ranks). Infinite-width bounds (``[-1, 1]``) for ``n <= 3``."""
    if n <= 3:
        return -1.0, 1.0
    half = stats.norm.ppf(confidence) * math.sqrt((1 + r * r / 2) / (n - 3))
    z = math.atanh(min(max(r, -1 + 1e-12), 1 - 1e-12))  # a perfect ranking: r = 1
    return math.tanh(z - half), math.tanh(z + half)


def rank_correlation_exceeds(
    statement: str,
    x: Iterable[float],
    y: Iterable[float],
    margin: float,
    *,
    over: str = "pairs",
    paper: str = "",
    asserted: bool = False,
    confidence: float = CONFIDENCE,
) -> Claim:
    """The claim "Spearman's ρ of ``x`` and ``y`` exceeds ``margin``", judged on the ``n``
    pairs by :func:`spearman_bounds`: held when the lower bound is above ``margin``, reversed
    when the upper bound is below it. The sd is not defined (``nan``)."""
    xv, yv = _clean(x, "x"), _clean(y, "y")
    if xv.size != yv.size:
        raise ValueError(f"x and y must pair up, got {xv.size} and {yv.size} values")
    r, n = spearman(xv, yv), xv.size
    low, high = spearman_bounds(r, n, confidence)
    verdict = HELD if low > margin else REVERSED if high < margin else UNDECIDED
    return Claim(
        statement,
        "exceeds",
        r,
        math.nan,
        n,
        low,
        high,
        margin,
        verdict,
        unit=f"rank correlation (over {over})",
        paper=paper,
        asserted=asserted,
        test="rank",
        over=over,
        sample=tuple(float(v) for v in xv),
        sample_y=tuple(float(v) for v in yv),
        reference=margin,
    )


JUDGES = (exceeds, within, every_seed, rank_correlation_exceeds)
"""The judges a row of :func:`claims_from` may name."""


def claims_from(rows: Iterable[Sequence[Any]]) -> list[Claim]:
    """The claims of a table, one row each: ``(judge, statement, *measurements)`` with an
    optional last ``dict`` of keyword options becomes ``judge(statement, *measurements,
    **options)``, where ``judge`` is one of :data:`JUDGES` (:func:`exceeds`, :func:`within`,
    :func:`every_seed`, :func:`rank_correlation_exceeds`). A chapter declares its claims as
    such a table, each row saying what a claim states and what it compares::

        >>> rows = [(exceeds, "A beats B", [3, 4, 5], [1, 1, 2], {"unit": "points"})]
        >>> [(c.statement, c.effect) for c in claims_from(rows)]
        [('A beats B', 2.6666666666666665)]

    Raises ``ValueError`` for a row whose judge is not one of :data:`JUDGES` or whose
    statement is not a string."""
    out = []
    for row in rows:
        judge, statement, *args = row
        if judge not in JUDGES:
            names = ", ".join(j.__name__ for j in JUDGES)
            raise ValueError(f"a claim's judge must be one of {names}, got {judge!r}")
        if not isinstance(statement, str):
            raise ValueError(f"a claim's statement must be a string, got {statement!r}")
        options = args.pop() if args and isinstance(args[-1], dict) else {}
        out.append(judge(statement, *args, **options))
    return out


def _num(x: float) -> str:
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{x:+.2f}" if abs(x) < 1 else f"{x:+.1f}"


def _sd_text(c: Claim) -> str:
    if c.test == "every":
        return f"{round(c.effect * c.n)} of {c.n} seeds"
    sd = "n/a" if not math.isfinite(c.sd) else f"{c.sd:.2f}" if c.sd < 1 else f"{c.sd:.1f}"
    over = "" if c.over == "seeds" else f" {c.over}"
    return f"{_num(c.effect)} ± {sd} {c.unit} (n = {c.n}{over}{'' if c.paired else ', unpaired'})"


def bound_text(c: Claim) -> str:
    """The interval a claim's verdict reads, with what it needs and which interval it is: a
    one-sided 95 % bound (``exceeds``), the 90 % two-sided interval of two one-sided tests
    (``within``), the Clopper–Pearson bounds on the per-seed rate (``every``) or the
    Bonett–Wright bound on Spearman's ρ (``rank``)."""
    if c.test == "every":
        return f"rate in [{c.low:.2f}, {c.high:.2f}] (95 % each side), needs every seed"
    if c.kind == "within":
        return f"90 % interval [{_num(c.low)}, {_num(c.high)}], needs within ±{c.margin:g}"
    name = "Bonett–Wright 95 % bound" if c.test == "rank" else "95 % bound"
    return f"{name} [{_num(c.low)}, ∞), needs > {c.margin:g}"


def format_power(p: float | None) -> str:
    """A power as text: ``"> 0.999"`` above 0.9995, ``"< 0.01"``, three decimals, or ``"n/a"``."""
    if p is None:
        return "n/a"
    return "> 0.999" if p > 0.9995 else f"{p:.3f}" if p >= 0.01 else "< 0.01"


def power_text(c: Claim) -> str:
    """The claim's calibrated power as a cell (:func:`format_power`); ``"n/a (timing)"`` for a
    claim on one machine's timings."""
    return "n/a (timing)" if c.over == TIMING else format_power(c.power)


def standing_text(asserted: bool, power: float | None) -> str:
    """How a page refers to a claim's standing, for glueing into prose: ``"asserted"``, else
    ``"not asserted: a fresh seed set confirms it with probability 0.520"`` (its calibrated
    power, :func:`format_power`), or ``"not asserted: not calibrated"`` without one."""
    if asserted:
        return "asserted"
    if power is None:
        return "not asserted: not calibrated"
    return f"not asserted: a fresh seed set confirms it with probability {format_power(power)}"


def status_text(c: Claim) -> str:
    """The claim's standing (:func:`standing_text` of its ``asserted`` and ``power``), or
    ``"not asserted: timed on one machine"`` for a claim on one machine's timings."""
    if c.over == TIMING:
        return "not asserted: timed on one machine"
    return standing_text(c.asserted, c.power)


def asserted_labels(claims: Sequence[Claim], items: Mapping[str, Sequence[str]]) -> str:
    """Which of several claims a page asserts, as prose: the labels of ``items`` (``{label:
    words}``, each claim found by :func:`find_claim`) whose claim is asserted, joined as
    ``"a, b and c"``, or ``"none"``."""
    hits = [label for label, words in items.items() if find_claim(claims, *words).asserted]
    if not hits:
        return "none"
    return hits[0] if len(hits) == 1 else ", ".join(hits[:-1]) + " and " + hits[-1]


def claims_table(claims: Sequence[Claim]) -> str:
    """The claims as a Markdown table: statement, the paper's statement, effect (mean ±
    sample sd over n seeds), the interval the verdict reads against what the claim needs
    (:func:`bound_text`), the verdict, the chance that a fresh seed set confirms the claim
    (its calibrated power) and whether the chapter asserts it (power at least
    :data:`minipruner.book.calibration.POWER_TO_ASSERT`)."""
    rows = [
        [
            i,
            c.statement,
            c.paper or "",
            _sd_text(c),
            bound_text(c),
            f"**{c.verdict}**" if c.held else c.verdict,
            power_text(c),
            "yes" if c.asserted else "no",
        ]
        for i, c in enumerate(claims, 1)
    ]
    header = [
        "#",
        "claim",
        "paper",
        "effect",
        "interval",
        "verdict",
        "chance a fresh seed set confirms it",
        "asserted",
    ]
    return markdown_table(header, rows)


def check_claims(claims: Sequence[Claim]) -> None:
    """Raise ``AssertionError`` naming every asserted claim whose verdict is not ``held``."""
    failed = [c for c in claims if c.asserted and not c.held]
    if failed:
        lines = [
            f"- {c.statement}: {c.verdict} ({_sd_text(c)}; {bound_text(c)}; calibrated power "
            f"{power_text(c)})"
            for c in failed
        ]
        raise AssertionError("asserted claims that did not hold:\n" + "\n".join(lines))


def summary(claims: Sequence[Claim]) -> dict[str, int]:
    """How many claims got each verdict, and how many are asserted."""
    out = {v: sum(c.verdict == v for c in claims) for v in VERDICTS}
    out["asserted"] = sum(c.asserted for c in claims)
    return out


def find_claim(claims: Sequence[Claim], *words: str) -> Claim:
    """The one claim whose statement contains every one of ``words`` (for glueing its
    verdict or effect into a page). Raises ``KeyError`` when none or several match."""
    found = [c for c in claims if all(w in c.statement for w in words)]
    if len(found) != 1:
        raise KeyError(f"{len(found)} claims contain {words}: {[c.statement for c in found]}")
    return found[0]
