"""``reproduce --ray``: a local Ray cluster with 2 CPUs runs a chapter's configurations as
tasks and stores exactly what the serial path stores; shared networks are trained once; an
interrupted driver resumes with the missing configurations only; a configuration that raises
is reported while the others are stored."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from conftest import shrunk_chapter1  # noqa: E402

import minipruner as mp  # noqa: E402
from minipruner.book.chapters import CHAPTERS  # noqa: E402
from minipruner.experiments import cluster  # noqa: E402

TIMING = ("seconds",)


def comparable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    tests = str(Path(__file__).parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}},
    )
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_stores_what_the_serial_path_stores_and_trains_each_network_once(
    local_ray, tmp_path, monkeypatch
):
    settings = shrunk_chapter1()
    monkeypatch.setenv("MINIPRUNER_CACHE", str(tmp_path / "serial-cache"))
    serial = mp.reproduce(1, "quick", root=tmp_path / "serial", settings=settings, quiet=True)
    assert serial.computed == len(serial) == 10 and serial.networks_trained == 2

    monkeypatch.setenv("MINIPRUNER_CACHE", str(tmp_path / "ray-cache"))  # nothing cached
    clustered = mp.reproduce(
        1, "quick", root=tmp_path / "ray", settings=settings, quiet=True, executor="ray"
    )
    assert clustered.computed == 10
    assert clustered.networks_trained == 2  # one training task per seed's network
    assert clustered.trained_in_configs == 0  # no configuration trained one itself
    assert comparable(clustered.records) == comparable(serial.records)
    files = sorted(p.name for p in (tmp_path / "serial").rglob("*.json"))
    assert files == sorted(p.name for p in (tmp_path / "ray").rglob("*.json"))
    for name in files:  # the stored files too, key for key and value for value
        (a,) = (tmp_path / "serial").rglob(name)
        (b,) = (tmp_path / "ray").rglob(name)
        ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
        for r in (ra, rb):
            r["result"].pop("seconds")
        assert ra == rb


@pytest.mark.slow
def test_a_failing_configuration_is_reported_and_the_others_are_stored(
    local_ray, tmp_path, monkeypatch
):
    import failing_chapter  # tests/failing_chapter.py, importable by the workers too

    monkeypatch.setenv("MINIPRUNER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MINIPRUNER_TEST_CALLS_FILE", str(tmp_path / "calls.txt"))
    CHAPTERS["98_failing"] = "failing_chapter"
    try:
        settings = failing_chapter.settings("quick")
        with pytest.raises(cluster.ConfigurationsFailed, match="'x': 2") as err:
            mp.reproduce("98_failing", "quick", root=tmp_path, quiet=True, executor="ray")
        assert [f.config for f in err.value.failures] == [{"x": 2}]
        assert "x is 2" in err.value.failures[0].error
        stored = list((tmp_path / "98_failing").rglob("*.json"))
        assert len(stored) == len(settings["xs"]) - 1  # every other configuration
        assert failing_chapter.calls() == 1  # the shared work ran once, in its own task
        # a rerun computes only the missing one (it fails again: nothing else is recomputed)
        with pytest.raises(cluster.ConfigurationsFailed):
            mp.reproduce("98_failing", "quick", root=tmp_path, quiet=True, executor="ray")
        assert len(list((tmp_path / "98_failing").rglob("*.json"))) == len(stored)
    finally:
        del CHAPTERS["98_failing"]


@pytest.mark.slow
def test_a_killed_driver_resumes_with_the_missing_configurations_only(local_ray, tmp_path):
    settings = shrunk_chapter1()
    script = textwrap.dedent(
        f"""
        import json, minipruner as mp
        settings = json.loads({json.dumps(json.dumps(settings))})
        mp.reproduce(1, "quick", root={str(tmp_path)!r}, settings=settings, quiet=True,
                     executor="ray")
        """
    )
    env = {**os.environ, "MINIPRUNER_CACHE": str(tmp_path / "cache")}
    driver = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True)
    folder = tmp_path / "01_magnitude"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(folder.rglob("*.json"))) < 3:
        assert driver.poll() is None, "the driver ended before it was killed"
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local cluster it started
    driver.wait()
    done = len(list(folder.rglob("*.json")))
    assert 3 <= done < 10
    os.environ["MINIPRUNER_CACHE"] = str(tmp_path / "cache")
    try:
        again = mp.reproduce(
            1, "quick", root=tmp_path, settings=settings, quiet=True, executor="ray"
        )
    finally:
        del os.environ["MINIPRUNER_CACHE"]
    assert again.computed == 10 - done and len(again) == 10


def test_without_ray_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[cluster\]'"):
        cluster.connect()
