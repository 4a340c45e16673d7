"""Claims as data: the verdict rule on made-up measurements, the table, and the assert."""

import math

import numpy as np
import pytest
from scipy import stats

from minipruner.book import claims as cl

A = [0.95, 0.93, 0.94, 0.96, 0.92]  # accuracies of method A on five seeds


def test_a_clear_paired_lead_is_held_and_its_bound_is_the_t_bound():
    b = [0.90, 0.89, 0.91, 0.90, 0.88]
    c = cl.exceeds("A beats B", A, b, scale=100)
    d = 100 * (np.array(A) - np.array(b))
    half = stats.t.ppf(0.95, 4) * d.std(ddof=1) / math.sqrt(5)
    assert c.verdict == cl.HELD and c.held
    assert c.effect == pytest.approx(d.mean()) and c.sd == pytest.approx(d.std(ddof=1))
    assert c.low == pytest.approx(d.mean() - half) and c.high == pytest.approx(d.mean() + half)
    assert c.n == 5 and c.paired


def test_a_lead_inside_the_noise_is_not_distinguishable():
    b = [0.96, 0.91, 0.95, 0.93, 0.94]  # A ahead by 0.2 points on average, spread 2 points
    c = cl.exceeds("A beats B", A, b, scale=100)
    assert c.verdict == cl.UNDECIDED and c.low < 0 < c.high


def test_an_opposite_effect_is_reversed():
    b = [0.97, 0.96, 0.97, 0.98, 0.95]
    assert cl.exceeds("A beats B", A, b, scale=100).verdict == cl.REVERSED


def test_pairing_removes_the_shared_seed_noise():
    # both methods move with the network's seed; the paired difference is always +1 point
    base = np.array([0.80, 0.90, 0.85, 0.95, 0.70])
    paired = cl.exceeds("A beats B", base + 0.01, base, scale=100)
    unpaired = cl.exceeds("A beats B", base + 0.01, base, scale=100, paired=False)
    assert paired.verdict == cl.HELD and unpaired.verdict == cl.UNDECIDED


def test_a_margin_must_be_cleared_and_only_the_other_direction_is_reversed():
    b = np.array(A) - 0.02  # exactly two points ahead on every seed
    assert cl.exceeds("ahead", A, b, margin=1.0, scale=100).verdict == cl.HELD
    # ahead, but by less than 3: the claim is not confirmed, and not reversed either
    short = cl.exceeds("ahead by 3", A, b, margin=3.0, scale=100)
    assert short.verdict == cl.UNDECIDED and short.reference == 0
    assert cl.exceeds("B ahead by 3", b, A, margin=3.0, scale=100).verdict == cl.REVERSED
    # a negative margin ("costs less than 3 points") is reversed below the margin itself
    costs = cl.exceeds("costs less than 1", b, A, margin=-1.0, scale=100)
    assert costs.verdict == cl.REVERSED and costs.reference == -1


def test_one_sided_claims_against_a_threshold():
    assert cl.exceeds("correlation above 0.9", [0.95, 0.97, 0.96], margin=0.9).held
    assert cl.exceeds("above 0.99", [0.95, 0.97, 0.96], margin=0.99).verdict == cl.REVERSED


def test_equivalence_claims():
    b = np.array(A) + np.array([0.001, -0.002, 0.0, 0.001, -0.001])
    assert cl.within("level", A, b, margin=1.0, scale=100).verdict == cl.HELD
    far = np.array(A) - 0.05
    assert cl.within("level", A, far, margin=1.0, scale=100).verdict == cl.REVERSED
    noisy = np.array(A) + np.array([0.02, -0.03, 0.01, 0.0, -0.01])
    assert cl.within("level", A, noisy, margin=1.0, scale=100).verdict == cl.UNDECIDED
    with pytest.raises(ValueError, match="positive"):
        cl.within("level", A, b, margin=0)


def test_one_seed_cannot_decide():
    c = cl.exceeds("A beats B", [0.99], [0.10], scale=100)
    assert c.verdict == cl.UNDECIDED and math.isinf(c.low) and math.isnan(c.sd)
    assert c.as_dict()["low"] is None


def test_bad_input_is_an_error():
    with pytest.raises(ValueError, match="one measurement of each side"):
        cl.exceeds("A beats B", [1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        cl.exceeds("A beats B", [1, float("nan"), 3], [1, 2, 3])
    with pytest.raises(ValueError, match="no measurements"):
        cl.exceeds("A beats B", [], [])


def test_table_and_check():
    held = cl.exceeds("A beats B", A, np.array(A) - 0.02, scale=100, asserted=True, paper="+2")
    undecided = cl.exceeds("A beats C", A, [0.96, 0.91, 0.95, 0.93, 0.94], scale=100)
    table = cl.claims_table([held, undecided])
    lines = table.splitlines()
    assert len(lines) == 4 and "A beats B" in lines[2] and "**held**" in lines[2]
    assert "| yes |" in lines[2] and "| no |" in lines[3] and "+2" in lines[2]
    assert "chance a fresh seed set confirms it" in lines[0] and "| n/a |" in lines[2]
    assert "| 0.500 |" in cl.claims_table([cl.Claim(**{**held.__dict__, "power": 0.5})])
    cl.check_claims([held, undecided])  # the undecided claim is not asserted
    failing = cl.exceeds("A beats C", A, [0.96, 0.91, 0.95, 0.93, 0.94], 0, scale=100)
    failing = cl.Claim(**{**failing.__dict__, "asserted": True})
    with pytest.raises(AssertionError, match="A beats C: not distinguishable"):
        cl.check_claims([held, failing])
    assert cl.summary([held, failing]) == {
        cl.HELD: 1,
        cl.UNDECIDED: 1,
        cl.REVERSED: 0,
        "asserted": 2,
    }


def test_claims_keep_the_per_seed_effects_they_were_judged_on():
    b = np.array([0.90, 0.89, 0.91, 0.90, 0.88])
    c = cl.exceeds("A beats B", A, b, scale=100)
    assert c.sample == pytest.approx(tuple(100 * (np.array(A) - b)))
    assert cl.within("level", A, b, margin=9, scale=100).sample == c.sample
    assert cl.exceeds("above 90", A, margin=0.9).sample == pytest.approx(tuple(A))
    assert cl.exceeds("unpaired", A, b, paired=False).sample == ()  # no per-seed effect
    assert c.as_dict()["sample"] == list(c.sample)


def test_an_every_seed_claim_needs_every_seed():
    held = cl.every_seed("empties a layer", [True, True, True])
    assert held.verdict == cl.HELD and held.test == "every" and held.effect == 1
    # Clopper-Pearson: with 3 of 3, the one-sided 95 % lower bound on the rate is 0.05^(1/3)
    assert held.low == pytest.approx(0.05 ** (1 / 3)) and held.high == 1
    assert cl.every_seed("x", [True, False, True]).verdict == cl.UNDECIDED
    assert cl.every_seed("x", [False, False]).verdict == cl.REVERSED
    # the old rule (a t bound on 0/1 values, margin 0.5) called 2 of 3 ... undecided, and
    # 3 of 3 held with a zero-width bound [1, ∞); the binomial rule shows the rate's bounds
    assert "needs every seed" in cl.bound_text(held) and "3 of 3 seeds" in cl.claims_table([held])


def test_the_spearman_bound_uses_bonett_wright():
    r, n = 0.8, 28
    low, high = cl.spearman_bounds(r, n)
    half = stats.norm.ppf(0.95) * math.sqrt((1 + r * r / 2) / (n - 3))
    assert low == pytest.approx(math.tanh(math.atanh(r) - half))
    assert high == pytest.approx(math.tanh(math.atanh(r) + half))
    # wider than the Pearson formula 1/sqrt(n - 3)
    assert low < math.tanh(math.atanh(r) - stats.norm.ppf(0.95) / math.sqrt(n - 3))
    x = np.arange(10.0)
    c = cl.rank_correlation_exceeds("ranks agree", x, x**3, 0.5, over="gates")
    assert c.effect == pytest.approx(1.0) and c.held and c.test == "rank"
    assert c.sample_y == tuple(x**3) and "gates" in c.unit
    assert cl.spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)  # ties averaged
    with pytest.raises(ValueError, match="pair up"):
        cl.rank_correlation_exceeds("x", [1, 2, 3, 4], [1, 2, 3], 0.5)


def test_the_spearman_bound_covers_as_stated():
    # Simulate bivariate normal samples of 28 pairs with a true Spearman rho of about 0.7:
    # the one-sided 95 % lower bound must lie below the truth in at least 95 % of samples
    # (the Pearson formula falls short of that for Spearman's rho).
    rng = np.random.default_rng(1)
    n, pearson = 28, 0.72
    rho_true = 6 / math.pi * math.asin(pearson / 2)  # Spearman's rho of a bivariate normal
    cover, trials = 0, 4000
    cov = [[1, pearson], [pearson, 1]]
    for _ in range(trials):
        xy = rng.multivariate_normal([0, 0], cov, size=n)
        low, _ = cl.spearman_bounds(cl.spearman(xy[:, 0], xy[:, 1]), n)
        cover += low < rho_true
    assert cover / trials >= 0.94


def test_status_and_asserted_labels_for_prose():
    b = np.array(A) - 0.02
    strong = cl.Claim(**{**cl.exceeds("A beats B at 90", A, b).__dict__, "power": 1.0})
    strong = cl.Claim(**{**strong.__dict__, "asserted": True})
    weak = cl.Claim(**{**cl.exceeds("A beats B at 95", A, b).__dict__, "power": 0.52})
    bare = cl.exceeds("A beats B at 98", A, b)
    assert cl.status_text(strong) == "asserted"
    assert cl.status_text(weak).endswith("with probability 0.520")
    assert cl.status_text(bare) == "not asserted: not calibrated"
    found = [strong, weak, bare]
    items = {"90 %": ("at 90",), "95 %": ("at 95",), "98 %": ("at 98",)}
    assert cl.asserted_labels(found, items) == "90 %"
    both = [strong, cl.Claim(**{**weak.__dict__, "asserted": True}), bare]
    assert cl.asserted_labels(both, items) == "90 % and 95 %"
    assert cl.asserted_labels([weak], {"95 %": ("at 95",)}) == "none"
    timed = cl.exceeds("faster", [1.3, 1.2, 1.4], margin=1.1, over=cl.TIMING)
    assert cl.status_text(timed) == "not asserted: timed on one machine"
    assert cl.power_text(timed) == "n/a (timing)"


def test_claims_from_a_table_of_rows_equal_the_judges_called_directly():
    b = [0.90, 0.89, 0.91, 0.90, 0.88]
    rows = [
        (cl.exceeds, "A beats B", A, b, {"scale": 100}),
        (cl.within, "A and B within 10", A, b, 10, {"scale": 100}),
        (cl.every_seed, "A above 0.9 in every seed", [a > 0.9 for a in A]),
        (cl.rank_correlation_exceeds, "A ranks like B", A, b, 0.0),
    ]
    direct = [
        cl.exceeds("A beats B", A, b, scale=100),
        cl.within("A and B within 10", A, b, 10, scale=100),
        cl.every_seed("A above 0.9 in every seed", [a > 0.9 for a in A]),
        cl.rank_correlation_exceeds("A ranks like B", A, b, 0.0),
    ]
    assert [c.as_dict() for c in cl.claims_from(rows)] == [c.as_dict() for c in direct]
    with pytest.raises(ValueError, match="judge"):
        cl.claims_from([(max, "A beats B", A, b)])
    with pytest.raises(ValueError, match="statement"):
        cl.claims_from([(cl.exceeds, 3, A, b)])
