"""The queue scenario: the kernel's timing against queueing theory, and its planted bugs caught."""

from __future__ import annotations

import numpy as np
import pytest

from simulator import erlang_c
from simulator.checkers.metrics import latencies
from simulator.pipeline import scenario as registry
from simulator.pipeline.config import build_config
from simulator.pipeline.run import execute


def run_queue(seed=1, options=None, sets=None, bug=None):
    cfg = build_config(registry.get("queue"), seed=seed, options=options or {}, sets=sets or {}, bug=bug)
    return execute(cfg)


def batch_means_ci(lat_s: np.ndarray, batches: int = 20) -> tuple[float, float]:
    """Mean and the 99% half-width from batch means (response times are correlated in a queue)."""
    usable = len(lat_s) - len(lat_s) % batches
    means = lat_s[:usable].reshape(batches, -1).mean(axis=1)
    return float(lat_s.mean()), 2.861 * float(means.std(ddof=1)) / np.sqrt(batches)  # t(0.995, 19)


@pytest.mark.slow
def test_mm1_mean_response_time_matches_theory():
    """An M/M/1 queue at load 0.5 gives a mean response time within 3% of 1/(mu - lambda)."""
    out = run_queue(seed=3, options={"rate": 50.0, "latency_ms": 0.0, "time_limit_s": 4000.0},
                    sets={"servers": "1", "service_ms": "10"})
    _, lat = latencies(out.run.history)
    mean, half = batch_means_ci(lat / 1e9)
    theory = erlang_c(1, 50, 0.010).response_s
    assert abs(mean - theory) < half, "theory outside the 99% confidence interval"
    assert half / theory < 0.03 and abs(mean - theory) / theory < 0.03


@pytest.mark.slow
def test_mmc_mean_response_time_matches_erlang_c():
    """An M/M/3 queue at load 0.5 gives a mean response time within its 99% confidence interval
    and within 3% of the Erlang C value."""
    out = run_queue(seed=5, options={"rate": 15.0, "latency_ms": 0.0, "time_limit_s": 4000.0},
                    sets={"servers": "3", "service_ms": "100"})
    _, lat = latencies(out.run.history)
    mean, half = batch_means_ci(lat / 1e9)
    theory = erlang_c(3, 15, 0.100).response_s
    assert abs(mean - theory) < half, (mean, theory, half)
    assert half / theory < 0.03 and abs(mean - theory) / theory < 0.03
    assert out.metrics["figures"]["erlang_c_response_ms"] == pytest.approx(theory * 1000, rel=1e-6)


@pytest.mark.slow
def test_issue_mm10_heavy_load_matches_erlang_c():
    """The issue's M/M/10 case at load 0.9 (rate 9, service 1 s, 20,000 s) holds Erlang C's 1.6687 s
    inside its 99% confidence interval, and for this seed within 3%. (At load 0.9 one run's interval
    is +-5 to 10%: over seeds 1-8 the means spread from -4.2% to +1.7%, averaging -1.2%.)"""
    out = run_queue(seed=7, options={"rate": 9.0, "latency_ms": 0.0, "time_limit_s": 20000.0},
                    sets={"servers": "10", "service_ms": "1000"})
    _, lat = latencies(out.run.history)
    mean, half = batch_means_ci(lat / 1e9)
    assert abs(mean - 1.6687) < half
    assert abs(mean - 1.6687) / 1.6687 < 0.03


def test_constant_service_with_no_queueing_gives_exact_latency():
    """With constant service, zero latency and one request at a time, every latency is the service time."""
    out = run_queue(options={"concurrency": 1, "latency_ms": 0.0, "time_limit_s": 1.0},
                    sets={"service_dist": "constant", "service_ms": "10"})
    _, lat = latencies(out.run.history)
    assert len(lat) > 50
    assert set(lat.tolist()) == {10_000_000}


def test_defaults_are_valid():
    """The default queue run is valid and answers every request."""
    out = run_queue(seed=7)
    assert out.valid is True
    assert out.metrics["ops"]["info"] == 0 and out.metrics["ops"]["lost"] == 0 and out.metrics["ops"]["ok"] > 2500


def test_double_serve_bug_is_caught_by_exactly_once():
    """The double-serve bug makes exactly-once fail and names a duplicated request."""
    out = run_queue(seed=1, bug="double-serve")
    assert out.valid is False
    chk = out.checks["exactly-once"]
    assert chk.valid is False and "more than once" in chk.message


def test_lose_requests_bug_is_caught_by_availability():
    """At the defaults (a 60 s timeout in a 60 s run, so dropped requests never end) the lose-requests
    bug drops availability below the floor: the requests that never ended count as lost."""
    out = run_queue(seed=1, bug="lose-requests")
    assert out.valid is False
    chk = out.checks["availability"]
    assert chk.valid is False and "floor" in chk.message and "lost" in chk.message
    assert chk.details["lost"] > 0 and out.metrics["ops"]["lost"] == chk.details["lost"]
    assert out.metrics["availability"] == chk.details["availability"]


def test_crash_nemesis_keeps_exactly_once_valid():
    """Crashing the service node loses requests (info) but never serves one twice."""
    out = run_queue(seed=2, options={"nemesis": "crash", "nemesis_interval_s": 5.0, "op_timeout_ms": 500.0,
                                     "time_limit_s": 30.0})
    assert out.metrics["ops"]["info"] > 0
    assert out.checks["exactly-once"].valid is True
    assert any(f["action"] == "crash" for f in out.run.faults)


def test_run_summary_shows_lost_operations(tmp_path, capsys):
    """dsim run's summary line counts the lost operations when there are any, and exits 1."""
    from simulator.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["run", "queue", "--bug", "lose-requests", "--seed", "1", "--no-plots", "--out", str(tmp_path / "r")])
    assert exc.value.code == 1
    line = next(l for l in capsys.readouterr().out.splitlines() if l.strip().startswith("operations"))
    assert " lost" in line and "never ended" in line
