"""Bad fault plans, config files and sweep.json records: one line on stderr, exit 2, nothing written.

A fault field of the wrong type (an action that is a list, a time in both at_s and at_ns, a
fractional at_ns), a config file's scenario that is not this run's, and a sweep.json damaged
before ``dsim sweep --resume`` are refused before any run starts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from simulator import UsageError
from simulator.faults import validate_plan
from simulator.pipeline import scenario as registry
from simulator.pipeline.config import build_config
from simulator.pipeline.sweep import MAX_RUNS, check_record

from .test_bad_input import TINY, assert_refused, dsim_in, listing


# ---- fault plans and config files ---------------------------------------------------------------

CRASH = 'node = "n1"\n'
BAD_TOML = [
    ('[[faults]]\nat_s = 0.5\naction = ["crash"]\n' + CRASH, "bad value ['crash'] for action of fault 1"),
    ('[[faults]]\nat_s = 0.5\naction = 5\n', "bad value 5 for action of fault 1"),
    ('[[faults]]\nat_s = 0.5\naction = {a = 1}\n', "for action of fault 1"),
    ('[[faults]]\nat_s = 0.5\nat_ns = 5\naction = "heal"', "at_s = 0.5 and at_ns = 5 for fault 1"),
    ('[[faults]]\nat_ns = 5.5\naction = "heal"', "bad time 5.5 for fault 1 (at_ns): expected an integer"),
    ('[[faults]]\nat_ns = -1\naction = "heal"', "bad time -1 for fault 1 (at_ns)"),
    ('[[faults]]\nat_ns = true\naction = "heal"', "bad time True for fault 1 (at_ns)"),
    ('[[faults]]\nat_s = 1e10\naction = "heal"', "bad time 10000000000.0 for fault 1 (at_s)"),
    ('[[faults]]\nat_s = 0.5\naction = "heal"\n[[faults]]\nat_s = [1]\naction = "heal"', "bad time [1] for fault 2"),
    ('[[faults]]\nat_s = 0.5\naction = "crash"\n' + CRASH + 'nemesis = ["x"]', "bad value ['x'] for nemesis of fault 1"),
    ('[[faults]]\nat_s = 0.5\naction = "crash"\n' + CRASH + 'phase = "go"', "bad value 'go' for phase of fault 1"),
    ('[[faults]]\nat_s = 0.5\naction = "crash"\n' + CRASH + "note = 1979-05-27", "unknown argument 'note' of fault 1 (crash)"),
    ('[[faults]]\nat_s = 0.5\naction = "crash"\n' + CRASH + "lose_unsynced = 1", "bad value 1 for lose_unsynced"),
    ("scenario = 5", "bad value 5 for scenario in "),
    ("scenario = [\"queue\"]", "bad value ['queue'] for scenario in "),
    ('scenario = "raft"', "bad value 'raft' for scenario in "),
]


@pytest.mark.parametrize("text, needle", BAD_TOML, ids=[t.replace("\n", " ") for t, _ in BAD_TOML])
def test_bad_fault_or_scenario_in_toml_is_refused_by_run_and_sweep(here, capsys, text, needle):
    """A config file's bad fault field or scenario exits 2 in one line naming it, for run and sweep; nothing written."""
    cfg = here / "exp.toml"
    cfg.write_text(text + "\n")
    for cmd in (["run", "queue", "--seed", "1", *TINY, "--no-plots"], ["sweep", "queue", "--seeds", "1", *TINY]):
        code, _, err = dsim_in(capsys, *cmd, "--config", cfg, "--out", here / "out")
        assert_refused(code, err, needle)
    assert listing(here) == {"exp.toml"}


def test_run_names_the_config_file_of_a_bad_scenario(here, capsys):
    """The scenario's message names the file it came from."""
    (here / "exp.toml").write_text("scenario = 5\n")
    code, _, err = dsim_in(capsys, "run", "queue", *TINY, "--no-plots", "--config", "exp.toml", "--out", "out")
    assert_refused(code, err, "bad value 5 for scenario in exp.toml: expected a design name")


@pytest.mark.parametrize("plan, needle", [
    ([{"at_s": 1, "action": ["crash"], "node": "n1"}], "bad value ['crash'] for action of fault 1"),
    ([{"at_s": 1, "at_ns": 2, "action": "heal"}], "not both"),
    ([{"at_ns": 1.0, "action": "heal"}], "expected an integer"),
    ([{"at_ns": float("nan"), "action": "heal"}], "bad time nan"),
])
def test_validate_plan_refuses_bad_field_types(plan, needle):
    """validate_plan raises a UsageError (not a TypeError) naming the field, the fault and the value."""
    with pytest.raises(UsageError) as exc:
        validate_plan(plan)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_good_fault_times_are_still_accepted():
    """at_s and at_ns alone, integer or float seconds, an at_ns past 1000 s: all accepted as before."""
    queue = registry.get("queue")
    for act in ({"at_s": 1}, {"at_s": 0.5}, {"at_ns": 3}, {"at_ns": 2_000_000_000_000}):
        cfg = build_config(queue, seed=1, file={"faults": [{**act, "action": "heal", "nemesis": "x", "phase": "start"}]})
        assert cfg.faults[0]["action"] == "heal"


# ---- replay -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    from simulator.cli import main

    out = tmp_path_factory.mktemp("good") / "run"
    with pytest.raises(SystemExit) as exc:
        main(["run", "queue", "--seed", "1", *TINY, "--no-plots", "--out", str(out)])
    assert exc.value.code == 0
    return out


@pytest.mark.parametrize("faults, needle", [
    ([{"at_s": 0.1, "action": ["crash"], "node": "n1"}], "bad value ['crash'] for action of fault 1"),
    ([{"at_s": 0.1, "at_ns": 5, "action": "heal"}], "not both"),
    ([{"at_ns": 0.5, "action": "heal"}], "expected an integer"),
])
def test_replay_refuses_a_manifest_fault_of_the_wrong_type(good_run, here, capsys, faults, needle):
    """replay of a manifest whose recorded fault has a bad field exits 2 in one line, no run."""
    folder = here / "run"
    shutil.copytree(good_run, folder)
    man = json.loads((folder / "manifest.json").read_text())
    man["config"]["faults"] = faults
    (folder / "manifest.json").write_text(json.dumps(man))
    before = listing(here)
    code, _, err = dsim_in(capsys, "replay", folder)
    assert_refused(code, err, needle)
    assert listing(here) == before


# ---- sweep --resume -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def half_sweep(tmp_path_factory):
    """A two-run sweep with its second run gone (as if interrupted), so --resume would run it."""
    from simulator.cli import main

    out = tmp_path_factory.mktemp("sweep") / "s"
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "queue", "--seeds", "1-2", *TINY, "--out", str(out)])
    assert exc.value.code == 0
    shutil.rmtree(out / "runs" / "run-s2")
    for name in ("runs.csv", "summary.png"):
        (out / name).unlink()
    return out


def _config(r: dict) -> dict:
    return r["points"][0]["config"]


SWEEP_DAMAGE = {
    "seeds over the cap": (lambda r: r.__setitem__("seeds", list(range(MAX_RUNS + 1))), "(100,001 items) for seeds"),
    "seed negative": (lambda r: r.__setitem__("seeds", [-1]), "bad value -1 for seeds in "),
    "seed text": (lambda r: r.__setitem__("seeds", ["1"]), "bad value '1' for seeds in "),
    "seed true": (lambda r: r.__setitem__("seeds", [True]), "bad value True for seeds in "),
    "seed twice": (lambda r: r.__setitem__("seeds", [1, 1]), "bad value 1 for seeds in "),
    "seeds none": (lambda r: r.__setitem__("seeds", []), "bad value [] for seeds in "),
    "config time negative": (lambda r: _config(r).__setitem__("time_limit_s", -1), "bad value -1.0 for time_limit_s"),
    "config param missing": (lambda r: _config(r)["params"].pop("service_dist"), "for params.service_dist"),
    "config fault action a list": (lambda r: _config(r).__setitem__("faults", [{"at_s": 0.1, "action": ["crash"], "node": "n1"}]),
                                   "bad value ['crash'] for action of fault 1"),
    "config fault host unknown": (lambda r: _config(r).__setitem__("faults", [{"at_s": 0.1, "action": "crash", "node": "n99"}]),
                                  "'n99'"),
    "config another scenario": (lambda r: _config(r).__setitem__("scenario", "raft"), "bad value 'raft' for scenario"),
    "scenario unknown": (lambda r: r.__setitem__("scenario", "zz"), "unknown scenario 'zz'"),
    "scenario a number": (lambda r: r.__setitem__("scenario", 5), "bad value 5 for scenario in "),
    "scenario another": (lambda r: r.__setitem__("scenario", "raft"), "expected 'raft', the sweep's design"),
    "plots text": (lambda r: r.__setitem__("plots", "no"), "bad value 'no' for plots in "),
    "points none": (lambda r: r.__setitem__("points", []), "bad value [] for points in "),
    "point value a number": (lambda r: r["points"][0].__setitem__("point", {"servers": 5}), "bad value 5 for points[0].point.servers"),
    "point label too long": (lambda r: r["points"][0].__setitem__("point", {"servers": "9" * 300}), "for points[0].point"),
    "runs twice": (lambda r: r.__setitem__("runs", [{"point": {}, "config": {**_config(r), "seed": 1}}] * 2),
                   "bad value 'run-s1' for runs in "),
    "run seed negative": (lambda r: r.__setitem__("runs", [{"point": {}, "config": {**_config(r), "seed": s}} for s in (1, -2)]),
                          "bad value -2 for runs[1].config.seed"),
}


@pytest.mark.parametrize("damage", list(SWEEP_DAMAGE), ids=list(SWEEP_DAMAGE))
def test_resume_refuses_a_damaged_sweep_json(half_sweep, here, capsys, damage):
    """--resume on a sweep.json with a bad field exits 2 in one line naming the file, field and value; nothing runs or is written."""
    folder = here / "s"
    shutil.copytree(half_sweep, folder)
    edit, needle = SWEEP_DAMAGE[damage]
    record = json.loads((folder / "sweep.json").read_text())
    edit(record)
    (folder / "sweep.json").write_text(json.dumps(record))
    before = listing(here)
    code, _, err = dsim_in(capsys, "sweep", "--resume", folder)
    assert_refused(code, err, needle)
    assert "sweep.json" in err
    assert listing(here) == before


def test_check_record_refuses_too_many_runs_before_building_them(half_sweep):
    """The run cap counts points times seeds, as --seeds and --grid do."""
    record = json.loads((half_sweep / "sweep.json").read_text())
    record["seeds"] = list(range(MAX_RUNS // 2 + 1))
    record["points"] = [record["points"][0], {**record["points"][0], "point": {"servers": "1"}}]
    with pytest.raises(UsageError, match="for points in .*at most 100,000 runs"):
        check_record(record, Path("s/sweep.json"))


def test_check_record_accepts_what_dsim_sweep_wrote(half_sweep):
    """An undamaged sweep.json passes and gives each run's folder name in order."""
    record = json.loads((half_sweep / "sweep.json").read_text())
    assert check_record(record, half_sweep / "sweep.json") == ["run-s1", "run-s2"]
