"""The results store behind `python -m minipruner reproduce`: one JSON per configuration,
atomic, resumable, keyed on the settings; and the command line."""

import json
import subprocess
import sys
import types

import pytest
import torch
from matplotlib.figure import Figure

import minipruner as mp
from minipruner.__main__ import main
from minipruner.book.chapters import CHAPTERS, chapter_module, chapter_name
from minipruner.book.runner import settings_at
from minipruner.experiments.records import RESULTS_ENV, results_dir
from minipruner.experiments.tables import markdown_table

CALLS: list[dict] = []
FAIL_AT: list[int] = []  # run raises when it is called with this "x"


def _fake_module() -> types.ModuleType:
    module = types.ModuleType("fake_chapter")
    module.VERSION = 1
    module.TITLE = "A fake chapter"

    def settings(scale):
        return {"xs": [1, 2, 3, 4], "power": 2, "scale": scale}

    def configurations(settings):
        return [{"x": x} for x in settings["xs"]]

    def run(config, settings):
        if config["x"] in FAIL_AT:
            raise KeyboardInterrupt("interrupted")
        CALLS.append(config)
        return {"y": config["x"] ** settings["power"]}

    def figures(results):
        fig = Figure()
        fig.subplots().plot(results.values("x"), results.values("y"))
        return {"curve": fig}

    def table(results):
        return markdown_table(["x", "y"], [[r["x"], r["y"]] for r in results.records])

    for f in (settings, configurations, run, figures, table):
        setattr(module, f.__name__, f)
    return module


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "fake_chapter", _fake_module())
    monkeypatch.setitem(CHAPTERS, "99_fake", "fake_chapter")
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path))
    CALLS.clear()
    FAIL_AT.clear()
    return tmp_path


def test_reproduce_writes_one_json_per_configuration_and_loads_them_again(fake):
    first = mp.reproduce("99_fake", "quick", quiet=True)
    assert [r["y"] for r in first.records] == [1, 4, 9, 16]
    assert first.computed == 4 and len(CALLS) == 4
    files = sorted((fake / "99_fake" / "quick").glob("*.json"))
    assert len(files) == 4
    entry = json.loads(files[0].read_text())
    assert set(entry) == {"version", "settings", "config", "result"}
    assert "seconds" in entry["result"]
    again = mp.reproduce("99_fake", "quick", quiet=True)
    assert again.computed == 0 and len(CALLS) == 4  # nothing recomputed
    assert again.records == first.records
    assert not list((fake / "99_fake" / "quick").glob("*.tmp"))


def test_an_interrupted_run_resumes_from_its_last_finished_configuration(fake):
    FAIL_AT.append(3)
    with pytest.raises(KeyboardInterrupt):
        mp.reproduce("99_fake", "quick", quiet=True)
    assert [c["x"] for c in CALLS] == [1, 2]
    assert len(list((fake / "99_fake" / "quick").glob("*.json"))) == 2
    FAIL_AT.clear()
    resumed = mp.reproduce("99_fake", "quick", quiet=True)
    assert [c["x"] for c in CALLS] == [1, 2, 3, 4]  # 1 and 2 were not run again
    assert resumed.computed == 2


def test_a_corrupt_result_is_recomputed_with_a_warning(fake):
    mp.reproduce("99_fake", "quick", quiet=True)
    victim = sorted((fake / "99_fake" / "quick").glob("*.json"))[0]
    victim.write_text('{"truncated": ')
    with pytest.warns(UserWarning, match="unreadable result"):
        again = mp.reproduce("99_fake", "quick", quiet=True)
    assert again.computed == 1
    json.loads(victim.read_text())  # rewritten whole


def test_other_settings_and_scales_get_their_own_files(fake):
    mp.reproduce("99_fake", "quick", quiet=True)
    cubed = mp.reproduce("99_fake", "quick", quiet=True, settings={"xs": [2], "power": 3})
    assert cubed.computed == 1 and cubed.records[0]["y"] == 8
    full = mp.reproduce("99_fake", "full", quiet=True)
    assert full.computed == 4 and full.folder.name == "full"


def test_compute_false_names_the_command_that_fills_the_gap(fake):
    with pytest.raises(FileNotFoundError, match="python -m minipruner reproduce 99_fake"):
        mp.reproduce("99_fake", "quick", compute=False)
    assert not CALLS


def test_results_selects_and_summarises(fake):
    res = mp.reproduce("99_fake", "quick", quiet=True)
    assert res.select(x=2)[0]["y"] == 4
    assert res.stat("y") == (7.5, pytest.approx(6.5574385243))  # sample sd
    with pytest.raises(KeyError, match="no record"):
        res.values("y", x=99)


def test_chapter_names_resolve_from_numbers_and_short_names():
    assert chapter_name(1) == "01_magnitude"
    assert chapter_name("01") == "01_magnitude"
    assert chapter_name("magnitude") == "01_magnitude"
    assert chapter_name("04_obs") == "04_obs"
    with pytest.raises(ValueError, match="chapters: 01_magnitude"):
        chapter_name("nine")


def test_results_dir_is_the_repository_results_folder_from_a_subfolder(monkeypatch, tmp_path):
    monkeypatch.delenv(RESULTS_ENV, raising=False)
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "minipruner").mkdir()
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert results_dir() == tmp_path.resolve() / "results"
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "elsewhere"))
    assert results_dir() == tmp_path / "elsewhere"


def test_command_line_reproduce_then_table(fake, capsys):
    assert main(["reproduce", "99_fake", "--scale", "quick", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "4 computed now" in out
    assert (fake / "99_fake" / "quick" / "figures" / "curve.png").stat().st_size > 1000
    assert (fake / "99_fake" / "quick" / "table.md").read_text().startswith("| x | y |")
    assert main(["table", "99_fake", "--scale", "quick"]) == 0
    assert "| 3 | 9 |" in capsys.readouterr().out
    assert main(["list"]) == 0
    assert "99_fake" in capsys.readouterr().out


def test_command_line_table_without_results_fails_clearly(fake, capsys):
    assert main(["table", "99_fake", "--scale", "full"]) == 1
    assert "python -m minipruner reproduce" in capsys.readouterr().err


def test_command_line_rejects_an_unknown_chapter(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["reproduce", "nine"])
    assert exit_info.value.code == 2
    assert "unknown chapter" in capsys.readouterr().err


def test_python_dash_m_minipruner_runs():
    done = subprocess.run(
        [sys.executable, "-m", "minipruner", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "reproduce" in done.stdout


@pytest.mark.parametrize("chapter", list(CHAPTERS))
def test_every_chapter_defines_the_five_functions(chapter):
    module = chapter_module(chapter)
    for scale in mp.SCALES:
        settings = module.settings(scale)
        assert json.loads(json.dumps(settings)) == settings
        configs = module.configurations(settings)
        keys = [json.dumps(c, sort_keys=True) for c in configs]
        assert configs and len(set(keys)) == len(keys)
    for name in ("run", "figures", "table"):
        assert callable(getattr(module, name)) and getattr(module, name).__doc__


def test_command_line_table_all_prints_each_stored_chapter_under_a_heading(fake, capsys):
    mp.reproduce("99_fake", "quick", quiet=True)
    assert main(["table", "all", "--scale", "quick"]) == 0
    captured = capsys.readouterr()
    assert "### 99_fake" in captured.out
    assert "Scale `quick`, seed offset 0, 4 configurations." in captured.out
    assert "no complete results for: 01_magnitude" in captured.err


def test_grid_settings_are_left_out_of_the_key_so_new_values_run_alone(fake, monkeypatch):
    monkeypatch.setattr(sys.modules["fake_chapter"], "GRID", ("xs",), raising=False)
    mp.reproduce("99_fake", "quick", quiet=True)
    more = mp.reproduce(
        "99_fake",
        "quick",
        quiet=True,
        settings={"xs": [1, 2, 3, 4, 5], "power": 2, "scale": "quick"},
    )
    assert more.computed == 1 and [c["x"] for c in CALLS] == [1, 2, 3, 4, 5]
    entry = json.loads(next((fake / "99_fake" / "quick").glob("*.json")).read_text())
    assert "xs" not in entry["settings"] and entry["settings"]["power"] == 2
    other = mp.reproduce("99_fake", "quick", quiet=True, settings={"xs": [1], "power": 3})
    assert other.computed == 1  # a setting outside the grid still changes every key


def test_configurations_run_with_one_thread_unless_told_and_record_it(fake):
    before = torch.get_num_threads()
    assert main(["reproduce", "99_fake", "--quiet"]) == 0
    assert {r["threads"] for r in mp.reproduce("99_fake", "quick").records} == {1}
    other = {"xs": [7], "power": 2, "scale": "quick"}
    res = mp.reproduce("99_fake", "quick", quiet=True, settings=other, threads=2)
    assert res.records[0]["threads"] == 2
    assert torch.get_num_threads() == before  # restored
    with pytest.raises(SystemExit):
        main(["reproduce", "99_fake", "--threads", "0"])
    with pytest.raises(ValueError, match="threads"):
        mp.reproduce("99_fake", "full", threads=0)


def test_stored_results_keep_the_order_of_their_keys(fake, monkeypatch):
    def run(config, settings):
        return {"layers": {"z.weight": 1, "a.weight": 2, "m.weight": 3}}

    monkeypatch.setattr(sys.modules["fake_chapter"], "run", run)
    mp.reproduce("99_fake", "quick", quiet=True)
    again = mp.reproduce("99_fake", "quick")
    assert again.computed == 0
    assert list(again.records[0]["layers"]) == ["z.weight", "a.weight", "m.weight"]


def test_markdown_table_escapes_pipes():
    assert markdown_table(["a"], [["|w|"]]).splitlines()[-1] == "| \\|w\\| |"


def test_results_at_another_seed_offset_are_keyed_apart(fake, monkeypatch):
    from minipruner.core.scale import seed_offset, shifted_seeds

    module = sys.modules["fake_chapter"]
    monkeypatch.setattr(
        module,
        "settings",
        lambda scale: {"xs": shifted_seeds([0, 1]), "seed_offset": seed_offset(), "power": 2},
    )
    monkeypatch.setenv("MINIPRUNER_SEED_OFFSET", "0")
    at0 = mp.reproduce("99_fake", "quick", quiet=True)
    monkeypatch.setenv("MINIPRUNER_SEED_OFFSET", "100")
    at100 = mp.reproduce("99_fake", "quick", quiet=True)
    assert [r["x"] for r in at0.records] == [0, 1]
    assert [r["x"] for r in at100.records] == [100, 101]
    assert at100.computed == 2  # nothing reused from offset 0
    assert len(list(at0.folder.glob("*.json"))) == 4  # both offsets stored, apart
    monkeypatch.setenv("MINIPRUNER_SEED_OFFSET", "0")
    again = mp.reproduce("99_fake", "quick", quiet=True)
    assert again.computed == 0 and [r["x"] for r in again.records] == [0, 1]


def test_an_explicit_seed_offset_matches_the_variable_and_the_command_line_takes_it(
    fake, monkeypatch, capsys
):
    from minipruner.core.scale import seed_offset, shifted_seeds

    def settings(scale, seed_offset_=None):
        k = seed_offset(seed_offset_)
        return {"xs": shifted_seeds([0, 1], k), "seed_offset": k, "power": 2, "scale": scale}

    module = sys.modules["fake_chapter"]
    monkeypatch.setattr(
        module, "settings", lambda scale, seed_offset=None: settings(scale, seed_offset)
    )
    monkeypatch.setenv("MINIPRUNER_SEED_OFFSET", "100")
    from_env = mp.reproduce("99_fake", "quick", quiet=True)
    monkeypatch.setenv("MINIPRUNER_SEED_OFFSET", "0")
    given = mp.reproduce("99_fake", "quick", quiet=True, seed_offset=100)
    assert given.computed == 0 and given.records == from_env.records  # the same files
    assert settings_at("99_fake", "quick", 100) == from_env.settings
    with pytest.raises(ValueError, match="not both"):
        mp.reproduce("99_fake", "quick", settings=from_env.settings, seed_offset=100)
    assert main(["reproduce", "99_fake", "--seed-offset", "200", "--quiet"]) == 0
    assert "2 computed now" in capsys.readouterr().out
    assert main(["table", "99_fake", "--seed-offset", "200"]) == 0
    assert "| 201 | 40401 |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["table", "99_fake", "--seed-offset", "-1"])


def test_set_overrides_settings_checked_against_their_defaults():
    from minipruner.experiments.overrides import apply_overrides

    base = {"epochs": 3, "lr": 0.1, "flag": False, "name": "a", "xs": [0.5, 0.9],
            "train": {"epochs": 2, "opt": {"momentum": 0.9}}, "threads": None}  # fmt: skip
    out = apply_overrides(
        base,
        ["epochs=5", "lr=1", "flag=true", "name=b", "xs=[0.1]", "train.opt.momentum=0",
         'threads=2', 'name="c d"'],
    )  # fmt: skip
    assert out == {**base, "epochs": 5, "lr": 1.0, "flag": True, "name": "c d", "xs": [0.1],
                   "train": {"epochs": 2, "opt": {"momentum": 0.0}}, "threads": 2}  # fmt: skip
    assert isinstance(out["lr"], float) and base["epochs"] == 3  # a copy
    for bad, message in [
        ("epoch=5", "unknown key 'epoch' in the settings .*epochs"),
        ("train.epoch=5", "unknown key 'epoch' in train"),
        ("epochs=5.5", "expected int"),
        ("epochs=true", "expected int"),
        ("flag=1", "expected bool"),
        ("xs=0.5", "expected list"),
        ('xs=["a"]', r"xs\[0\]: expected float"),
        ("name.x=1", "not a mapping"),
        ("epochs", "key=value"),
        ("seed_offset=3", "--seed-offset"),
        ("scale=full", "--scale"),
    ]:
        with pytest.raises(ValueError, match=message):
            apply_overrides({**base, "seed_offset": 0, "scale": "quick"}, [bad])


def test_command_line_set_runs_other_settings_apart_and_rejects_bad_ones(fake, capsys):
    assert main(["reproduce", "99_fake", "--set", "power=3", "--quiet"]) == 0
    assert "4 computed now" in capsys.readouterr().out
    assert main(["table", "99_fake", "--set", "power=3"]) == 0
    assert "| 3 | 27 |" in capsys.readouterr().out
    assert main(["table", "99_fake"]) == 1  # the chapter's own settings: nothing stored yet
    capsys.readouterr()
    for bad, message in [("powr=3", "unknown key 'powr'"), ("power=x", "expected int")]:
        with pytest.raises(SystemExit) as exit_info:
            main(["reproduce", "99_fake", "--set", bad])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["claims", "--set", "power=3"])
    assert "needs one chapter" in capsys.readouterr().err


def test_claims_command_prints_stores_and_fails_on_an_asserted_claim(fake, monkeypatch, capsys):
    from minipruner.book import claims as cl

    module = sys.modules["fake_chapter"]
    mp.reproduce("99_fake", "quick", quiet=True)
    assert main(["claims", "99_fake"]) == 1  # no claims function yet: nothing to judge

    def claims(results, margin=0.0):
        y = results.values("y")
        x = results.values("x")
        return [cl.exceeds("y exceeds x - 10", y, x - 10, margin, asserted=True)]

    monkeypatch.setattr(module, "claims", claims, raising=False)
    capsys.readouterr()
    assert main(["claims", "99_fake"]) == 0
    out = capsys.readouterr().out
    assert "y exceeds x - 10" in out and "**held**" in out
    folder = fake / "99_fake" / "quick"
    assert "y exceeds x - 10" in (folder / "claims.md").read_text()
    stored = json.loads((folder / "claims.json").read_text())
    assert stored["seed_offset"] == 0 and stored["claims"][0]["verdict"] == "held"
    monkeypatch.setattr(module, "HEADLINES", (("exceeds x",),), raising=False)
    assert main(["claims", "99_fake", "--summary"]) == 0
    out = capsys.readouterr().out
    assert "| chapter | claims | held | asserted |" in out
    assert "| 99_fake | 1 | 1 | 1 |" in out and "y exceeds x - 10: **held** (power n/a)" in out
    monkeypatch.setattr(module, "claims", lambda r: claims(r, margin=100.0), raising=False)
    assert main(["claims", "99_fake"]) == 1
    assert "did not hold" in capsys.readouterr().err


def test_results_store_without_importing_training():
    # storing and running results needs the cache key and the atomic writer (minipruner.core.store),
    # not the training loop: no chain of module-level imports leads from the records, the
    # runner, the plan or the executors to minipruner.core.train (the chapter protocol imports
    # it only inside train_network); the old names stay importable from minipruner.core.train
    import importlib

    from test_imports import import_graph

    graph, _ = import_graph()

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    for module in (
        "experiments.records",
        "experiments.protocol",
        "experiments.plan",
        "experiments.cluster",
        "book.runner",
        "book.chapters",
    ):
        assert "minipruner.core.train" not in reachable(f"minipruner.{module}"), module
    assert "minipruner.core.store" in graph["minipruner.experiments.records"]
    storing = importlib.import_module("minipruner.core.store")
    training = importlib.import_module("minipruner.core.train")  # mp.train is the function
    chapters = importlib.import_module("minipruner.book.chapters")
    assert CHAPTERS is chapters.CHAPTERS
    for name in ("cache_dir", "config_key", "write_atomic", "load_or_compute"):
        assert getattr(training, name) is getattr(storing, name)
