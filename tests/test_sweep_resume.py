"""Interrupted sweeps and runs: `dsim sweep --resume DIR` completes a killed sweep with every run
exactly once (finished runs kept as they were, unfinished ones run again), and a `dsim run` sent
SIGTERM leaves its folder marked incomplete with the history it had."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulator.cli import main

SWEEP = ["queue", "--seeds", "1-6", "--grid", "servers=1,2", "--time-limit", "40"]
WALL_COLUMNS = ("wall_seconds", "checker_seconds")


def dsim_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("dsim")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "simulator.cli"]


def dsim(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([*dsim_cmd(), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)


def rows_less_wall(folder: Path) -> list[dict]:
    with open(folder / "runs.csv") as fh:
        return [{k: v for k, v in r.items() if k not in WALL_COLUMNS} for r in csv.DictReader(fh)]


def manifests(folder: Path) -> dict[str, dict]:
    return {d.name: json.loads((d / "manifest.json").read_text()) for d in sorted((folder / "runs").iterdir())}


def test_killed_sweep_resumes_with_every_run_exactly_once(tmp_path):
    """A sweep killed (SIGKILL) after a few runs is completed by --resume: finished runs untouched, the rest run once, the CSV as a sweep never interrupted."""
    out = tmp_path / "s"
    proc = subprocess.Popen([*dsim_cmd(), "sweep", *SWEEP, "--jobs", "1", "--out", str(out)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        while sum(m["status"] == "complete" for m in _readable(out).values()) < 3:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() - t0 < 240, "the sweep never finished three runs"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)  # no chance to tidy up: the run in progress stays "running"
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = _readable(out)
    done_before = {k: m["started_utc"] for k, m in before.items() if m["status"] == "complete"}
    assert 3 <= len(done_before) < 12 and not (out / "runs.csv").exists()

    res = dsim("sweep", "--resume", out, "--jobs", "2", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{len(done_before)} found finished" in res.stdout
    after = manifests(out)
    assert len(after) == 12 and all(m["status"] == "complete" for m in after.values())
    assert {k: after[k]["started_utc"] for k in done_before} == done_before  # not run again
    rows = rows_less_wall(out)
    assert sorted((r["servers"], r["seed"]) for r in rows) == sorted((s, str(n)) for s in "12" for n in range(1, 7))

    fresh = dsim("sweep", *SWEEP, "--jobs", "2", "--out", "fresh", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert rows == rows_less_wall(tmp_path / "fresh")
    assert (out / "summary.png").stat().st_size > 10_000

    again = dsim("sweep", "--resume", out, cwd=tmp_path)  # nothing left to do: nothing run, the same CSV
    assert again.returncode == 0 and "0 run now, 12 found finished" in again.stdout
    assert rows_less_wall(out) == rows


def _readable(out: Path) -> dict[str, dict]:
    """The manifests written so far (a folder being created may not have one yet)."""
    found = {}
    for d in sorted((out / "runs").iterdir()) if (out / "runs").is_dir() else []:
        try:
            found[d.name] = json.loads((d / "manifest.json").read_text())
        except (OSError, ValueError):
            pass
    return found


def test_resume_reruns_an_incomplete_run_and_one_with_another_config(tmp_path, capsys, monkeypatch):
    """--resume runs again a run whose folder is incomplete, damaged or from another configuration, and keeps the rest."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "queue", "--seeds", "1-3", "--time-limit", "2", "--out", "s"])
    assert exc.value.code == 0
    runs = tmp_path / "s" / "runs"
    first = manifests(tmp_path / "s")
    m = json.loads((runs / "run-s1" / "manifest.json").read_text())
    m["status"] = "incomplete"
    (runs / "run-s1" / "manifest.json").write_text(json.dumps(m))
    m = json.loads((runs / "run-s2" / "manifest.json").read_text())
    m["config"]["rate"] = 1.0
    (runs / "run-s2" / "manifest.json").write_text(json.dumps(m))
    (runs / "run-s3" / "metrics.json").write_text("{ damaged")
    (tmp_path / "s" / "runs.csv").unlink()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--resume", "s"])
    assert exc.value.code == 0, capsys.readouterr()
    assert "3 run now, 0 found finished" in capsys.readouterr().out
    after = manifests(tmp_path / "s")
    assert [after[k]["digest"] for k in sorted(after)] == [first[k]["digest"] for k in sorted(first)]
    assert len(rows_less_wall(tmp_path / "s")) == 3


@pytest.mark.parametrize("args, needle", [
    (["--resume", "nowhere"], "bad value 'nowhere' for --resume: it has no sweep.json"),
    (["queue", "--resume", "s"], "expected only --resume DIR"),
    ([], "missing SCENARIO"),
])
def test_bad_resume_is_one_line_exit_2(tmp_path, capsys, monkeypatch, args, needle):
    """--resume without a sweep folder, or with a SCENARIO as well, is refused in one line with exit status 2."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["sweep", *args])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and needle in err and err.count("\n") == 1


def test_sigterm_leaves_the_run_incomplete_with_its_history_so_far(tmp_path):
    """A long `dsim run` sent SIGTERM midway exits 3, its manifest marked incomplete and history.jsonl holding the operations so far."""
    out = tmp_path / "r"
    proc = subprocess.Popen([*dsim_cmd(), "run", "queue", "--time-limit", "100000", "--seed", "1", "--out", str(out),
                             "--no-plots"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        while not (out / "manifest.json").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() - t0 < 60
            time.sleep(0.05)
        time.sleep(1.0)  # well into the simulation
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3 and "Traceback" not in err, err
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "incomplete" and man["error"] == "interrupted" and 0 < man["end_time_s"] < 100000
    lines = (out / "history.jsonl").read_text().splitlines()
    ops = [json.loads(line) for line in lines]
    assert len(ops) > 10 and {"invoke", "ok"} <= {op["type"] for op in ops}
