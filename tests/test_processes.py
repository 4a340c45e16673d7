"""``reproduce(workers=W)``: W worker processes run a chapter's configurations side by side and
store exactly what one process stores; each network is trained once; a worker stays on one seed;
timed configurations run alone; a failing configuration is reported after the others are
stored."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import shrunk_chapter1

import minipruner as mp
from minipruner.book.chapters import CHAPTERS
from minipruner.experiments import cluster
from minipruner.experiments.processes import next_task, usable_cores

TESTS = str(Path(__file__).parent)


@pytest.fixture
def importable(monkeypatch):
    # the stand-in chapters of tests/ are importable here and in the workers (sys.path)
    monkeypatch.syspath_prepend(TESTS)


@pytest.mark.slow
def test_two_workers_store_what_one_process_stores(tmp_path, monkeypatch):
    settings = shrunk_chapter1()
    monkeypatch.setenv("MINIPRUNER_CACHE", str(tmp_path / "serial-cache"))
    serial = mp.reproduce(1, "quick", root=tmp_path / "serial", settings=settings, quiet=True)
    monkeypatch.setenv("MINIPRUNER_CACHE", str(tmp_path / "pool-cache"))  # nothing cached
    pooled = mp.reproduce(
        1, "quick", root=tmp_path / "pool", settings=settings, quiet=True, workers=2
    )
    assert pooled.computed == serial.computed == 10
    assert pooled.networks_trained == 2
    assert len(list((tmp_path / "pool-cache").rglob("*.pt"))) == len(
        list((tmp_path / "serial-cache").rglob("*.pt"))
    )  # each network trained once, into the cache
    files = sorted(p.name for p in (tmp_path / "serial").rglob("*.json"))
    assert files == sorted(p.name for p in (tmp_path / "pool").rglob("*.json"))
    for name in files:  # bit for bit, apart from the wall time
        (a,) = (tmp_path / "serial").rglob(name)
        (b,) = (tmp_path / "pool").rglob(name)
        ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
        for r in (ra, rb):
            r["result"].pop("seconds")
        assert ra == rb


def test_a_free_worker_keeps_to_its_seed_then_takes_a_seed_no_one_is_on():
    seeds = [0, 0, 1, 1, 2, 2]
    assert next_task(seeds, 1, {0}) == 2  # its own seed first
    assert next_task(seeds, 3, {0}) == 2  # then a seed no busy worker is on
    assert next_task([0, 0], 1, {0}) == 0  # else help on another's seed rather than idle
    assert next_task([None, 1], 1, set()) == 1


def test_two_workers_run_side_by_side_and_timed_configurations_alone(
    tmp_path, monkeypatch, importable
):
    import timed_chapter

    log = tmp_path / "calls.txt"
    monkeypatch.setenv("MINIPRUNER_TEST_CALLS_FILE", str(log))
    monkeypatch.setitem(CHAPTERS, "97_timed", "timed_chapter")
    results = mp.reproduce("97_timed", "quick", root=tmp_path, quiet=True, workers=2)
    assert results.computed == 5
    pids = set()
    for r in results.records:
        assert r["value"] == 10 * r["seed"] + r.get("k", 0)
        pids.add(r["pid"])
    assert len(pids) == 2 and os.getpid() not in pids  # two workers, neither this process
    events = [line.split() for line in log.read_text().splitlines()]
    start = {e[1]: float(e[2]) for e in events if e[0] == "start"}
    end = {e[1]: float(e[2]) for e in events if e[0] == "end"}
    timing = "timing-0-"
    # each configuration after its seed's shared run; seed 0's while seed 1's still runs
    for name in start:
        if name.startswith("work-"):
            assert start[name] >= end[f"prepare-{name.split('-')[1]}"]
    assert min(start[n] for n in start if n.startswith("work-0")) < end["prepare-1"]
    others = [n for n in start if n.startswith("work-")]
    # the timing ran after every other configuration ended
    assert start[timing] >= max(end[n] for n in others)
    assert timed_chapter.TIMED == ("timing",)


def test_a_script_without_a_main_guard_can_use_workers(tmp_path):
    # the workers are fresh interpreters: they do not rerun the calling script (which a
    # multiprocessing spawn would do, and fail, for a script without if __name__ == ...)
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {TESTS!r})
            import minipruner as mp
            from minipruner.book.chapters import CHAPTERS
            CHAPTERS["97_timed"] = "timed_chapter"
            r = mp.reproduce("97_timed", "quick", root={str(tmp_path)!r}, quiet=True, workers=2)
            print("computed", r.computed)
            """
        )
    )
    env = {**os.environ, "MINIPRUNER_TEST_CALLS_FILE": str(tmp_path / "calls.txt")}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "computed 5"


def test_an_interrupted_run_stops_its_workers_at_once(tmp_path):
    # Ctrl-C in a notebook or a terminal: the workers are killed, not left to finish
    log = tmp_path / "calls.txt"
    # (SIGINT raises KeyboardInterrupt, as in a terminal, even where this test's own process
    # was started with SIGINT ignored, as a background job is)
    script = (
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        f"import sys; sys.path.insert(0, {TESTS!r}); import minipruner as mp; "
        "from minipruner.book.chapters import CHAPTERS; CHAPTERS['97_timed'] = 'timed_chapter'; "
        f"mp.reproduce('97_timed', 'quick', root={str(tmp_path)!r}, quiet=True, workers=2)"
    )
    env = {**os.environ, "MINIPRUNER_TEST_CALLS_FILE": str(log), "MINIPRUNER_TEST_SLEEP": "120"}
    run = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120

    def working() -> list[int]:  # the processes of the configurations started so far
        lines = log.read_text().splitlines() if log.exists() else []
        return [int(e.split()[3]) for e in lines if e.startswith("start work-")]

    while time.monotonic() < deadline and len(working()) < 2:
        assert run.poll() is None, run.stderr.read().decode()
        time.sleep(0.1)
    pids = working()
    assert len(set(pids)) == 2  # both workers busy
    run.send_signal(signal.SIGINT)
    run.wait(timeout=30)  # well before the configurations' 120 s
    assert run.returncode != 0 and b"KeyboardInterrupt" in run.stderr.read()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_failing_configuration_is_reported_and_the_others_are_stored(
    tmp_path, monkeypatch, importable
):
    import failing_chapter

    monkeypatch.setenv("MINIPRUNER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MINIPRUNER_TEST_CALLS_FILE", str(tmp_path / "calls.txt"))
    monkeypatch.setitem(CHAPTERS, "98_failing", "failing_chapter")
    with pytest.raises(cluster.ConfigurationsFailed, match="'x': 2") as err:
        mp.reproduce("98_failing", "quick", root=tmp_path, quiet=True, workers=2)
    assert [f.config for f in err.value.failures] == [{"x": 2}]
    assert "x is 2" in err.value.failures[0].error  # the worker's traceback
    stored = list((tmp_path / "98_failing").rglob("*.json"))
    assert len(stored) == 3  # every other configuration
    assert failing_chapter.calls() == 1  # the shared run ran once, before the configurations


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_bad_worker_counts_are_refused(workers):
    with pytest.raises(ValueError, match="workers"):
        mp.reproduce(1, "quick", workers=workers, compute=False)


def test_usable_cores_counts_this_process_cores():
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)
