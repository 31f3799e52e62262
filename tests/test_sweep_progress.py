"""The live progress line: on a terminal it shows runs done of total, verdicts so far, rate, ETA and
workers; piped, a sweep writes nothing to stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from simulator.cli import Progress, SweepProgress


class FakeExecutor:
    workers = 3


def test_sweep_progress_line_counts_verdicts_and_workers(capsys):
    """The sweep line shows done/total, valid/invalid/unknown so far, the rate, an ETA and the worker count."""
    with SweepProgress("sweep raft", 10, [{"valid": True}], FakeExecutor(), enabled=True) as p:
        p(2, 10, {"valid": False})
        p(3, 10, {"valid": "unknown"})
        p.bar.refresh()
        line = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "sweep raft" in line and "3/10" in line
    assert "1 valid, 1 invalid, 1 unknown, 3 workers" in line
    assert "run/s" in line and "<" in line  # the rate, and elapsed<remaining (the ETA)


def test_run_progress_shows_simulated_seconds(capsys):
    """A long run's line shows simulated seconds done of the total and the rate in simulated seconds per second."""
    p = Progress("queue seed 1", enabled=True)
    p(10.0, 100.0)
    p(50.0, 100.0)
    p.bar.refresh()
    line = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    p.close()
    assert "queue seed 1" in line and "50.0/100.0 simulated s" in line and "sim s/s" in line


def test_piped_sweep_is_quiet_on_stderr(tmp_path):
    """A sweep whose stderr is not a terminal draws no progress line."""
    exe = Path(sys.executable).with_name("dsim")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "simulator.cli"]
    res = subprocess.run([*cmd, "sweep", "queue", "--seeds", "1-3", "--jobs", "2", "--time-limit", "1", "--out", "s"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stderr == "" and res.stdout.startswith("sweep queue: 3 runs")
