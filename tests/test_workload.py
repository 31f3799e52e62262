"""Clients and histories (simulator.workload.clients): open and closed loops, timeouts, rate profiles, final ops."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from simulator.engine.dists import Dist
from simulator.engine.kernel import Simulation
from simulator.engine.node import ClientNode, Node
from simulator.workload.clients import Workload
from simulator.workload.history import pairs

MS = 1_000_000
S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Req:
    op_id: int
    value: object


@dataclass(frozen=True, slots=True)
class Reply:
    op_id: int
    outcome: str
    value: object


class Server(Node):
    """Answers ok; never answers "drop"; answers "fail" to "no"; answers "slow" after 100 ms."""

    def __init__(self):
        self.slow = {}

    def on_message(self, ctx, src, msg):
        if msg.value == "drop":
            return
        if msg.value == "slow":
            self.slow[f"r{msg.op_id}"] = (src, msg)
            ctx.set_timer(f"r{msg.op_id}", 100)
            return
        ctx.send(src, Reply(msg.op_id, "fail" if msg.value == "no" else "ok", msg.value))

    def on_timer(self, ctx, name):
        src, msg = self.slow.pop(name)
        ctx.send(src, Reply(msg.op_id, "ok", msg.value))


class Client(ClientNode):
    def on_invoke(self, ctx, op):
        ctx.send("s", Req(op.id, op.value))

    def on_message(self, ctx, src, msg):
        accepted = ctx.complete(msg.op_id, msg.outcome, msg.value)
        ctx.record("reply", op_id=msg.op_id, accepted=accepted)


def const(value="v"):
    return lambda rng: ("write", value)


def make(*, rate=None, concurrency=None, generate=const(), timeout_ms=50, rate_at=None, clients=2,
         latency="exponential:1", seed=1):
    sim = Simulation(seed, latency=Dist.parse(latency))
    sim.add_node("s", Server)
    ids = [f"c{i + 1}" for i in range(clients)]
    for cid in ids:
        sim.add_node(cid, Client, is_client=True)
    wl = Workload(sim, ids, generate, op_timeout_ns=timeout_ms * MS, rate=rate, concurrency=concurrency,
                  rate_at=rate_at)
    sim.run(0)
    return sim, wl


def invokes(history):
    return [op for op in history if op["type"] == "invoke"]


def test_open_loop_invokes_about_rate_times_duration():
    """An open loop at rate R for T seconds invokes about R*T operations (within 4 sigma of Poisson)."""
    sim, wl = make(rate=200)
    wl.start(5 * S)
    sim.run(6 * S)
    n = len(invokes(wl.history))
    assert abs(n - 1000) < 4 * math.sqrt(1000)
    assert all(op["time"] < 5 * S for op in invokes(wl.history))
    assert wl.started == n


def test_open_loop_needs_a_rate():
    """An open-loop workload without a positive rate, or without clients, is refused."""
    sim = Simulation(1)
    with pytest.raises(ValueError, match="rate"):
        Workload(sim, ["c1"], const(), op_timeout_ns=S, rate=0)
    with pytest.raises(ValueError, match="client"):
        Workload(sim, [], const(), op_timeout_ns=S, rate=5)


def test_open_loop_process_has_one_op_outstanding_and_reuses_lowest_free_id():
    """In an open loop a process never has two operations open, and a new arrival takes the lowest free id."""
    sim, wl = make(rate=500, latency="exponential:5")
    wl.start(2 * S)
    sim.run(3 * S)
    open_ = set()
    for op in wl.history:
        if op["type"] == "invoke":
            assert op["process"] not in open_
            free_below = [p for p in range(op["process"]) if p not in open_]
            assert free_below == [], "a lower free process id was skipped"
            open_.add(op["process"])
        else:
            open_.remove(op["process"])
    assert max(op["process"] for op in wl.history) > 1  # load did wait for nothing


def test_closed_loop_respects_concurrency_and_one_op_per_process():
    """A closed loop never has more than `concurrency` operations open, and at most one per process."""
    sim, wl = make(concurrency=3, latency="exponential:2")
    wl.start(1 * S)
    sim.run(2 * S)
    open_ = set()
    peak = 0
    for op in wl.history:
        if op["type"] == "invoke":
            assert op["process"] not in open_
            open_.add(op["process"])
            peak = max(peak, len(open_))
        else:
            open_.remove(op["process"])
    assert peak == 3
    assert {op["process"] for op in wl.history} == {0, 1, 2}
    assert len(invokes(wl.history)) > 300


def test_closed_loop_invokes_again_when_an_op_ends():
    """In a closed loop a process invokes its next operation at the instant its previous one ends."""
    sim, wl = make(concurrency=1, latency="constant:1")
    wl.start(10 * MS)
    sim.run(50 * MS)
    times = [(op["type"], op["time"]) for op in wl.history]
    assert times[:4] == [("invoke", 0), ("ok", 2 * MS), ("invoke", 2 * MS), ("ok", 4 * MS)]
    assert times[-1] == ("ok", 10 * MS)  # the op invoked at 8 ms; none is invoked at the stop time


def test_timed_out_op_is_info_and_its_process_is_retired():
    """An operation without an answer within the timeout is recorded info, and its process is never used again."""
    values = iter(["v", "drop", "v", "v", "drop"] + ["v"] * 1000)
    sim, wl = make(concurrency=2, generate=lambda rng: ("write", next(values)), timeout_ms=50)
    wl.start(1 * S)
    sim.run(2 * S)
    infos = [op for op in wl.history if op["type"] == "info"]
    assert len(infos) == 2
    for info in infos:
        assert info["value"] == "drop"
        later = [op for op in wl.history if op["index"] > info["index"] and op["process"] == info["process"]]
        assert later == []
    inv = next(op for op in wl.history if op["type"] == "invoke" and op["process"] == infos[0]["process"])
    assert infos[0]["time"] - inv["time"] == 50 * MS
    used = {op["process"] for op in wl.history}
    assert len(used) == 4  # two original processes, two replacements
    assert wl.pending <= 2


def test_fail_keeps_the_process():
    """An operation that ends fail leaves its process free for the next operation."""
    sim, wl = make(concurrency=1, generate=lambda rng: ("write", "no"))
    wl.start(100 * MS)
    sim.run(200 * MS)
    assert {op["process"] for op in wl.history} == {0}
    assert {op["type"] for op in wl.history} == {"invoke", "fail"}


def test_history_indices_are_in_order_and_completions_follow_invokes():
    """History indices are 0..n-1 in order, times never go back, and each completion follows its invoke."""
    values = iter((["v"] * 7 + ["drop", "slow", "no"]) * 1000)
    sim, wl = make(rate=300, generate=lambda rng: ("write", next(values)), latency="exponential:3")
    wl.start(2 * S)
    sim.run(3 * S)
    h = wl.history
    assert [op["index"] for op in h] == list(range(len(h)))
    assert all(a["time"] <= b["time"] for a, b in zip(h, h[1:]))
    for inv, comp in pairs(h):
        assert comp is not None
        assert comp["index"] > inv["index"] and comp["process"] == inv["process"]
    assert {op["type"] for op in h} == {"invoke", "ok", "fail", "info"}


def test_complete_after_timeout_returns_false():
    """A reply arriving after its operation timed out is refused: complete() returns False and nothing is recorded."""
    sim, wl = make(concurrency=1, generate=lambda rng: ("write", "slow"), timeout_ms=50)
    wl.start(10 * MS)
    sim.run(1 * S)
    late = [r for r in sim.records if r["kind"] == "reply"]
    assert late and all(r["accepted"] is False for r in late)
    assert [op["type"] for op in wl.history].count("ok") == 0
    assert wl.complete(0, "ok") is False


def test_complete_rejects_other_endings():
    """complete() with a type other than ok, fail or info raises ValueError."""
    sim, wl = make(concurrency=1)
    wl.start(10 * MS)
    with pytest.raises(ValueError, match="ok, fail or info"):
        wl.complete(0, "done")


def test_rate_profile_shapes_arrivals():
    """With rate_at zero in the first half and R in the second, all arrivals fall in the second half, about R*T/2."""
    sim, wl = make(rate_at=lambda t_s: 0.0 if t_s < 2.0 else 300.0, clients=1)
    wl.start(4 * S)
    sim.run(5 * S)
    times = [op["time"] for op in invokes(wl.history)]
    assert min(times) >= 2 * S
    assert abs(len(times) - 600) < 4 * math.sqrt(600)


def test_final_ops_run_on_fresh_processes_and_call_on_done():
    """run_final invokes each final op on a never-used process and calls on_done once all have ended."""
    sim, wl = make(concurrency=2)
    wl.start(50 * MS)
    sim.run(100 * MS)
    used = {op["process"] for op in wl.history}
    done = []
    first_final = len(wl.history)
    wl.run_final([("read", "k1"), ("read", "drop"), ("read", "k3")], lambda: done.append(sim.now))
    assert [op["type"] for op in wl.history[first_final:]] == ["invoke"] * 3  # invoked at once
    sim.run(1 * S)
    final = wl.history[first_final:]
    assert [op["f"] for op in final if op["type"] == "invoke"] == ["read", "read", "read"]
    final_procs = {op["process"] for op in final}
    assert len(final_procs) == 3 and not (final_procs & used)
    assert sorted(op["type"] for op in final if op["type"] != "invoke") == ["info", "ok", "ok"]
    assert done == [100 * MS + 50 * MS]  # the dropped read times out last


def test_no_main_ops_after_run_final():
    """Once run_final starts, the main phase invokes nothing more."""
    sim, wl = make(rate=1000)
    wl.start(10 * S)
    sim.run(100 * MS)
    wl.run_final([], lambda: None)
    n = len(invokes(wl.history))
    sim.run(1 * S)
    assert len(invokes(wl.history)) == n


def test_run_final_with_no_ops_calls_on_done_at_once():
    """run_final([]) calls on_done immediately."""
    sim, wl = make(concurrency=1)
    done = []
    wl.run_final([], lambda: done.append(True))
    assert done == [True]


def test_workload_is_deterministic():
    """The same seed gives the same history."""
    hs = []
    for _ in range(2):
        sim, wl = make(rate=100, generate=lambda rng: ("write", int(rng.integers(10))), latency="exponential:2")
        wl.start(1 * S)
        sim.run(2 * S)
        hs.append(wl.history)
    assert hs[0] == hs[1] and len(hs[0]) > 100


def test_a_final_op_with_a_shorter_timeout_times_out_before_earlier_main_ops():
    """Main-phase operations still waiting when run_final starts keep their deadlines, and a final
    operation given a shorter timeout times out at its own, earlier deadline (the deadlines' queue
    turns into a heap when one comes out of order)."""
    sim, wl = make(concurrency=2, generate=const("drop"), timeout_ms=500)
    wl.start(10 * MS)
    sim.run(10 * MS)  # two main operations outstanding, due at 500 ms
    wl.run_final([("read", "drop")], lambda: None, timeout_ns=100 * MS)
    sim.run(2 * S)
    infos = [(op["time"], op["f"]) for op in wl.history if op["type"] == "info"]
    assert infos == [(110 * MS, "read"), (500 * MS, "write"), (500 * MS, "write")]
