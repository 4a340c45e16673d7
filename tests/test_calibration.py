"""Which claims are asserted is computed: the power of a claim from many seed offsets, the
committed calibrations, and the check that they match the chapters' settings."""

import json
import math
import sys
import types

import numpy as np
import pytest
from scipy import stats

from minipruner.book import calibration as cal
from minipruner.book import claims as cl
from minipruner.book.chapters import CHAPTERS, chapter_module
from minipruner.book.runner import calibrate, reproduce, settings_at


def _simulated(kind, mu, sigma, n, margin, trials=40_000, seed=0):
    """Share of simulated seed sets of n normal effects whose verdict is held."""
    d = np.random.default_rng(seed).normal(mu, sigma, size=(trials, n))
    m, s = d.mean(1), d.std(1, ddof=1)
    half = stats.t.ppf(0.95, n - 1) * s / math.sqrt(n)
    if kind == "exceeds":
        return float(np.mean(m - half > margin))
    return float(np.mean((m - half > -margin) & (m + half < margin)))


@pytest.mark.parametrize("mu, sigma, n", [(2.0, 1.0, 3), (1.0, 1.0, 5), (0.3, 1.0, 10)])
def test_power_of_a_mean_claim_is_the_noncentral_t_power(mu, sigma, n):
    exact = cal.power_exceeds(mu, sigma, n, margin=0.0)
    assert exact == pytest.approx(_simulated("exceeds", mu, sigma, n, 0.0), abs=0.01)


@pytest.mark.parametrize("mu, sigma, n", [(0.0, 0.3, 3), (0.5, 0.5, 5), (0.2, 1.0, 10)])
def test_power_of_an_equivalence_claim_matches_a_simulation(mu, sigma, n):
    exact = cal.power_within(mu, sigma, n, margin=1.5)
    assert exact == pytest.approx(_simulated("within", mu, sigma, n, 1.5), abs=0.01)


def test_a_strong_claim_is_asserted_and_a_marginal_one_is_not():
    rng = np.random.default_rng(0)
    # 30 pooled seeds; the page has 3. A lead of 10 sds clears 0.999; a lead of 3 sds, which
    # holds in most single runs, does not: with 3 seeds t_{0.95,2} = 2.92 eats most of it.
    strong = rng.normal(10.0, 1.0, 30)
    marginal = rng.normal(3.0, 1.0, 30)
    assert cal.mean_power(strong, 3, "exceeds", 0.0) >= cal.POWER_TO_ASSERT
    p = cal.mean_power(marginal, 3, "exceeds", 0.0)
    assert 0.3 < p < cal.POWER_TO_ASSERT
    # more seeds on the page raise the power of the same effect
    assert cal.mean_power(marginal, 10, "exceeds", 0.0) > p
    # the plug-ins are conservative: below the power at the sample's own mean and sd
    assert p < cal.power_exceeds(marginal.mean(), marginal.std(ddof=1), 3, 0.0)
    # fewer pooled seeds, wider plug-ins, lower power
    same = (marginal - marginal.mean()) / marginal.std(ddof=1) + 3.0  # mean 3, sd 1 exactly
    assert cal.mean_power(same[:6], 3, "exceeds", 0.0) < cal.mean_power(same, 3, "exceeds", 0)


def test_plug_ins_bound_the_mean_and_the_sd():
    x = np.random.default_rng(2).normal(1.0, 2.0, 20)
    low, high, sd = cal.plug_ins(x)
    half = stats.t.ppf(0.95, 19) * x.std(ddof=1) / math.sqrt(20)
    assert low == pytest.approx(x.mean() - half) and high == pytest.approx(x.mean() + half)
    assert sd == pytest.approx(x.std(ddof=1) * math.sqrt(19 / stats.chi2.ppf(0.05, 19)))
    assert cal.mean_power([1.0], 3, "exceeds", 0.0) == 0.0  # one seed: nothing to go on


def test_every_seed_claims_are_binomial():
    # 18 of 18 seeds: Clopper-Pearson lower bound 0.05^(1/18); a page of 3 seeds passes with
    # that to the third power: far from 0.999, however often it held
    assert cal.every_power([1.0] * 18, 3) == pytest.approx(0.05 ** (3 / 18))
    assert cal.every_power([1.0] * 18, 3) < cal.POWER_TO_ASSERT
    assert cal.every_power([0.0] * 5, 3) == 0.0
    k, big_n = 29, 30
    assert cal.every_power([1.0] * k + [0.0], 5) == pytest.approx(
        stats.beta.ppf(0.05, k, big_n - k + 1) ** 5
    )


def test_rank_claims_bootstrap_over_their_pairs():
    rng = np.random.default_rng(3)
    x = rng.normal(size=28)
    tight = x + 0.05 * rng.normal(size=28)
    loose = x + 1.0 * rng.normal(size=28)
    assert cal.rank_power(x, tight, 0.7, resamples=2000) > 0.99
    assert cal.rank_power(x, loose, 0.7, resamples=2000) < 0.5


def _entry(test="mean", over="seeds", kind="exceeds", runs=(), n=3, margin=0.0):
    return {"test": test, "over": over, "kind": kind, "n": n, "margin": margin, "runs": list(runs)}


def test_claim_power_pools_seeds_and_takes_the_worst_run_otherwise():
    a, b = [5.0, 5.2, 4.9], [5.1, 4.8, 5.0]
    runs = [{"sample": a, "sample_y": []}, {"sample": b, "sample_y": []}]
    assert cal.claim_power(_entry(runs=runs)) == cal.mean_power(a + b, 3, "exceeds", 0.0)
    gates = _entry(over="gates", runs=runs)
    assert cal.claim_power(gates) == min(cal.mean_power(v, 3, "exceeds", 0.0) for v in (a, b))
    assert cal.claim_power(_entry(over=cal.TIMING, runs=runs)) == 0.0  # the machine's
    assert cal.claim_power(_entry(runs=[{"sample": [], "sample_y": []}])) == 0.0  # unpaired
    flags = [{"sample": [1.0] * 3, "sample_y": []}]
    assert cal.claim_power(_entry(test="every", runs=flags)) == cal.every_power([1.0] * 3, 3)


def test_the_settings_hash_ignores_the_offset_only():
    base = {"seeds": [0, 1, 2], "seed_offset": 0, "epochs": 3, "scale": "quick"}
    shifted = {**base, "seeds": [400, 401, 402], "seed_offset": 400}
    assert cal.settings_hash(1, base) == cal.settings_hash(1, shifted)
    assert cal.settings_hash(1, base) != cal.settings_hash(2, base)  # VERSION
    assert cal.settings_hash(1, base) != cal.settings_hash(1, {**base, "epochs": 4})
    assert cal.settings_hash(1, base) != cal.settings_hash(1, {**base, "seeds": [0, 1, 2, 3]})
    nested = {**base, "latency": {"seed": 0, "rounds": 5}}
    moved = {**shifted, "latency": {"seed": 400, "rounds": 5}}
    assert cal.settings_hash(1, nested) == cal.settings_hash(1, moved)
    assert cal.settings_hash(1, nested) != cal.settings_hash(1, {**moved, "seed_offset": 0})


@pytest.mark.parametrize("name", list(CHAPTERS))
def test_a_chapter_is_calibrated_at_any_offset(name):
    # the page at a seed offset no calibration ran must find its calibration (chapter 5's
    # settings name seeds beyond "seeds": a hash that missed them asserted nothing there)
    version = chapter_module(name).VERSION
    at = [cal.settings_hash(version, settings_at(name, "quick", k)) for k in (0, 4217)]
    assert at[0] == at[1] == cal.load(name)["settings_hash"]


@pytest.mark.parametrize("name", list(CHAPTERS))
def test_every_chapter_has_a_calibration_of_its_current_settings(name, monkeypatch):
    monkeypatch.delenv("MINIPRUNER_SEED_OFFSET", raising=False)
    module = chapter_module(name)
    found = cal.load(name)
    assert found is not None, f"{name}: no calibration; run python -m minipruner calibrate {name}"
    now = cal.settings_hash(module.VERSION, settings_at(name, "quick", 0))
    assert found["settings_hash"] == now, (
        f"{name}: its settings changed since the calibration; run "
        f"python -m minipruner calibrate {name}"
    )
    assert len(set(found["offsets"])) >= cal.MIN_OFFSETS
    assert max(found["threads"].values()) >= 2  # one run at two threads
    for entry in found["claims"]:  # the stored powers follow from the stored samples
        assert entry["power"] == pytest.approx(cal.claim_power(entry), abs=1e-9)
    assert (cal.path(name)).parent.name == "calibration"


def test_the_book_level_chance_is_at_least_the_stated_level():
    p, count = cal.book_probability(list(CHAPTERS))
    assert count > 0 and p >= cal.BOOK_LEVEL


def _claims_module():
    module = types.ModuleType("calibrated_chapter")
    module.VERSION = 1
    module.TITLE = "a chapter with claims"

    def settings(scale):
        offset = int(__import__("os").environ.get("MINIPRUNER_SEED_OFFSET", "0"))
        seeds = [offset, offset + 1, offset + 2]
        return {"seeds": seeds, "seed_offset": offset, "scale": scale, "shift": 0.0}

    def configurations(settings):
        return [{"seed": s} for s in settings["seeds"]]

    def run(config, settings):
        rng = np.random.default_rng(config["seed"])
        shift = settings.get("shift", 0.0)
        return {"strong": 10 + shift + rng.normal(), "weak": 0.5 + rng.normal()}

    def claims(results):
        found = [
            cl.exceeds("strong is positive", results.values("strong")),
            cl.exceeds("weak is positive", results.values("weak")),
        ]
        return cal.apply(results, found, module.VERSION)

    for f in (settings, configurations, run, claims):
        setattr(module, f.__name__, f)
    module.figures = lambda results: {}
    module.table = lambda results: ""
    return module


def test_calibrate_runs_the_offsets_and_apply_asserts_by_power(monkeypatch, tmp_path):
    module = _claims_module()
    monkeypatch.setitem(sys.modules, "calibrated_chapter", module)
    monkeypatch.setitem(CHAPTERS, "98_calibrated", "calibrated_chapter")
    monkeypatch.setattr(cal, "FOLDER", tmp_path / "calibration")
    cal.load.cache_clear()
    with pytest.raises(ValueError, match="at least 6 seed offsets"):
        calibrate("98_calibrated", [0, 100], root=tmp_path, quiet=True)
    offsets = list(range(0, 1000, 100))
    written = calibrate("98_calibrated", offsets, threads={500: 2}, root=tmp_path, quiet=True)
    data = json.loads(written.read_text())
    assert data["offsets"] == offsets and data["threads"]["500"] == 2
    assert {"torch", "numpy", "python"} <= set(data["versions"])
    strong, weak = data["claims"]
    assert strong["pooled"]["count"] == 30 and len(strong["runs"]) == 10
    assert strong["power"] >= cal.POWER_TO_ASSERT > weak["power"]
    # the page at a new offset: the strong claim is asserted, the weak one only reported
    monkeypatch.setenv("MINIPRUNER_SEED_OFFSET", "4217")
    judged = module.claims(reproduce("98_calibrated", "quick", root=tmp_path, quiet=True))
    assert [c.asserted for c in judged] == [True, False]
    assert judged[0].power == strong["power"]
    # other settings than the calibration's: nothing asserted, no power
    other = reproduce(
        "98_calibrated",
        "quick",
        root=tmp_path,
        quiet=True,
        settings={"seeds": [0, 1], "seed_offset": 0, "scale": "quick"},
    )
    assert all(c.power is None and not c.asserted for c in module.claims(other))
    # the command line: the same file again (every result is stored: nothing recomputed)
    from minipruner.__main__ import main

    args = ["calibrate", "98_calibrated", "--results", str(tmp_path), "--quiet"]
    assert main([*args, "--offsets", *map(str, offsets), "--threads", "500:2"]) == 0
    assert json.loads(written.read_text())["claims"] == data["claims"]
    with pytest.raises(SystemExit):
        main([*args, "--offsets", *map(str, offsets), "--threads", "500"])  # not OFFSET:THREADS
    with pytest.raises(SystemExit):
        main([*args, "--offsets", "0", "100"])  # too few offsets
    # a variant: the chapter under changed settings, written beside it, asserting nothing
    shifted = [*args, "--offsets", *map(str, offsets), "--set", "shift=-10"]
    with pytest.raises(SystemExit):
        main(shifted)  # --set needs --variant
    assert main([*shifted, "--variant", "no-shift"]) == 0
    variant = cal.load("98_calibrated.no-shift")
    assert variant["overrides"] == ["shift=-10"] and variant["chapter"] == "98_calibrated.no-shift"
    assert variant["claims"][0]["power"] < cal.POWER_TO_ASSERT  # strong is 0 on average now
    assert variant["settings_hash"] != data["settings_hash"]
    # each run's verdict, read back by words (the page cites the variant this way)
    base, moved = (
        cal.verdicts("98_calibrated", "strong"),
        cal.verdicts("98_calibrated.no-shift", "strong"),
    )
    assert base["runs"] == moved["runs"] == 10 and base["held"] == 10 and base["not_held"] == []
    assert moved["held"] + moved["not distinguishable"] + moved["reversed"] == 10
    assert moved["held"] < 10 and len(moved["not_held"]) == 10 - moved["held"]
    assert moved["power"] == variant["claims"][0]["power"]
    with pytest.raises(KeyError):
        cal.verdicts("98_calibrated", "positive")  # both claims say it
    assert json.loads(written.read_text())["claims"] == data["claims"]  # the chapter's: as it was
    judged = module.claims(reproduce("98_calibrated", "quick", root=tmp_path, quiet=True))
    assert [c.asserted for c in judged] == [True, False]
    cal.load.cache_clear()


@pytest.mark.parametrize("name", list(CHAPTERS))
def test_headlines_and_cited_claims_name_one_calibrated_claim_each(name):
    # the README's summary table and chapter 6's decision list find claims by words
    for words in chapter_module(name).HEADLINES:
        assert cal.standing(name, *words).startswith(("asserted", "not asserted"))
    with pytest.raises(KeyError):
        cal.standing(name, "no claim says this")


def test_every_variant_calibration_is_current():
    # <chapter>.<variant>.json: the chapter's settings with the stored overrides still hash
    # to what the variant ran (a chapter's settings change makes it stale, as for its own)
    from minipruner.experiments.overrides import apply_overrides

    for file in sorted(cal.FOLDER.glob("*.*.json")):
        data = json.loads(file.read_text())
        name, variant = file.stem.split(".")
        assert data["chapter"] == file.stem and name in CHAPTERS and variant
        module = chapter_module(name)
        for offset in (0, 4217):
            settings = apply_overrides(settings_at(name, "quick", offset), data["overrides"])
            assert cal.settings_hash(module.VERSION, settings) == data["settings_hash"], file.name
        assert len(data["offsets"]) >= cal.MIN_OFFSETS
