"""Checking in a forked child: the same verdicts as checking in-process, and errors still surface."""

from __future__ import annotations

import pytest

from simulator.checkers import parallel
from simulator.pipeline import run as R
from simulator.pipeline.config import build_config
from simulator.pipeline.scenario import get

pytestmark = pytest.mark.skipif(not parallel.available(), reason="no fork here")


def test_fork_call_returns_the_result_and_its_time():
    wait = parallel.fork_call(lambda: {"answer": [42, ("x", None)]})
    result, seconds = wait()
    assert result == {"answer": [42, ("x", None)]} and seconds >= 0


def test_the_child_runs_without_cyclic_collection_and_the_parent_keeps_it():
    """The forked child has the cyclic collector off (it would walk, and copy, the parent's objects); the parent's is untouched."""
    import gc

    assert gc.isenabled()
    result, _ = parallel.fork_call(gc.isenabled)()
    assert result is False and gc.isenabled()


def test_a_failing_or_unpicklable_call_gives_none_so_the_caller_runs_it_itself():
    def boom():
        raise ValueError("checker bug")

    assert parallel.fork_call(boom)() is None
    assert parallel.fork_call(lambda: (lambda: 1))() is None  # a lambda does not pickle


def test_serial_checks_setting_turns_it_off(monkeypatch):
    monkeypatch.setenv("DSIM_SERIAL_CHECKS", "1")
    assert parallel.fork_call(lambda: 1) is None


def _raft(seconds: float, bug: str | None = None):
    return build_config(get("raft"), seed=2, bug=bug,
                        options={"rate": 1000.0, "time_limit_s": seconds, "nemesis": ["partition-random-halves"]})


@pytest.mark.parametrize("bug", [None, "stale-read"])
def test_a_long_run_checked_in_a_child_gets_the_verdicts_of_an_in_process_check(monkeypatch, bug):
    """A long run's checks and digest, each made in a forked child, equal those made in-process."""
    cfg = _raft(12.0, bug)
    forked = []
    real = R.fork_call

    def spy(fn):
        forked.append(fn)
        return real(fn)

    monkeypatch.setattr(R, "fork_call", spy)
    child = R.execute(cfg)
    assert len(forked) == 2, "a history this long is checked in one child and digested in another"
    monkeypatch.setenv("DSIM_SERIAL_CHECKS", "1")
    serial = R.execute(cfg)
    assert child.digest == serial.digest
    assert child.valid == serial.valid
    assert {k: (c.valid, c.message) for k, c in child.checks.items()} == \
           {k: (c.valid, c.message) for k, c in serial.checks.items()}
    if bug:
        assert child.valid is False
