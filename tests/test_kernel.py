"""The Simulation (simulator.engine.kernel): event order, run(until), chunked runs, digests, nodes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from simulator.engine.dists import Dist
from simulator.engine.kernel import Simulation
from simulator.engine.node import Node

MS = 1_000_000


@dataclass(frozen=True, slots=True)
class Ping:
    n: int


class Chatter(Node):
    """Pings a random peer on a jittery timer and answers every ping: a little randomness everywhere."""

    peers = ("a", "b", "c")

    def on_start(self, ctx):
        ctx.set_timer("tick", (1, 3))

    def on_timer(self, ctx, name):
        dst = self.peers[int(ctx.rng.integers(len(self.peers)))]
        ctx.send(dst, Ping(0))
        ctx.set_timer("tick", (1, 3))

    def on_message(self, ctx, src, msg):
        if msg.n < 2:
            ctx.send(src, Ping(msg.n + 1))
        ctx.record("got", n=msg.n, src=src)


def note(seen):
    """A callback for schedule(): appends its first argument to ``seen``."""
    return lambda a, _b: seen.append(a)


def chatter_sim(seed: int) -> Simulation:
    sim = Simulation(seed, latency=Dist("exponential", 0.5))
    for nid in Chatter.peers:
        sim.add_node(nid, Chatter)
    return sim


def test_events_run_in_time_then_scheduling_order():
    """Events run by time; events at the same instant run in the order they were scheduled."""
    sim = Simulation(1)
    seen = []
    sim.schedule(5, note(seen), "late")
    sim.schedule(2, note(seen), "first-at-2")
    sim.schedule(2, note(seen), "second-at-2")
    sim.schedule(0, note(seen), "now")
    sim.run()
    assert seen == ["now", "first-at-2", "second-at-2", "late"]


def test_callbacks_get_both_arguments():
    """schedule(delay, fn, a, b) calls fn(a, b); at(t, ...) runs at absolute time t."""
    sim = Simulation(1)
    got = []
    sim.schedule(3, lambda a, b: got.append((sim.now, a, b)), "x", "y")
    sim.at(10, lambda a, b: got.append((sim.now, a, b)), 1)
    sim.run()
    assert got == [(3, "x", "y"), (10, 1, None)]


def test_event_scheduled_for_same_instant_runs_after_current_ones():
    """An event scheduled with delay 0 from a callback runs after events already queued for that instant."""
    sim = Simulation(1)
    seen = []
    sim.schedule(1, lambda a, b: (seen.append("A"), sim.schedule(0, note(seen), "A-child")))
    sim.schedule(1, note(seen), "B")
    sim.run()
    assert seen == ["A", "B", "A-child"]


def test_run_until_stops_before_events_at_until():
    """run(until) leaves now == until and does not run events scheduled at until; the next run does."""
    sim = Simulation(1)
    seen = []
    sim.schedule(9, note(seen), 9)
    sim.schedule(10, note(seen), 10)
    sim.run(10)
    assert sim.now == 10 and seen == [9]
    sim.run(11)
    assert seen == [9, 10] and sim.now == 11


def test_run_until_with_nothing_scheduled_advances_time():
    """run(until) on an empty schedule still moves now to until; run(until <= now) does nothing."""
    sim = Simulation(1)
    sim.run(50)
    assert sim.now == 50
    sim.run(20)
    assert sim.now == 50


def test_run_without_until_drains_the_schedule():
    """run() with no limit runs until nothing is left and stops at the last event's time."""
    sim = Simulation(1)
    sim.schedule(7, lambda a, b: None)
    sim.run()
    assert sim.now == 7


def test_stop_ends_run_after_the_current_instant_queue():
    """stop() ends run() once the events already scheduled for this instant have run."""
    sim = Simulation(1)
    seen = []
    sim.schedule(4, lambda a, b: sim.stop())
    sim.schedule(4, note(seen), "same-instant")
    sim.schedule(5, note(seen), "later")
    sim.run(100)
    assert seen == ["same-instant"] and sim.now == 4


def test_chunked_run_gives_the_same_digest_as_one_run():
    """Running to T in many chunks gives the same trace digest and state as one run to T."""
    one = chatter_sim(3)
    one.run(200 * MS)
    many = chatter_sim(3)
    t = 0
    for step in (1, 7 * MS, 1, 13 * MS, 50 * MS):
        t += step
        many.run(t)
    while many.now < 200 * MS:
        many.run(min(200 * MS, many.now + 9 * MS + 3))
    assert many.digest() == one.digest()
    assert len(many.records) == len(one.records) > 100


def test_digest_is_identical_for_identical_sims_and_differs_for_another_seed():
    """Two identical simulations give one digest; another seed gives another."""
    digests = []
    for seed in (11, 11, 12):
        sim = chatter_sim(seed)
        sim.run(100 * MS)
        digests.append(sim.digest())
    assert digests[0] == digests[1]
    assert digests[0] != digests[2]


def test_digest_depends_on_records():
    """The digest folds in observations: a record added changes it."""
    a, b = Simulation(1), Simulation(1)
    a.run(10)
    b.run(10)
    assert a.digest() == b.digest()
    b.record("n1", "note", {"x": 1})
    assert a.digest() != b.digest()


def test_digest_can_be_read_mid_run_without_changing_the_result():
    """Reading digest() part-way does not change the final digest."""
    a, b = chatter_sim(5), chatter_sim(5)
    a.run(30 * MS)
    a.digest()
    a.run(60 * MS)
    b.run(60 * MS)
    assert a.digest() == b.digest()


def test_add_node_twice_raises():
    """A node id can be added once; a second add_node with it raises ValueError."""
    sim = Simulation(1)
    sim.add_node("n1", Node)
    with pytest.raises(ValueError, match="used twice"):
        sim.add_node("n1", Node)


def test_nodes_start_at_time_zero_in_add_order():
    """Nodes added before the first run start at time 0, in the order they were added."""
    started = []

    class Rec(Node):
        def __init__(self, name):
            self.name = name

        def on_start(self, ctx):
            started.append((ctx.id, ctx.now))

    sim = Simulation(1)
    for nid in ("z", "a", "m"):
        sim.add_node(nid, lambda nid=nid: Rec(nid))
    sim.run(0)
    assert started == []  # run(0) at time 0 only queues the boot
    sim.run(1)
    assert started == [("z", 0), ("a", 0), ("m", 0)]


def test_node_added_later_starts_at_next_run():
    """A node added after time 0 starts when the next run begins, at the current time."""
    started = []

    class Rec(Node):
        def on_start(self, ctx):
            started.append((ctx.id, ctx.now))

    sim = Simulation(1)
    sim.run(5 * MS)
    sim.add_node("late", Rec)
    sim.run(6 * MS)
    assert started == [("late", 5 * MS)]


def test_record_adds_true_time_and_node():
    """ctx.record stores kind, node id, true time and the fields, in order."""

    class Say(Node):
        def on_start(self, ctx):
            ctx.record("hello", x=1)

    sim = Simulation(1)
    sim.add_node("n1", Say)
    sim.run(1)
    assert sim.records == [{"time_ns": 0, "node": "n1", "kind": "hello", "x": 1}]


def test_clock_of_creates_a_perfect_clock_once():
    """clock_of(node) makes a clock reading true time, and returns the same object afterwards."""
    sim = Simulation(1)
    sim.add_node("n1", Node)
    sim.run(3 * MS)
    clock = sim.clock_of("n1")
    assert sim.clock_of("n1") is clock
    assert clock.local(sim.now) == sim.now


_CHILD = """
from simulator.engine.dists import Dist
from simulator.engine.kernel import Simulation
from simulator.engine.node import Node

class Gossip(Node):
    def on_start(self, ctx):
        ctx.set_timer("tick", (1, 3))
    def on_timer(self, ctx, name):
        peers = sorted({"a", "b", "c", "d"} - {ctx.id})
        ctx.send(peers[int(ctx.rng.integers(len(peers)))], ("hi", ctx.id))
        ctx.set_timer("tick", (1, 3))
    def on_message(self, ctx, src, msg):
        ctx.record("got", src=src)

sim = Simulation(21, latency=Dist("lognormal", 1.0, cv=1.0))
for nid in ("a", "b", "c", "d"):
    sim.add_node(nid, Gossip)
sim.run(300_000_000)
print(sim.digest())
"""


def test_digest_does_not_depend_on_pythonhashseed():
    """The same simulation in processes with different PYTHONHASHSEED values gives one digest."""
    import os
    import subprocess
    import sys

    outs = set()
    for hs in ("1", "777"):
        env = {**os.environ, "PYTHONHASHSEED": hs}
        proc = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True)
        outs.add(proc.stdout.strip())
    assert len(outs) == 1 and len(outs.pop()) == 64


def test_trace_file_gets_one_json_line_per_event():
    """With a trace file, deliveries, timers and logs are written as JSON lines with true time."""
    import io
    import json

    class Talk(Node):
        def on_start(self, ctx):
            ctx.set_timer("t", 1)

        def on_timer(self, ctx, name):
            ctx.log("sending")
            ctx.send("b" if ctx.id == "a" else "a", Ping(5))

    buf = io.StringIO()
    sim = Simulation(1, latency=Dist("constant", 2), trace_file=buf)
    sim.add_node("a", Talk)
    sim.add_node("b", Node)
    sim.run(10 * MS)
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    events = [(e["time_ns"], e["event"], e["args"]) for e in lines if e["args"][0] == "a"]
    assert events == [(1 * MS, "timer", ["a", "t"]), (1 * MS, "log", ["a", "sending"]),
                      (3 * MS, "deliver", ["a", "b", "Ping"])]


def test_digest_does_not_depend_on_tracing():
    """Writing a trace file does not change the digest: a traced run and an untraced replay agree."""
    import io

    digests = []
    for trace_file in (None, io.StringIO()):
        sim = Simulation(3, latency=Dist("exponential", 0.5), trace_file=trace_file)
        for nid in Chatter.peers:
            sim.add_node(nid, Chatter)
        sim.run(50 * MS)
        digests.append(sim.digest())
    assert digests[0] == digests[1]


def test_relaxed_gc_raises_the_young_threshold_for_the_run_and_restores_it():
    import gc

    from simulator.pipeline.run import GC_YOUNG_THRESHOLD, relaxed_gc

    before = gc.get_threshold()
    with relaxed_gc():
        inside = gc.get_threshold()
        assert inside[0] == max(before[0], GC_YOUNG_THRESHOLD) and inside[1:] == before[1:]
    assert gc.get_threshold() == before
    try:
        with relaxed_gc():
            raise RuntimeError("a crashing run")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before


def test_a_simpy_event_on_the_heap_runs_in_its_place_among_scheduled_calls():
    """A plain simpy Timeout shares the heap with engine calls and fires in (time, scheduling) order."""
    sim = Simulation(1)
    seen = []
    sim.schedule(5, lambda a, b: seen.append(("call", sim.now)))
    t = sim.env.timeout(5)
    t.callbacks.append(lambda ev: seen.append(("simpy", sim.now)))
    sim.schedule(5, lambda a, b: seen.append(("call2", sim.now)))
    sim.schedule(3, lambda a, b: seen.append(("first", sim.now)))
    sim.run()
    assert seen == [("first", 3), ("call", 5), ("simpy", 5), ("call2", 5)]


def test_a_stopped_or_failed_run_leaves_nothing_behind_for_the_next_run():
    """After stop() or a handler's exception ends run(until) early, a later run is not cut short at
    the earlier until (no leftover end marker on the heap)."""
    sim = Simulation(1)
    seen = []
    sim.schedule(10, lambda a, b: sim.stop())
    sim.schedule(50, lambda a, b: seen.append(sim.now))
    sim.run(until_ns=30)
    assert sim.now == 10 and seen == []

    def boom(a, b):
        raise RuntimeError("handler bug")

    sim.schedule(5, boom)
    with pytest.raises(RuntimeError):
        sim.run(until_ns=40)
    sim.run(until_ns=100)
    assert seen == [50] and sim.now == 100


def test_delivered_counts_every_delivery_whether_the_run_is_chunked_or_stopped_by_an_error():
    """Network.delivered (its stats) equals the handlers' count of messages after a run in one go, in
    chunks, and after a handler's exception ended the run."""

    class Counting(Chatter):
        got = [0]

        def on_message(self, ctx, src, msg):
            Counting.got[0] += 1
            super().on_message(ctx, src, msg)

    counts = []
    for chunks in (1, 7):
        Counting.got[0] = 0
        sim = Simulation(5, latency=Dist("exponential", 0.5))
        for nid in Chatter.peers:
            sim.add_node(nid, Counting)
        for i in range(1, chunks + 1):
            sim.run(int(140 * MS * i / chunks))
        assert sim.network.stats()["delivered"] == Counting.got[0] > 0
        counts.append(Counting.got[0])
    assert counts[0] == counts[1]

    class Failing(Counting):
        def on_message(self, ctx, src, msg):
            super().on_message(ctx, src, msg)
            if Counting.got[0] == 25:
                raise RuntimeError("handler bug")

    Counting.got[0] = 0
    sim = Simulation(5, latency=Dist("exponential", 0.5))
    for nid in Chatter.peers:
        sim.add_node(nid, Failing)
    with pytest.raises(RuntimeError):
        sim.run(140 * MS)
    assert sim.network.delivered == Counting.got[0] == 25
