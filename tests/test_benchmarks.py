"""The benchmark scripts as a user runs them: figures printed, a JSON line last, bad input refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scenarios.py"), *args],
                          capture_output=True, text=True, timeout=300)


def test_repeat_reports_the_median_and_its_range_in_the_json_line():
    p = _run("queue", "--repeat", "2", "--json")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert sum("simulated s in" in line for line in lines) == 2
    result = json.loads(lines[-1])
    assert result["repeat"] == 2 and result["valid"] is True
    assert result["sim_seconds_per_wall_second_min"] <= result["sim_seconds_per_wall_second"] \
        <= result["sim_seconds_per_wall_second_max"]
    assert result["sim_seconds"] > 60 and result["ops"] > 50_000 and result["cpu_seconds"] > 0


def test_bad_input_is_one_line_and_exit_2():
    for args in (["queue", "--repeat", "0"], ["nosuch"]):
        p = _run(*args)
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
