"""The benchmark scripts as a user runs them: figures printed, a JSON line last, bad input refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_progress_goes_to_stderr_and_leaves_the_figures_as_they_were():
    plain = json.loads(_run("queue", "--time-limit", "3", "--json").stdout.strip().splitlines()[-1])
    p = _run("queue", "--time-limit", "3", "--json", "--progress")
    assert p.returncode == 0, p.stderr
    assert "simulated s" in p.stderr and "peak RSS" in p.stderr  # at least the final line
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert (result["ops"], result["sim_seconds"], result["valid"]) == (plain["ops"], plain["sim_seconds"], True)


def test_kit_benchmark_prints_the_three_runs_and_both_ratios():
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "kit.py"), "--time-limit", "2", "--repeat", "1",
                        "--json"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines[:3]] == ["queue", "alone", "service"]
    result = json.loads(lines[-1])
    assert result["valid"] is True
    for run in ("queue", "alone", "service"):
        assert result[f"{run}_us_per_request"] > 0 and result[f"{run}_wall_seconds"] > 0
    for run, ratio in (("alone", "alone_ratio"), ("service", "ratio")):  # of the medians, rounded
        assert abs(result[ratio] - result[f"{run}_us_per_request"] / result["queue_us_per_request"]) < 0.01
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "kit.py"), "--repeat", "0"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--repeat" in bad.stderr


def test_bad_input_is_one_line_and_exit_2():
    for args in (["queue", "--repeat", "0"], ["nosuch"]):
        p = _run(*args)
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr


def _peers(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "peers.py"), *args],
                          capture_output=True, text=True, timeout=300)


def test_peers_help_describes_the_comparison():
    """`peers.py --help` exits 0 and names the M/M/10 comparison with Ciw."""
    p = _peers("--help")
    assert p.returncode == 0, p.stderr
    assert "Ciw" in p.stdout and "M/M/10" in p.stdout


def test_peers_json_line_has_both_rates_and_the_ratio():
    """A tiny peers run ends with a JSON line holding both rates, the ratio, the sojourns and the
    history-writing rate; its exit status says whether the comparison was valid (tiny runs may be void)."""
    pytest.importorskip("ciw")
    p = _peers("--time-limit", "30", "--repeat", "1", "--json")
    assert p.returncode in (0, 1) and p.stdout.strip(), p.stderr[-2000:]  # a traceback exits 1 too
    result = json.loads(p.stdout.strip().splitlines()[-1])
    for key in ("ciw_customers_per_cpu_s", "dsim_customers_per_cpu_s", "ratio", "ciw_mean_sojourn_s",
                "dsim_mean_sojourn_s", "erlang_c_s", "history_lines_per_s", "valid_comparison"):
        assert key in result, key
    assert result["ciw_customers_per_cpu_s"] > 0 and result["dsim_customers_per_cpu_s"] > 0
    assert (p.returncode == 0) == result["valid_comparison"]
    assert "VOID" in p.stdout or result["valid_comparison"]


def _history_bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "history.py"), *args],
                          capture_output=True, text=True, timeout=300)


def test_history_benchmark_prints_a_raft_histories_writing_rate():
    """`history.py --json` writes a short raft run's history and ends with its line count and rate."""
    p = _history_bench("--time-limit", "1", "--repeat", "1", "--json")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert result["design"] == "raft" and result["lines"] > 100 and result["lines_per_s"] > 0
    assert result["bytes"] > 0 and result["repeat"] == 1


def test_history_benchmark_refuses_bad_input_in_one_line():
    """An unknown design or a bad count is one line on stderr and exit status 2."""
    for args in (["--design", "nosuch"], ["--repeat", "0"], ["--time-limit", "-1"]):
        p = _history_bench(*args)
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, (args, p.stderr)
