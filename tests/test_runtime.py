"""Hosting a node (simulator.engine.runtime.Host as the Context): timers, CPU model, fsync, crash, restart, pause."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from simulator.engine.dists import Dist
from simulator.engine.kernel import Simulation
from simulator.engine.node import Node

MS = 1_000_000


@dataclass(frozen=True, slots=True)
class Job:
    n: int


@dataclass(frozen=True, slots=True)
class Other:
    n: int


class Log(Node):
    """Appends every event it sees to a shared list (the list outlives crashes): (true ms, what, detail)."""

    def __init__(self, log, timers=()):
        self.log = log
        self.timers = timers

    def on_start(self, ctx):
        self.log.append((ctx.now / MS, "start", dict(ctx.storage.snapshot())))
        for name, after in self.timers:
            ctx.set_timer(name, after)

    def on_message(self, ctx, src, msg):
        self.log.append((ctx.now / MS, "msg", msg.n))

    def on_timer(self, ctx, name):
        self.log.append((ctx.now / MS, "timer", name))


def one_node(log, timers=(), latency="constant:1", **host) -> Simulation:
    sim = Simulation(1, latency=Dist.parse(latency))
    sim.add_node("n", lambda: Log(log, timers), **host)
    sim.add_node("peer", Node)
    return sim


def deliver_at(sim, t_ms, *msgs):
    """Send msgs from 'peer' to 'n' so they leave at t_ms (and arrive one latency later)."""
    def go(_a, _b):
        for m in msgs:
            sim.network.send("peer", "n", m)
    sim.at(int(t_ms * MS), go)


def events(log, what):
    return [(t, d) for t, w, d in log if w == what]


# ---- timers --------------------------------------------------------------------------------------

def test_timer_fires_after_its_delay():
    """set_timer(name, d) runs on_timer(name) d ms later."""
    log = []
    sim = one_node(log, timers=[("t", 5)])
    sim.run(100 * MS)
    assert events(log, "timer") == [(5.0, "t")]


def test_setting_a_timer_again_resets_it():
    """Setting a pending timer again replaces it: only the last setting fires."""
    log = []
    sim = one_node(log, timers=[("t", 5)])
    sim.at(2 * MS, lambda a, b: sim.host("n").set_timer("t", 5))
    sim.run(100 * MS)
    assert events(log, "timer") == [(7.0, "t")]


def test_cancel_timer_prevents_firing():
    """cancel_timer stops a pending timer; timer_set reports pending timers; cancelling an unset one is fine."""
    log = []
    sim = one_node(log, timers=[("t", 5), ("u", 6)])
    sim.run(1 * MS)
    host = sim.host("n")
    assert host.timer_set("t") and host.timer_set("u")
    host.cancel_timer("t")
    host.cancel_timer("never-set")
    assert not host.timer_set("t")
    sim.run(100 * MS)
    assert events(log, "timer") == [(6.0, "u")]
    assert not host.timer_set("u")


def test_timer_range_draws_within_the_range():
    """A (lo, hi) delay is drawn uniformly within [lo, hi] ms from the node's stream."""
    log = []
    sim = one_node(log, timers=[(f"t{i}", (2, 4)) for i in range(40)])
    sim.run(100 * MS)
    times = [t for t, _ in events(log, "timer")]
    assert len(times) == 40
    assert all(2.0 <= t <= 4.0 for t in times)
    assert len(set(times)) > 30


def test_timer_delay_is_rounded_to_the_nearest_ns():
    """A timer of d ms fires at round(d * 1e6) ns, the same rounding the latency samplers use."""
    times = []

    class T(Node):
        def on_start(self, ctx):
            ctx.set_timer("t", 4.1)

        def on_timer(self, ctx, name):
            times.append(ctx.now)

    sim = Simulation(1)
    sim.add_node("n", T)
    sim.run(100 * MS)
    assert times == [4_100_000]


def test_negative_timer_delay_is_rejected():
    """A negative timer delay raises ValueError naming the timer."""
    sim = one_node([])
    sim.run(1)
    with pytest.raises(ValueError, match="'x'"):
        sim.host("n").set_timer("x", -1)


def test_rng_is_the_node_stream_and_survives_restart():
    """ctx.rng is stream node.<id>, and it is the same generator after a crash and restart."""
    sim = one_node([])
    sim.run(1)
    host = sim.host("n")
    rng = host.rng
    assert rng is sim.streams.get("node.n")
    host.crash()
    host.restart()
    assert host.rng is rng


def test_incarnation_counts_the_crashes_a_node_came_back_from():
    """ctx.incarnation is 0 in a node's first life and goes up by one with each crash and restart."""
    sim = one_node([])
    sim.run(1)
    host = sim.host("n")
    assert host.incarnation == 0
    for life in (1, 2):
        host.crash()
        host.restart()
        assert host.incarnation == life


# ---- CPU model -----------------------------------------------------------------------------------

def test_one_core_serves_simultaneous_messages_one_after_another():
    """With cores=1 and constant service S two messages arriving together finish at S and 2S after arrival."""
    log = []
    sim = one_node(log, service=Dist("constant", 3))
    deliver_at(sim, 0, Job(1), Job(2))
    sim.run(100 * MS)
    assert events(log, "msg") == [(4.0, 1), (7.0, 2)]


def test_two_cores_serve_two_messages_at_once():
    """With cores=2 and constant service S two messages arriving together both finish at S after arrival."""
    log = []
    sim = one_node(log, cores=2, service=Dist("constant", 3))
    deliver_at(sim, 0, Job(1), Job(2), Job(3))
    sim.run(100 * MS)
    assert events(log, "msg") == [(4.0, 1), (4.0, 2), (7.0, 3)]


def test_service_time_per_message_type():
    """service={type name: Dist, "*": Dist} uses the type's own time, else the default."""
    log = []
    sim = one_node(log, cores=2, service={"Job": Dist("constant", 5), "*": Dist("constant", 2)})
    deliver_at(sim, 0, Job(1), Other(2))
    sim.run(100 * MS)
    assert sorted(events(log, "msg")) == [(3.0, 2), (6.0, 1)]


def test_timers_do_not_queue_for_a_core():
    """A timer's handler runs when it fires even while every core is busy."""
    log = []
    sim = one_node(log, timers=[("t", 2)], service=Dist("constant", 10))
    deliver_at(sim, 0, Job(1))
    sim.run(100 * MS)
    assert log[1:] == [(2.0, "timer", "t"), (11.0, "msg", 1)]


def test_inbox_overflow_drops_and_counts():
    """Arrivals beyond inbox_limit while every core is busy are dropped and counted in dropped_inbox."""
    log = []
    sim = one_node(log, service=Dist("constant", 10), inbox_limit=2)
    deliver_at(sim, 0, *[Job(i) for i in range(5)])
    sim.run(100 * MS)
    assert [d for _, d in events(log, "msg")] == [0, 1, 2]
    assert sim.host("n").dropped_inbox == 2


# ---- durable writes ------------------------------------------------------------------------------

class Persister(Node):
    """On a Job: send 'before', then write `writes` keys durably, then send 'after' (to peer)."""

    writes = 1

    def on_message(self, ctx, src, msg):
        ctx.send("peer", Other(0))
        for i in range(self.writes):
            ctx.storage.put(f"k{i}", msg.n)
        ctx.send("peer", Other(1))


class Sink(Node):
    def __init__(self):
        self.got = []

    def on_message(self, ctx, src, msg):
        self.got.append((ctx.now / MS, msg.n))


def persist_sim(writes=1, **host):
    sim = Simulation(1, latency=Dist("constant", 1))
    cls = type("P", (Persister,), {"writes": writes})
    sim.add_node("n", cls, fsync=Dist("constant", 4), **host)
    sim.add_node("peer", Sink)
    return sim


def test_fsync_delays_later_sends_but_not_earlier_ones():
    """A durable write costs the fsync time: sends made after it leave that much later, sends before leave at once."""
    sim = persist_sim()
    deliver_at(sim, 0, Job(7))
    sim.run(100 * MS)
    assert sim.host("peer").node.got == [(2.0, 0), (6.0, 1)]
    assert sim.host("n").storage.get("k0") == 7


def test_several_synced_writes_in_one_handler_pay_one_fsync():
    """Several synced writes in one handler pay the fsync latency once (group commit)."""
    sim = persist_sim(writes=3)
    deliver_at(sim, 0, Job(7))
    sim.run(100 * MS)
    assert sim.host("peer").node.got == [(2.0, 0), (6.0, 1)]


def test_fsync_keeps_the_core_busy():
    """With a CPU model the core stays busy until the handler's fsync is done."""
    sim = persist_sim(service=Dist("constant", 1))
    deliver_at(sim, 0, Job(1), Job(2))
    sim.run(100 * MS)
    # first: served 1..2, fsync 2..6, reply lands 7; second: served 6..7, fsync 7..11, reply lands 12
    assert [t for t, n in sim.host("peer").node.got if n == 1] == [7.0, 12.0]


def test_unsynced_write_costs_nothing():
    """A write with sync=False does not delay the handler's sends."""

    class Lazy(Node):
        def on_message(self, ctx, src, msg):
            ctx.storage.put("k", 1, sync=False)
            ctx.send("peer", Other(1))

    sim = Simulation(1, latency=Dist("constant", 1))
    sim.add_node("n", Lazy, fsync=Dist("constant", 4))
    sim.add_node("peer", Sink)
    deliver_at(sim, 0, Job(1))
    sim.run(100 * MS)
    assert sim.host("peer").node.got == [(2.0, 1)]
    assert sim.host("n").storage.fsyncs == 0


def test_fsync_in_a_timer_handler_delays_its_sends():
    """A timer handler that syncs also holds its later sends for the fsync time."""

    class Tick(Node):
        def on_start(self, ctx):
            ctx.set_timer("t", 3)

        def on_timer(self, ctx, name):
            ctx.storage.put("k", 1)
            ctx.send("peer", Other(1))

    sim = Simulation(1, latency=Dist("constant", 1))
    sim.add_node("n", Tick, fsync=Dist("constant", 4))
    sim.add_node("peer", Sink)
    sim.run(100 * MS)
    assert sim.host("peer").node.got == [(8.0, 1)]


# ---- crash and restart ---------------------------------------------------------------------------

def test_crash_loses_pending_timers():
    """A crash cancels the node's timers: they do not fire, even after a restart."""
    log = []
    sim = one_node(log, timers=[("t", 10)])
    sim.at(5 * MS, lambda a, b: sim.host("n").crash())
    sim.at(6 * MS, lambda a, b: sim.host("n").restart())
    sim.run(100 * MS)
    # the restarted node sets its own timer at 6 ms; only that one fires (at 16 ms)
    assert events(log, "timer") == [(16.0, "t")]


def test_crash_loses_inbox_and_work_in_service():
    """A crash drops queued and in-service messages; after a restart the CPU serves new work normally."""
    log = []
    sim = one_node(log, service=Dist("constant", 10))
    deliver_at(sim, 0, Job(1), Job(2), Job(3))
    sim.at(5 * MS, lambda a, b: sim.host("n").crash())
    sim.at(6 * MS, lambda a, b: sim.host("n").restart())
    deliver_at(sim, 20, Job(4))
    sim.run(100 * MS)
    assert events(log, "msg") == [(31.0, 4)]


def test_crash_drops_the_node_object_and_restart_builds_a_fresh_one():
    """After a crash the host has no node; a restart calls the factory again and runs on_start."""
    built = []
    log = []

    def factory():
        node = Log(log)
        built.append(node)
        return node

    sim = Simulation(1)
    sim.add_node("n", factory)
    sim.run(1 * MS)
    host = sim.host("n")
    assert host.crash() is True and host.node is None and not host.up
    assert host.crash() is False
    sim.run(2 * MS)
    assert host.restart() is True and host.up
    assert host.restart() is False
    assert len(built) == 2 and host.node is built[1] and built[0] is not built[1]
    assert [t for t, w, _ in log if w == "start"] == [0.0, 2.0]


def test_volatile_state_is_lost_and_synced_storage_kept():
    """A restarted node sees durable writes, not what the old object kept in its attributes."""

    class Counter(Node):
        def __init__(self):
            self.volatile = 0

        def on_start(self, ctx):
            boots = ctx.storage.get("boots", 0) + 1
            ctx.storage.put("boots", boots)
            ctx.record("boot", boots=boots, volatile=self.volatile)
            self.volatile += 1

    sim = Simulation(1)
    sim.add_node("n", Counter)
    sim.run(1)
    sim.host("n").crash()
    sim.host("n").restart()
    assert [(r["boots"], r["volatile"]) for r in sim.records] == [(1, 0), (2, 0)]


@pytest.mark.parametrize("lose,expect", [(False, {"s": 1, "u": 2}), (True, {"s": 1})])
def test_unsynced_writes_are_lost_only_with_lose_unsynced(lose, expect):
    """Synced writes survive any crash; unsynced ones survive unless the crash loses unsynced writes."""
    log = []

    class Writer(Log):
        def on_start(self, ctx):
            super().on_start(ctx)
            if "s" not in ctx.storage:
                ctx.storage.put("s", 1)
                ctx.storage.put("u", 2, sync=False)

    sim = Simulation(1)
    sim.add_node("n", lambda: Writer(log))
    sim.run(1)
    sim.host("n").crash(lose_unsynced=lose)
    sim.host("n").restart()
    st = sim.host("n").storage
    assert {k: st.get(k) for k in st.keys()} == expect


def test_messages_to_a_crashed_node_are_dropped_and_counted():
    """Messages arriving at a crashed node are dropped and counted in dropped_down."""
    for host in ({}, {"service": Dist("constant", 1)}):
        log = []
        sim = one_node(log, **host)
        sim.at(0, lambda a, b: sim.host("n").crash())
        deliver_at(sim, 1, Job(1), Job(2))
        sim.run(100 * MS)
        assert events(log, "msg") == []
        assert sim.host("n").dropped_down == 2


# ---- pause ---------------------------------------------------------------------------------------

def test_pause_queues_arrivals_and_timers_and_resume_replays_them_in_order():
    """While paused nothing runs; on resume queued arrivals and timer firings run at the resume time, in order."""
    log = []
    sim = one_node(log, timers=[("t", 7)])
    sim.at(5 * MS, lambda a, b: sim.host("n").pause())
    deliver_at(sim, 5, Job(1))   # arrives at 6 ms
    deliver_at(sim, 7, Job(2))   # arrives at 8 ms (after the timer at 7 ms)
    sim.at(20 * MS, lambda a, b: sim.host("n").resume())
    sim.run(100 * MS)
    assert log[1:] == [(20.0, "msg", 1), (20.0, "timer", "t"), (20.0, "msg", 2)]


def test_pause_holds_work_in_service_until_resume():
    """A message in service when the pause starts is handled at the resume, and later arrivals after it."""
    log = []
    sim = one_node(log, service=Dist("constant", 4))
    deliver_at(sim, 0, Job(1))                       # in service 1..5 ms
    sim.at(2 * MS, lambda a, b: sim.host("n").pause())
    deliver_at(sim, 3, Job(2))                       # arrives at 4 ms, during the pause
    sim.at(10 * MS, lambda a, b: sim.host("n").resume())
    sim.run(100 * MS)
    assert events(log, "msg") == [(10.0, 1), (14.0, 2)]


def test_pause_and_resume_report_state_changes():
    """pause() on a paused or down node and resume() on a running node return False."""
    sim = one_node([])
    sim.run(1)
    host = sim.host("n")
    assert host.resume() is False
    assert host.pause() is True and host.pause() is False
    assert host.resume() is True
    host.crash()
    assert host.pause() is False


def test_crash_during_pause_discards_the_queue():
    """A node crashed while paused never runs what queued during the pause."""
    log = []
    sim = one_node(log, timers=[("t", 7)])
    sim.at(5 * MS, lambda a, b: sim.host("n").pause())
    deliver_at(sim, 5, Job(1))
    sim.at(10 * MS, lambda a, b: sim.host("n").crash())
    sim.at(11 * MS, lambda a, b: sim.host("n").resume())
    sim.run(100 * MS)
    assert [w for _, w, _ in log] == ["start"]


def test_sends_held_by_an_fsync_die_if_the_node_crashes_first():
    """A message sent after a durable write never leaves if the node crashes during the fsync."""
    sim = persist_sim()
    deliver_at(sim, 0, Job(5))
    sim.at(3 * MS, lambda a, b: sim.host("n").crash())
    sim.run(100 * MS)
    assert [n for _, n in sim.host("peer").node.got] == [0]  # 'before' left; 'after' died with the node


def test_a_timer_set_earlier_again_or_cancelled_and_set_again_fires_once_at_its_last_setting():
    """A timer set again to an earlier deadline, or cancelled and set again while its first event is
    still pending, fires once, at its last setting; the stale event does nothing."""
    log = []
    sim = one_node(log, timers=[("early", 9), ("again", 4)])
    sim.at(2 * MS, lambda a, b: sim.host("n").set_timer("early", 3))  # 9 ms -> 5 ms
    sim.at(3 * MS, lambda a, b: sim.host("n").cancel_timer("again"))

    def set_again(_a, _b):
        sim.host("n").set_timer("again", 2)  # due at 5.5 ms; the first event (4 ms) is still pending

    sim.at(int(3.5 * MS), set_again)
    sim.run(100 * MS)
    assert events(log, "timer") == [(5.0, "early"), (5.5, "again")]


def test_a_timer_set_before_a_crash_does_not_fire_in_the_restarted_node():
    """A restarted node's timer of the same name is its own: the event of the crashed node's timer
    (due earlier) fires nothing, and the new one fires at its own deadline."""
    log = []
    sim = one_node(log, timers=[("t", 5)])
    sim.run(1 * MS)
    sim.host("n").crash()
    sim.run(2 * MS)
    sim.host("n").restart()  # on_start sets "t" again: due at 7 ms
    sim.run(100 * MS)
    assert events(log, "timer") == [(7.0, "t")]


# ---- priced nodes (cost_ns) ----------------------------------------------------------------------

class Priced(Log):
    """Prices a Job at n ms on two cores (queue_limit 2); an Other runs at once."""

    cores, queue_limit = 2, 2

    def cost_ns(self, ctx, src, msg):
        return msg.n * MS if type(msg) is Job else None

    def on_job(self, ctx, src, msg, arrived_ns, started_ns, queued):
        self.log.append((ctx.now / MS, "job", (msg.n, arrived_ns / MS, started_ns / MS, queued)))

    def on_refused(self, ctx, src, msg):
        self.log.append((ctx.now / MS, "refused", msg.n))


def priced_node(log, **host) -> Simulation:
    sim = Simulation(1, latency=Dist("constant", 1))
    sim.add_node("n", lambda: Priced(log), **host)
    sim.add_node("peer", Node)
    return sim


def test_a_priced_node_queues_jobs_fifo_on_its_own_cores_and_learns_their_times():
    """A node with cost_ns gets its jobs queued on the cores it declares, FIFO; on_job hears when
    each arrived and started and how many waited ahead of it; unpriced messages run at once."""
    log = []
    sim = priced_node(log)
    deliver_at(sim, 0, Job(4), Job(2), Job(3), Other(9), Job(5))
    sim.run(100 * MS)
    assert events(log, "msg") == [(1.0, 9)]
    assert events(log, "job") == [(3.0, (2, 1.0, 1.0, 0)), (5.0, (4, 1.0, 1.0, 0)),
                                  (6.0, (3, 1.0, 3.0, 0)), (10.0, (5, 1.0, 5.0, 1))]


def test_a_priced_node_refuses_past_its_queue_limit():
    """With every core busy and queue_limit jobs waiting, an arrival goes to on_refused at once."""
    log = []
    sim = priced_node(log)
    deliver_at(sim, 0, *[Job(10 + i) for i in range(5)])
    sim.run(100 * MS)
    assert events(log, "refused") == [(1.0, 14)]
    assert sim.host("n").dropped_inbox == 1


def test_a_paused_priced_node_finishes_nothing_and_a_crashed_one_loses_its_jobs():
    """Work due during a pause ends at the resume; a crash loses queued and running jobs."""
    log = []
    sim = priced_node(log)
    deliver_at(sim, 0, Job(4))
    sim.at(2 * MS, lambda a, b: sim.host("n").pause())
    sim.at(8 * MS, lambda a, b: sim.host("n").resume())
    deliver_at(sim, 20, Job(4), Job(4), Job(4))
    sim.at(23 * MS, lambda a, b: sim.host("n").crash())
    sim.at(24 * MS, lambda a, b: sim.host("n").restart())
    deliver_at(sim, 30, Job(1))
    sim.run(100 * MS)
    assert events(log, "job") == [(8.0, (4, 1.0, 1.0, 0)), (32.0, (1, 31.0, 31.0, 0))]


def test_arrivals_at_a_priced_node_follow_its_state_paused_crashed_or_up():
    """A priced node's arrivals are priced at once while it is up, wait for the resume while it is
    paused (arriving then), and are dropped while it is down: the kernel's delivery follows the
    host's state through every change."""
    log = []
    sim = priced_node(log)
    sim.at(2 * MS, lambda a, b: sim.host("n").pause())
    deliver_at(sim, 3, Job(1))  # arrives at 4, during the pause
    sim.at(8 * MS, lambda a, b: sim.host("n").resume())
    deliver_at(sim, 10, Job(1))
    sim.at(20 * MS, lambda a, b: sim.host("n").crash())
    deliver_at(sim, 21, Job(1))  # arrives at 22, while down
    sim.at(24 * MS, lambda a, b: sim.host("n").restart())
    deliver_at(sim, 30, Job(1))
    sim.run(100 * MS)
    assert events(log, "job") == [(9.0, (1, 8.0, 8.0, 0)), (12.0, (1, 11.0, 11.0, 0)), (32.0, (1, 31.0, 31.0, 0))]
    assert sim.host("n").dropped_down == 1


def test_a_priced_node_on_a_host_with_a_cost_model_is_refused():
    """A host cannot both price by message class (service=) and let its node price: it says so at boot."""
    sim = Simulation(1)
    sim.add_node("n", lambda: Priced([]), service=Dist("constant", 1))
    with pytest.raises(ValueError, match="cost_ns"):
        sim.run(1 * MS)


class Rows(Node):
    """Keeps one row per message it gets: (the message's n, its square)."""

    def on_message(self, ctx, src, msg):
        ctx.record_row("seen", (msg.n, msg.n * msg.n))


def rows_run(ns, crash_at_ms=None) -> Simulation:
    sim = Simulation(1, latency=Dist.parse("constant:1"))
    sim.add_node("n", Rows)
    sim.add_node("peer", Node)
    for i, n in enumerate(ns):
        deliver_at(sim, i, Job(n))
    if crash_at_ms is not None:
        sim.at(int(crash_at_ms * MS), lambda a, b: sim.hosts["n"].crash())
        sim.at(int(crash_at_ms * MS) + 1, lambda a, b: sim.hosts["n"].restart())
    sim.run(100 * MS)
    return sim


def test_record_row_keeps_each_row_with_its_true_time_and_node_in_the_table_of_its_kind():
    """ctx.record_row appends (true time ns, node, *row) to the table of its kind, in order, and leaves the records alone."""
    sim = rows_run([2, 3])
    assert sim.tables == {"seen": [(1 * MS, "n", 2, 4), (2 * MS, "n", 3, 9)]} and sim.records == []


def test_a_crash_loses_no_row_and_rows_enter_the_digest():
    """Rows made before a crash stay in the table; a different row gives a different digest, and
    a run that keeps no rows digests as if tables did not exist."""
    crashed = rows_run([2, 3, 4], crash_at_ms=2.5)
    assert [r[2] for r in crashed.tables["seen"]] == [2, 3, 4]
    assert rows_run([2, 3]).digest() != rows_run([2, 5]).digest()
    from simulator.engine.kernel import _encode_into

    empty = rows_run([])
    assert empty.tables == {}
    assert empty.digest() == _encode_into(empty._hash.copy(), empty.records).hexdigest()  # trace, then records only
