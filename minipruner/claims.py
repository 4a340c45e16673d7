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
  bound is above ``margin``, **reversed** when the upper bound is below it, and **not
  distinguishable at this scale** otherwise;
- :func:`within` ("``a`` and ``b`` differ by less than ``margin``", an equivalence claim,
  two one-sided tests): **held** when both bounds lie inside ``(-margin, margin)``,
  **reversed** when both lie on one side outside it, not distinguishable otherwise.

When the methods do not share networks (``paired=False``) the difference of the means is
used with Welch's standard error ``√(s_a²/n_a + s_b²/n_b)`` and Welch–Satterthwaite degrees
of freedom. With one seed there is no spread to judge by: the bounds are infinite and the
verdict is "not distinguishable".

A chapter's ``claims(results)`` returns a list of :class:`Claim`; its page shows
:func:`claims_table`, and :func:`check_claims` asserts that every claim marked ``asserted``
held (the chapter marks only claims that held at every seed offset, thread count and
machine it was tried on)::

    >>> c = exceeds("A beats B", [0.95, 0.93, 0.94], [0.90, 0.89, 0.91], scale=100)
    >>> c.verdict, round(c.effect, 1)
    ('held', 4.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from scipy import stats

HELD = "held"
UNDECIDED = "not distinguishable at this scale"
REVERSED = "reversed"
VERDICTS = (HELD, UNDECIDED, REVERSED)
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Claim:
    """One claim with its measurement and verdict (see the module docstring for the rule).

    ``effect`` is the mean effect over seeds (``mean(a - b)``, in ``unit``), ``sd`` its
    sample standard deviation over seeds (of the paired differences when ``paired``), ``n``
    the number of seeds, ``low``/``high`` the one-sided 95 % bounds on the mean effect, and
    ``margin`` what the claim needs (``kind`` ``"exceeds"``: effect > margin; ``"within"``:
    |effect| < margin). ``paper`` says what the paper reports on the same point, if anything.
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
) -> Claim:
    """The claim "``a`` exceeds ``b`` by more than ``margin``" (or "``a`` > ``margin``" when
    ``b`` is None), judged over seeds: held when the one-sided lower bound of
    ``mean(a - b)`` is above ``margin``, reversed when the upper bound is below it.

    ``scale`` multiplies the measurements first (``100`` turns accuracies in [0, 1] into
    points); ``margin`` is in the scaled unit. To claim "``a`` is below ``b``", pass them
    the other way round.
    """
    av = _clean(a, "a") * scale
    bv = None if b is None else _clean(b, "b") * scale
    mean, sd, n, low, high = effect_bounds(av, bv, paired=paired, confidence=confidence)
    verdict = HELD if low > margin else REVERSED if high < margin else UNDECIDED
    return Claim(
        statement, "exceeds", mean, sd, n, low, high, margin, verdict, unit, paired, paper, asserted
    )


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
) -> Claim:
    """The claim "``a`` and ``b`` differ by less than ``margin``" (equivalence, two one-sided
    tests): held when both one-sided bounds of ``mean(a - b)`` lie in ``(-margin, margin)``,
    reversed when both lie above ``margin`` or both below ``-margin``."""
    if margin <= 0:
        raise ValueError(f"an equivalence margin must be positive, got {margin}")
    av = _clean(a, "a") * scale
    bv = None if b is None else _clean(b, "b") * scale
    mean, sd, n, low, high = effect_bounds(av, bv, paired=paired, confidence=confidence)
    if -margin < low and high < margin:
        verdict = HELD
    elif low > margin or high < -margin:
        verdict = REVERSED
    else:
        verdict = UNDECIDED
    return Claim(
        statement, "within", mean, sd, n, low, high, margin, verdict, unit, paired, paper, asserted
    )


def _num(x: float) -> str:
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{x:+.2f}" if abs(x) < 1 else f"{x:+.1f}"


def claims_table(claims: Sequence[Claim]) -> str:
    """The claims as a Markdown table: statement, the paper's statement, effect (mean ±
    sample sd over n seeds), the one-sided 95 % interval against what the claim needs, the
    verdict, and whether the chapter asserts it."""
    from .results import markdown_table

    rows = []
    for i, c in enumerate(claims, 1):
        sd = "n/a" if not math.isfinite(c.sd) else f"{c.sd:.2f}" if c.sd < 1 else f"{c.sd:.1f}"
        effect = f"{_num(c.effect)} ± {sd} {c.unit} (n = {c.n}{'' if c.paired else ', unpaired'})"
        if c.kind == "exceeds":
            interval, needs = f"[{_num(c.low)}, ∞)", f"> {c.margin:g}"
        else:
            interval, needs = f"[{_num(c.low)}, {_num(c.high)}]", f"within ±{c.margin:g}"
        rows.append(
            [
                i,
                c.statement,
                c.paper or "",
                effect,
                f"{interval}, needs {needs}",
                f"**{c.verdict}**" if c.held else c.verdict,
                "yes" if c.asserted else "no",
            ]
        )
    header = ["#", "claim", "paper", "effect", "95 % bound", "verdict", "asserted"]
    return markdown_table(header, rows)


def check_claims(claims: Sequence[Claim]) -> None:
    """Raise ``AssertionError`` naming every asserted claim whose verdict is not ``held``."""
    failed = [c for c in claims if c.asserted and not c.held]
    if failed:
        lines = [
            f"- {c.statement}: {c.verdict} (effect {c.effect:+.2f} ± {c.sd:.2f} {c.unit}, "
            f"n = {c.n}, bounds [{c.low:+.2f}, {c.high:+.2f}], needs "
            f"{'>' if c.kind == 'exceeds' else 'within ±'}{c.margin:g})"
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


def mark_asserted(claims: Mapping[str, Claim], names: Iterable[str]) -> dict[str, Claim]:
    """The claims (by short name) with ``asserted`` set exactly for those in ``names``: a
    chapter lists the claims it asserts in one place, beside why. A name with no claim (one
    the results at hand could not measure) marks nothing."""
    names = set(names)
    return {k: replace(c, asserted=k in names) for k, c in claims.items()}
