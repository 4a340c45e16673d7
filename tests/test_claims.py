"""Claims as data: the verdict rule on made-up measurements, the table, and the assert."""

import math

import numpy as np
import pytest
from scipy import stats

from minipruner import claims as cl

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


def test_a_margin_must_be_cleared():
    b = np.array(A) - 0.02  # exactly two points ahead on every seed
    assert cl.exceeds("ahead", A, b, margin=1.0, scale=100).verdict == cl.HELD
    assert cl.exceeds("ahead by 3", A, b, margin=3.0, scale=100).verdict == cl.REVERSED


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


def test_mark_asserted_sets_exactly_the_named_claims():
    found = {
        "a": cl.exceeds("A beats B", A, np.array(A) - 0.02, scale=100, asserted=True),
        "b": cl.exceeds("A beats C", A, np.array(A) - 0.03, scale=100),
    }
    marked = cl.mark_asserted(found, ["b", "not measured here"])
    assert not marked["a"].asserted and marked["b"].asserted
    assert marked["b"].effect == found["b"].effect
