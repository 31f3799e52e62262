"""`dsim compare` on sweep folders and hunt folders, as a user calls it, and on damaged ones."""

from __future__ import annotations

import csv

import pytest

from simulator.cli import main
from simulator.pipeline import compare as C
from tests.cli_helpers import dsim


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two small sweeps (one with a grid) and two small hunts (one finds a planted bug)."""
    base = tmp_path_factory.mktemp("cmp")

    def run(*args):  # module-scoped, so no capsys: the exit status is what matters here
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            return exc.code
        return 0

    assert run("sweep", "queue", "--seeds", "1-2", "--time-limit", "0.5", "--out", base / "sa") == 0
    assert run("sweep", "queue", "--seeds", "1-2", "--grid", "servers=1,2", "--time-limit", "0.5",
               "--out", base / "sb") == 0
    assert run("hunt", "queue", "--budget", "3", "--seed", "1", "--out", base / "ha") == 0
    assert run("hunt", "queue", "--bug", "double-serve", "--budget", "5", "--seed", "2", "--until", "all",
               "--out", base / "hb") == 1
    return base


def test_two_sweeps_compare_as_a_row_per_grid_point(folders, capsys, tmp_path):
    """Comparing a plain sweep with a gridded one prints a row per grid point with its run counts, and a figure."""
    capsys.readouterr()
    code, out, err = dsim(capsys, "compare", folders / "sa", folders / "sb", "--out", tmp_path / "c.png")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("sweep point") and "p99 ms (median)" in lines[0]
    rows = {line.split("  ")[0].strip(): line.split() for line in lines[1:4]}
    assert set(rows) == {"sa", "sb servers=1", "sb servers=2"}
    assert rows["sa"][1:3] == ["2", "2"] and rows["sb servers=1"][2:4] == ["2", "2"]
    assert (tmp_path / "c.png").stat().st_size > 10_000


def test_two_hunts_compare_by_when_they_first_failed(folders, capsys, tmp_path):
    """Comparing a clean hunt with one that found a planted bug shows the failure's run, checker and CPU seconds."""
    capsys.readouterr()
    code, out, err = dsim(capsys, "compare", folders / "ha", folders / "hb", "--out", tmp_path / "h.png")
    assert code == 0, err
    clean, found = out.splitlines()[1:3]
    assert clean.split()[:4] == ["ha", "complete", "3", "0"] and " - " in clean
    assert found.split()[:4] == ["hb", "complete", "5", "1"] and "exactly-once" in found and "run 1" in found
    hunt = C.read_hunt(folders / "hb")
    row = C.hunt_row("hb", hunt)
    assert row["first_failure_run"] == 1 and row["first_failure_cpu_s"] == hunt["runs"][0]["cpu_s"]
    assert (tmp_path / "h.png").stat().st_size > 10_000


def test_folders_of_two_kinds_are_refused_in_one_line(folders, capsys, tmp_path):
    """A sweep beside a hunt exits 2 with one line naming each folder's kind, and writes no figure."""
    code, _, err = dsim(capsys, "compare", folders / "sa", folders / "ha", "--out", tmp_path / "x.png")
    assert code == 2 and "is a sweep" in err and "is a hunt" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("damage,needle", [
    (lambda d: (d / "runs.csv").unlink(), "it has no runs.csv"),
    (lambda d: (d / "sweep.json").write_text("{no"), "sweep.json cannot be read"),
    (lambda d: (d / "sweep.json").write_text("[]"), "sweep.json is not a JSON object"),
    (lambda d: _edit_csv(d / "runs.csv", "latency_p99_ms", "fast"), "runs.csv line 2: latency_p99_ms is 'fast', not a number"),
    (lambda d: _edit_csv(d / "runs.csv", "latency_p99_ms", "inf"), "not a finite number"),
    (lambda d: (d / "runs.csv").write_text("seed,valid\n1,True\n"), "runs.csv line 2 lacks latency_p50_ms"),
])
def test_a_damaged_sweep_folder_is_one_line_exit_2(folders, capsys, tmp_path, damage, needle):
    """Each kind of damage to a sweep folder exits 2 with one line naming the file and the problem."""
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(folders / "sa", bad)
    damage(bad)
    code, out, err = dsim(capsys, "compare", bad, folders / "sa", "--out", tmp_path / "x.png")
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_a_damaged_hunt_folder_is_one_line_exit_2(folders, capsys, tmp_path):
    """A hunt.csv whose cpu_s is not a number exits 2 naming the line and field."""
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(folders / "hb", bad)
    _edit_csv(bad / "hunt.csv", "cpu_s", "lots")
    code, _, err = dsim(capsys, "compare", bad, folders / "ha", "--out", tmp_path / "x.png")
    assert code == 2 and "hunt.csv line 2: cpu_s is 'lots', not a number" in err


def test_a_folder_that_is_none_of_the_three_is_refused(capsys, tmp_path):
    """A folder without manifest.json, sweep.json or hunt.json exits 2 saying what compare accepts."""
    (tmp_path / "empty").mkdir()
    code, _, err = dsim(capsys, "compare", tmp_path / "empty")
    assert code == 2 and "no manifest.json, sweep.json or hunt.json" in err and "run, sweep or hunt folder" in err


def _edit_csv(path, field, value):
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows[0][field] = value
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_a_sweep_with_no_finished_run_still_has_its_row(folders, capsys, tmp_path):
    """A sweep folder whose runs.csv has only its header compares as a row of zeros, not as nothing."""
    import shutil

    empty = tmp_path / "empty-sweep"
    shutil.copytree(folders / "sa", empty)
    header = (empty / "runs.csv").read_text().splitlines()[0]
    (empty / "runs.csv").write_text(header + "\n")
    code, out, err = dsim(capsys, "compare", empty, folders / "sa", "--out", tmp_path / "e.png")
    assert code == 0, err
    assert out.splitlines()[1].split()[:5] == ["empty-sweep", "0", "0", "0", "0"]
