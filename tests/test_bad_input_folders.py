"""Bad run folders, conflicting options and a bare `dsim`: one line on stderr, exit 2, nothing written.

A folder that is not a complete run (no metrics.json, a metrics.json that is a folder, a manifest with
no or an unknown status, a verdict that is no verdict) is refused by show, compare, replay, export and
shrink; a run marked incomplete or still running is still shown (exit 3) and compared. A nemesis named
twice, a key both swept and set and a --set key given twice are refused; a folder compared with itself is compared."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.test_bad_input import TINY, assert_refused, dsim_in, listing


def _json_edit(name: str, edit):
    def apply(folder: Path) -> None:
        data = json.loads((folder / name).read_text())
        edit(data)
        (folder / name).write_text(json.dumps(data))
    return apply


def _no_metrics(folder: Path) -> None:
    (folder / "metrics.json").unlink()


def _metrics_a_folder(folder: Path) -> None:
    (folder / "metrics.json").unlink()
    (folder / "metrics.json").mkdir()


# each damage, and a piece of the message that names the file, the field and the value
NOT_A_COMPLETE_RUN = {
    "no metrics": (_no_metrics, "it has no metrics.json, though manifest.json's status is \"complete\""),
    "metrics a folder": (_metrics_a_folder, "its metrics.json is not a file"),
    "no status": (_json_edit("manifest.json", lambda m: m.pop("status")), "manifest.json has no 'status'"),
    "status unknown word": (_json_edit("manifest.json", lambda m: m.__setitem__("status", "done")),
                            "manifest.json's status is \"done\", not one of running, complete, incomplete"),
    "status null": (_json_edit("manifest.json", lambda m: m.__setitem__("status", None)),
                    "manifest.json's status is null"),
    "status a number": (_json_edit("manifest.json", lambda m: m.__setitem__("status", 1)), "manifest.json's status is 1"),
    "error a list": (_json_edit("manifest.json", lambda m: m.__setitem__("error", [1])), "manifest.json's error is [1]"),
    "valid yes": (_json_edit("metrics.json", lambda m: m.__setitem__("valid", "yes")),
                  "metrics.json's valid is \"yes\", not true, false or \"unknown\""),
    "valid missing": (_json_edit("metrics.json", lambda m: m.pop("valid")), "metrics.json has no 'valid'"),
    "valid null": (_json_edit("metrics.json", lambda m: m.__setitem__("valid", None)), "metrics.json's valid is null"),
    "valid one": (_json_edit("metrics.json", lambda m: m.__setitem__("valid", 1)), "metrics.json's valid is 1"),
    "check valid yes": (_json_edit("metrics.json", lambda m: m["checks"]["exactly-once"].__setitem__("valid", "yes")),
                        "metrics.json's checks.exactly-once.valid is \"yes\""),
    "check no valid": (_json_edit("metrics.json", lambda m: m["checks"]["exactly-once"].pop("valid")),
                       "metrics.json's checks.exactly-once.valid is null"),
    "ops a string": (_json_edit("metrics.json", lambda m: m["ops"].__setitem__("ok", "8")),
                     "metrics.json's ops.ok is \"8\", not a count >= 0"),
    "ops negative": (_json_edit("metrics.json", lambda m: m["ops"].__setitem__("lost", -1)),
                     "metrics.json's ops.lost is -1"),
    "seed a string": (_json_edit("manifest.json", lambda m: m.__setitem__("seed", "2")),
                      "manifest.json's seed is \"2\", not an integer >= 0"),
}


def _damaged(good_run: Path, here: Path, damage) -> Path:
    folder = here / "run"
    shutil.copytree(good_run, folder)
    damage(folder)
    return folder


@pytest.mark.parametrize("case", list(NOT_A_COMPLETE_RUN), ids=list(NOT_A_COMPLETE_RUN))
def test_a_folder_that_is_not_a_complete_run_is_refused(good_run, here, capsys, case):
    """show, compare (also beside a good run), replay, export and shrink refuse it naming the folder, file, field and value."""
    damage, needle = NOT_A_COMPLETE_RUN[case]
    folder = _damaged(good_run, here, damage)
    before = listing(here)
    for args in (["show", folder], ["compare", good_run, folder, "--out", here / "c.png"], ["compare", folder],
                 ["replay", folder], ["export", folder, "--out", here / "h.edn"], ["shrink", folder]):
        code, out, err = dsim_in(capsys, *args)
        assert_refused(code, err, needle)
        assert repr(str(folder)) in err and "for RUN_DIR" in err, err
        assert out == "", (args, out)
    assert listing(here) == before  # no figure, no history.edn, no results/, no -shrunk folder


def _incomplete(folder: Path) -> None:
    """What RunFolder.fail leaves: manifest incomplete with the error, metrics unknown."""
    _json_edit("manifest.json", lambda m: m.update(status="incomplete", error="interrupted"))(folder)
    (folder / "metrics.json").write_text(json.dumps({"valid": "unknown", "incomplete": True, "error": "interrupted"}))


def _running(folder: Path) -> None:
    """What a run killed outright (SIGKILL) leaves: manifest running, no metrics."""
    _json_edit("manifest.json", lambda m: m.__setitem__("status", "running"))(folder)
    (folder / "metrics.json").unlink()


@pytest.mark.parametrize("mark", [_incomplete, _running], ids=["incomplete", "running"])
def test_a_run_marked_incomplete_is_still_shown_and_compared(good_run, here, capsys, mark):
    """An interrupted or killed run's folder is shown as such (exit 3, as documented) and compares beside a good one."""
    folder = _damaged(good_run, here, mark)
    status = json.loads((folder / "manifest.json").read_text())["status"]
    code, out, err = dsim_in(capsys, "show", folder)
    assert code == 3 and out.strip() == f"{folder}: run {status}" + (": interrupted" if status == "incomplete" else "")
    assert err == ""
    code, out, err = dsim_in(capsys, "compare", good_run, folder, "--out", here / "c.png")
    assert code == 0, err
    row = next(line for line in out.splitlines() if f"({folder})" in line)  # both are named run: labelled by path
    assert status in row and "None" not in row
    code, _, err = dsim_in(capsys, "shrink", folder)
    assert_refused(code, err, f"its run is {status} (manifest.json's status), not complete")


def test_shrink_names_a_valid_and_an_unknown_run(good_run, here, capsys):
    """shrink of a complete run that did not fail says what its verdict is."""
    code, _, err = dsim_in(capsys, "shrink", good_run)
    assert_refused(code, err, "its run is valid (every check passed)")
    folder = _damaged(good_run, here, _json_edit("metrics.json", lambda m: m.__setitem__("valid", "unknown")))
    code, _, err = dsim_in(capsys, "shrink", folder)
    assert_refused(code, err, "its run is unknown (no check failed)")
    assert not (here / "run-shrunk").exists()


# ---- conflicts and repeats ----------------------------------------------------------------------

RUN = ["run", "queue", "--seed", "1", *TINY, "--no-plots"]
SWEEP = ["sweep", "queue", "--seeds", "1", *TINY]
HUNT = ["hunt", "queue", "--seed", "1", "--budget", "1"]

CONFLICTS = [
    (RUN + ["--nemesis", "crash,crash"], "bad value 'crash,crash' for --nemesis: 'crash' is named twice"),
    (RUN + ["--nemesis", "crash, pause,crash "], "'crash' is named twice"),
    (SWEEP + ["--nemesis", "pause,pause"], "bad value 'pause,pause' for --nemesis"),
    (HUNT + ["--nemesis", "crash,crash"], "bad value 'crash,crash' for --nemesis"),
    (SWEEP + ["--grid", "nemesis=crash+crash,pause"], "bad value 'crash+crash' for --grid nemesis: 'crash' is named twice"),
    (SWEEP + ["--grid", "servers=1,2", "--set", "servers=3"],
     "bad value 'servers=3' for --set: 'servers' is also swept by --grid"),
    (SWEEP + ["--grid", "rate=10,20", "--rate", "30"], "for --rate: 'rate' is also swept by --grid"),
    (SWEEP + ["--grid", "node_count=1,2", "--node-count", "3"], "for --node-count: 'node_count' is also swept by --grid"),
    (RUN + ["--set", "servers=1", "--set", "servers=2"], "bad value 'servers=2' for --set: 'servers' is already set to '1'"),
    (SWEEP + ["--set", "servers=1", "--set", "servers=1"], "'servers' is already set"),
]


@pytest.mark.parametrize("args,needle", CONFLICTS, ids=[" ".join(a[:1] + a[-4:]) for a, _ in CONFLICTS])
def test_conflicting_or_repeated_options_are_refused(here, capsys, args, needle):
    """A nemesis named twice, an option both swept and fixed, a --set key twice: one line, exit 2, nothing written."""
    code, _, err = dsim_in(capsys, *args)
    assert_refused(code, err, needle)
    assert listing(here) == set()


def test_a_config_file_naming_a_nemesis_twice_is_refused(here, capsys):
    (here / "x.toml").write_text('nemesis = ["crash", "pause", "crash"]\n')
    code, _, err = dsim_in(capsys, *RUN, "--config", "x.toml")
    assert_refused(code, err, "for nemesis in the config file: 'crash' is named twice")
    assert listing(here) == {"x.toml"}


def test_compare_of_a_folder_named_twice_compares_it_with_itself(good_run, here, capsys):
    """Decided: the same folder twice (or through a link) is compared, not refused: the README sets no rule
    against it and tests/test_bad_input.py's readers test calls `compare X X` on a good folder. Each
    row is labelled by the path as given, so the table says which is which."""
    (here / "latest").symlink_to(good_run)
    code, out, err = dsim_in(capsys, "compare", "latest", good_run, "--out", here / "c.png")
    assert code == 0, err
    rows = [line for line in out.splitlines() if line.startswith("queue s2")]
    assert len(rows) == 2 and "(latest)" in rows[0] and f"({good_run})" in rows[1]


def test_compare_of_a_damaged_folder_makes_no_default_figure_folder(good_run, here, capsys):
    folder = _damaged(good_run, here, _no_metrics)
    code, _, err = dsim_in(capsys, "compare", good_run, folder)
    assert_refused(code, err, "metrics.json")
    assert not (here / "results").exists()


def test_compare_of_two_good_runs_still_works(good_run, here, capsys):
    other = here / "other"
    shutil.copytree(good_run, other)
    code, out, err = dsim_in(capsys, "compare", good_run, other)
    assert code == 0, err
    assert "valid" in out and list((here / "results").glob("compare-*.png"))


# ---- the command itself -------------------------------------------------------------------------

def test_bare_dsim_names_the_missing_command(capsys):
    code, out, err = dsim_in(capsys)
    assert_refused(code, err, "no command given: accepted: compare, describe, export, hunt, list, replay, run, show, "
                              "shrink, sweep (dsim --help shows them)")
    assert out == ""


@pytest.mark.parametrize("name,tail", [("bogus", "(dsim --help shows them)"), ("rnu", "(did you mean 'run'?)")])
def test_an_unknown_command_lists_the_accepted_ones(capsys, name, tail):
    code, _, err = dsim_in(capsys, name)
    assert_refused(code, err, f"no command {name!r}: accepted: compare, describe,")
    assert err.strip().endswith(tail)


def test_help_still_prints_to_stdout(capsys):
    code, out, err = dsim_in(capsys, "--help")
    assert code == 0 and "Usage: dsim" in out and err == ""
