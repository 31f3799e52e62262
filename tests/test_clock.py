"""Local clocks (simulator.engine.clock) as nodes see them: drift, bumps, reset, and timers in local time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.engine.clock import Clock
from simulator.engine.kernel import Simulation
from simulator.engine.node import Node

MS = 1_000_000


class Watch(Node):
    """Records (true ns, local ns, name) at each timer firing."""

    def __init__(self, sim_ref):
        self.sim_ref = sim_ref
        self.seen = []

    def on_timer(self, ctx, name):
        self.seen.append((self.sim_ref[0].now, ctx.now, name))


def watched(seed=1):
    ref = []
    sim = Simulation(seed)
    ref.append(sim)
    sim.add_node("n", lambda: Watch(ref))
    sim.run(0)
    return sim, sim.host("n")


def test_perfect_clock_reads_true_time():
    """Without clock faults ctx.now equals true time and now_ms is it in ms."""
    sim, host = watched()
    sim.run(7 * MS)
    assert host.now == 7 * MS and host.now_ms == 7.0
    assert host.clock is None


@pytest.mark.parametrize("ppm", [10_000, -10_000])
def test_drift_makes_local_time_run_fast_or_slow(ppm):
    """With drift_ppm set, ctx.now advances (1 + drift) local ns per true ns."""
    sim, host = watched()
    sim.run(10 * MS)
    sim.clock_of("n").set_drift(ppm, sim.now)
    sim.run(110 * MS)
    assert host.now == 10 * MS + round(100 * MS * (1 + ppm * 1e-6))


@pytest.mark.parametrize("ppm", [10_000, -10_000])
def test_timer_of_d_local_ms_fires_after_d_over_one_plus_drift_true_ms(ppm):
    """A timer of d local ms on a drifting clock fires after d / (1 + drift) true ms."""
    sim, host = watched()
    sim.clock_of("n").set_drift(ppm, sim.now)
    host.set_timer("t", 101)
    sim.run(1000 * MS)
    true_ns, local_ns, _ = host.node.seen[0]
    assert abs(true_ns - 101 * MS / (1 + ppm * 1e-6)) <= 1
    assert abs(local_ns - 101 * MS) <= 2


def test_bump_moves_now_but_not_a_pending_timer():
    """A clock bump shifts ctx.now at once but a pending timer still fires at its original true time."""
    sim, host = watched()
    host.set_timer("t", 10)
    sim.run(2 * MS)
    sim.clock_of("n").bump(500 * MS)
    assert host.now == 502 * MS
    sim.run(100 * MS)
    assert host.node.seen == [(10 * MS, 510 * MS, "t")]


def test_negative_bump_moves_now_backwards():
    """A negative bump makes ctx.now jump back (a wall clock stepped by NTP)."""
    sim, host = watched()
    sim.run(50 * MS)
    sim.clock_of("n").bump(-20 * MS)
    assert host.now == 30 * MS


def test_reset_returns_to_true_time():
    """reset() removes offset and drift: ctx.now reads true time again and keeps doing so."""
    sim, host = watched()
    clock = sim.clock_of("n")
    clock.set_drift(50_000, sim.now)
    sim.run(40 * MS)
    clock.bump(3 * MS)
    assert host.now != sim.now
    clock.reset(sim.now)
    assert host.now == sim.now
    sim.run(90 * MS)
    assert host.now == sim.now == 90 * MS


def test_set_drift_keeps_local_time_continuous():
    """Changing the drift rate does not jump local time; only its rate changes from then on."""
    c = Clock(offset_ns=5, drift_ppm=100_000, now_true=0)
    before = c.local(1000)
    c.set_drift(-100_000, 1000)
    assert c.local(1000) == before == 5 + 1100
    assert c.local(2000) == before + 900


def test_true_delay_inverts_drift_and_never_goes_negative():
    """true_delay(d) is d / (1 + drift) true ns, and d itself without drift."""
    assert Clock().true_delay(1234) == 1234
    assert Clock(drift_ppm=1_000_000).true_delay(1000) == 500
    assert Clock(drift_ppm=-500_000).true_delay(1000) == 2000
    assert Clock(drift_ppm=100).true_delay(0) == 0


@settings(max_examples=300, deadline=None)
@given(st.floats(-900_000, 1_000_000), st.integers(0, 10**12), st.integers(1, 10**9), st.integers(0, 10**6))
def test_a_timer_fires_once_the_local_clock_has_moved_on_by_its_delay(ppm, base_true, delay_ns, offset_ns):
    """When a timer of d local ns fires, the local clock has advanced by at least d: a fast clock
    rounded its timers down, and a node setting its timer again for what was left (a nanosecond)
    got a timer firing at the same instant, forever (graph and commerce hung under clock-drift)."""
    c = Clock(offset_ns=offset_ns, drift_ppm=ppm, now_true=base_true)
    for start in (base_true, base_true + 12_345_678):
        assert c.local(start + c.true_delay(delay_ns)) - c.local(start) >= delay_ns
    assert c.true_delay(1) >= 1


def test_a_node_re_arming_for_what_is_left_under_fast_drift_moves_on():
    """A graph design under clock-drift ends (its database re-arms its shipping timer for the time
    left, and a 1 ns timer used to fire at the same instant forever)."""
    from simulator.pipeline import scenario as registry
    from simulator.pipeline.config import build_config
    from simulator.pipeline.run import execute

    cfg = build_config(registry.get("graph"), seed=5, options={
        "time_limit_s": 5.0, "nemesis": ["clock-drift"], "nemesis_interval_s": 0.5})
    assert execute(cfg).valid is True


def test_clock_starts_at_true_time_when_created_late():
    """A clock created by a fault mid-run starts at the true time of creation, not at zero."""
    sim, host = watched()
    sim.run(25 * MS)
    clock = sim.clock_of("n")
    assert clock.local(sim.now) == 25 * MS
    clock.set_drift(1_000_000, sim.now)  # double speed from now
    sim.run(35 * MS)
    assert host.now == 45 * MS
