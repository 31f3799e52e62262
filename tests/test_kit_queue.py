"""Stories of the kit's durable queue (a partition and a worker), told through a FakeContext, and
of a queue in a TOML graph design."""

from __future__ import annotations

import pytest

from simulator import Dist, FakeContext, UsageError, message
from simulator.kit.directory import Directory
from simulator.kit.graph import parse
from simulator.kit.messages import Call, Reply
from simulator.kit.queue import (
    Ack,
    DeadLetter,
    DepthQuery,
    Depth,
    Empty,
    Enqueue,
    Enqueued,
    Extend,
    Job,
    Leased,
    Pull,
    Queue,
    QueueSpec,
    QueueWorker,
)


@message
class Msg:
    msg_id: str
    cls: str = "bulk"
    delay_ms: float = 0.0


def started(**over):
    spec = QueueSpec("jobs", **{"visibility_timeout_ms": 1000.0, "long_poll_ms": 500.0, **over})
    node, ctx = Queue(spec), FakeContext("jobs-1")
    node.on_start(ctx)
    return node, ctx


def sent_of(ctx, kind):
    return [(dst, m) for dst, m in ctx.sent if type(m) is kind]


def kinds(ctx, kind):
    return [r for r in ctx.records if r["kind"] == kind]


def wake(node, ctx, ms):
    ctx.advance(ms)
    node.on_timer(ctx, "wake")


def test_an_enqueued_message_is_durable_confirmed_and_stored_once():
    """Enqueue writes the message to disk and confirms it; the same id again is confirmed but not queued twice."""
    node, ctx = started()
    node.on_message(ctx, "p", Enqueue(Msg("a")))
    node.on_message(ctx, "p", Enqueue(Msg("a")))
    assert [m for _, m in sent_of(ctx, Enqueued)] == [Enqueued("a"), Enqueued("a")]
    assert ctx.storage.snapshot()["m/a"] == Msg("a") and "t/a" in ctx.storage.snapshot()
    assert list(node.ready_lo) == ["a"]
    assert [(r["comp"], r["n"]) for r in kinds(ctx, "kit.enqueue")] == [("jobs", 1)]


def test_a_lease_hides_the_message_until_the_visibility_timeout_then_it_is_redelivered():
    """A leased message not acked comes back, first in line, when its visibility timeout passes."""
    node, ctx = started()
    node.on_message(ctx, "p", Enqueue(Msg("a")))
    node.on_message(ctx, "p", Enqueue(Msg("b")))
    node.on_message(ctx, "w1", Pull(1))
    assert [m.msg.msg_id for _, m in sent_of(ctx, Leased)] == ["a"]
    wake(node, ctx, 999)
    assert list(node.ready_lo) == ["b"]
    wake(node, ctx, 1)
    assert list(node.ready_lo) == ["a", "b"]
    assert [r["n"] for r in kinds(ctx, "kit.redeliver")] == [1]
    node.on_message(ctx, "w2", Pull(1))
    assert sent_of(ctx, Leased)[-1] == ("w2", Leased(1, Msg("a"), sent_of(ctx, Leased)[-1][1].receipt, 2))


def test_an_ack_deletes_the_message_and_records_its_completion():
    """After an ack the message is off the disk and never redelivered."""
    node, ctx = started()
    node.on_message(ctx, "p", Enqueue(Msg("a")))
    node.on_message(ctx, "w1", Pull(1))
    node.on_message(ctx, "w1", Ack("a"))
    assert "m/a" not in ctx.storage.snapshot()
    wake(node, ctx, 5000)
    assert not node.ready_lo and not kinds(ctx, "kit.redeliver")
    assert [(r["n"], r["receives"]) for r in kinds(ctx, "kit.ack")] == [(1, 1)]


def test_an_extended_lease_outlives_the_original_timeout():
    """Extend with the current receipt pushes the lease's end back by a visibility timeout."""
    node, ctx = started()
    node.on_message(ctx, "p", Enqueue(Msg("a")))
    node.on_message(ctx, "w1", Pull(1))
    receipt = sent_of(ctx, Leased)[0][1].receipt
    ctx.advance(600)
    node.on_message(ctx, "w1", Extend("a", receipt))
    node.on_message(ctx, "w1", Extend("a", receipt + 99))  # a stale receipt changes nothing
    wake(node, ctx, 400)
    assert not node.ready_lo
    wake(node, ctx, 600)
    assert list(node.ready_lo) == ["a"]


def test_a_message_received_max_receives_times_goes_to_the_dead_letter_queue():
    """With max_receives 2 the second expired lease dead-letters the message instead of redelivering it."""
    node, ctx = started(max_receives=2)
    node.on_message(ctx, "p", Enqueue(Msg("a")))
    for pull_id in (1, 2):
        node.on_message(ctx, "w1", Pull(pull_id))
        wake(node, ctx, 1000)
    snap = ctx.storage.snapshot()
    assert "m/a" not in snap and snap["d/a"] == DeadLetter("a", Msg("a"), "max-receives")
    assert Queue.dead_letters(snap) == [DeadLetter("a", Msg("a"), "max-receives")] and not Queue.pending(snap)
    assert [r["reason"] for r in kinds(ctx, "kit.dead")] == ["max-receives"]
    node.on_message(ctx, "w1", Pull(3))
    assert len(sent_of(ctx, Leased)) == 2 and "w1" in node.parked


def test_a_parked_pull_gets_the_next_message_or_empty_when_its_long_poll_ends():
    """A pull with nothing to serve waits; a new message goes to it, another waiting pull gets Empty."""
    node, ctx = started()
    node.on_message(ctx, "w1", Pull(1))
    node.on_message(ctx, "w2", Pull(2))
    node.on_message(ctx, "p", Enqueue(Msg("a")))
    assert [(d, m.pull_id) for d, m in sent_of(ctx, Leased)] == [("w1", 1)]
    wake(node, ctx, 500)
    assert sent_of(ctx, Empty) == [("w2", Empty(2))]


def test_priority_classes_are_served_first_and_priority_only_pulls_wait_for_them():
    """With priority ("tx",), tx messages are leased first and a pull with bulk_ok False never takes bulk."""
    node, ctx = started(priority=("tx",))
    node.on_message(ctx, "p", Enqueue(Msg("b1", "bulk")))
    node.on_message(ctx, "p", Enqueue(Msg("t1", "tx")))
    node.on_message(ctx, "w1", Pull(1, bulk_ok=False))
    node.on_message(ctx, "w2", Pull(2, bulk_ok=False))
    assert [(d, m.msg.msg_id) for d, m in sent_of(ctx, Leased)] == [("w1", "t1")]
    assert "w2" in node.parked
    node.on_message(ctx, "w3", Pull(3))
    assert [m.msg.msg_id for _, m in sent_of(ctx, Leased)] == ["t1", "b1"]


def test_a_delayed_message_and_an_acks_retry_stay_invisible_for_their_delay():
    """A message with delay_ms, and the retry an ack stores atomically, become visible only after their delay."""
    node, ctx = started()
    node.on_message(ctx, "p", Enqueue(Msg("a", delay_ms=300.0)))
    assert not node.ready_lo and node.delayed_n == 1
    wake(node, ctx, 300)
    assert list(node.ready_lo) == ["a"]
    node.on_message(ctx, "w1", Pull(1))
    node.on_message(ctx, "w1", Ack("a", Msg("a2", delay_ms=200.0), (DeadLetter("x", None, "gave-up"),)))
    snap = ctx.storage.snapshot()
    assert "m/a2" in snap and "d/x" in snap and not node.ready_lo
    wake(node, ctx, 200)
    assert list(node.ready_lo) == ["a2"]


def test_a_restarted_partition_makes_every_stored_message_visible_and_samples_its_depth():
    """After a crash leases are gone but messages are on disk; the depth sample counts them."""
    node, ctx = started()
    node.on_message(ctx, "p", Enqueue(Msg("a")))
    node.on_message(ctx, "p", Enqueue(Msg("b")))
    node.on_message(ctx, "w1", Pull(1))
    fresh = Queue(node.spec)
    fresh.on_start(ctx)
    assert list(fresh.ready_lo) == ["a", "b"]
    fresh.on_timer(ctx, "kit.queue.sample")
    assert {k: kinds(ctx, "kit.depth")[-1][k] for k in ("ready", "leased", "messages")} == \
        {"ready": 2, "leased": 0, "messages": 2}
    fresh.on_message(ctx, "d", DepthQuery(5))
    assert sent_of(ctx, Depth)[-1] == ("d", Depth(5, 2))


def test_size_of_counts_units_and_fields_of_tags_lease_records():
    """size_of makes depths and records count units (emails in a batch); fields_of adds record fields."""
    node, ctx = started(size_of=lambda m: 10, fields_of=lambda m: {"attempt": 3})
    node.on_message(ctx, "p", Enqueue(Msg("a")))
    node.on_message(ctx, "w1", Pull(1))
    rec = kinds(ctx, "kit.lease")[0]
    assert (rec["n"], rec["attempt"], rec["receives"], node.leased_n) == (10, 3, 1, 10)


def test_a_graph_call_enqueues_a_job_keyed_by_its_idempotency_key():
    """A route's Call is stored as a Job and answered ok; a retry with the same key is not stored twice."""
    node, ctx = started()
    node.on_message(ctx, "api-1", Call(1, "resize", "k1", (), "c1:7", None))
    node.on_message(ctx, "api-2", Call(9, "resize", "k1", (), "c1:7", None))
    assert [m for _, m in sent_of(ctx, Reply)] == [Reply(1, True, None), Reply(9, True, None)]
    assert Queue.pending(ctx.storage.snapshot()) == [Job("c1:7", "resize", "k1", "c1:7", None, 0)]


# ---- the worker -------------------------------------------------------------------------------
def worker(calls=("db:write",), slots=1):
    spec = QueueSpec("jobs", partitions=2, workers=1, worker_slots=slots, visibility_timeout_ms=900.0,
                     long_poll_ms=500.0, service_ms={"*": Dist("constant", 5.0)}, calls=tuple(calls))
    d = Directory({"jobs": spec.partition_ids(), "db": ["db"]})
    node, ctx = QueueWorker(spec, d), FakeContext("jobs-w1")
    node.on_start(ctx)
    return node, ctx


def test_a_worker_polls_while_it_has_free_slots():
    """A worker with one slot keeps one pull out; with two slots it polls both partitions."""
    _, ctx = worker(slots=1)
    assert [d for d, _ in sent_of(ctx, Pull)] == ["jobs-1"]
    _, ctx = worker(slots=2)
    assert sorted(d for d, _ in sent_of(ctx, Pull)) == ["jobs-1", "jobs-2"]


def test_a_worker_works_a_job_calls_downstream_then_acks():
    """A leased job takes its service time, its calls carry the job's key and idempotency key, then it is acked."""
    node, ctx = worker()
    job = Job("c1:7", "resize", "k1", "c1:7", None, 0)
    node.on_message(ctx, "jobs-1", Leased(1, job, 42))
    ctx.advance(5)
    node.on_timer(ctx, "kit.cpu.0")
    call = sent_of(ctx, Call)[0]
    assert call[0] == "db" and (call[1].op, call[1].key, call[1].idem) == ("write", "k1", "c1:7")
    node.on_message(ctx, "db", Reply(call[1].rid, True, 1))
    assert sent_of(ctx, Ack) == [("jobs-1", Ack("c1:7"))]
    _t, _node, comp, _op, ok, _queue, _wait, service_ns, total_ns = ctx.tables["kit.served"][0]
    assert (comp, ok, service_ns, total_ns) == ("jobs", True, 5_000_000, 5_000_000)


def test_a_worker_extends_its_leases_and_lets_a_failed_job_expire():
    """While working, the worker extends its lease; a job whose call fails is not acked."""
    node, ctx = worker()
    node.on_message(ctx, "jobs-2", Leased(1, Job("j", "x", None, None, None, 0), 42))
    node.on_timer(ctx, "kit.queue.extend")
    assert sent_of(ctx, Extend) == [("jobs-2", Extend("j", 42))]
    node.on_timer(ctx, "kit.cpu.0")
    rid = sent_of(ctx, Call)[0][1].rid
    node.on_message(ctx, "db", Reply(rid, False, "overloaded"))  # the caller retries once
    ctx.advance(1000)
    node.on_timer(ctx, "kit.calls")
    rid = sent_of(ctx, Call)[-1][1].rid
    node.on_message(ctx, "db", Reply(rid, False, "overloaded"))
    assert not sent_of(ctx, Ack) and not node.active
    assert ctx.tables["kit.served"][-1][4] is False  # ok


# ---- in a TOML graph ----------------------------------------------------------------------------
COMPONENTS = {
    "api": {"kind": "service", "service_ms": "exponential:1"},
    "jobs": {"kind": "queue", "partitions": 2, "workers": 3, "service_ms": "exponential:5", "calls": ["db:write"]},
    "db": {"kind": "database"},
}


def test_a_graph_queue_adds_partitions_and_workers():
    """A queue component adds its partitions (what callers reach) and its workers, and calls its workers' hops."""
    d = parse(COMPONENTS, [{"name": "submit", "path": ["api", "jobs"]}])
    assert d.servers()[1:6] == ["jobs-1", "jobs-2", "jobs-w1", "jobs-w2", "jobs-w3"]
    assert d.directory().of("jobs") == ["jobs-1", "jobs-2"]
    assert ("jobs", "db", "") in d.edges() and d.layers()["db"] == 2


@pytest.mark.parametrize("routes, components, words", [
    ([{"name": "r", "path": ["jobs", "db:write"]}], COMPONENTS, "'jobs' is a queue and must be the last hop"),
    ([{"name": "r", "path": ["jobs"]}], {**COMPONENTS, "jobs": {**COMPONENTS["jobs"], "calls": ["nope"]}},
     "calls 'nope', which is not a component"),
    ([{"name": "r", "path": ["jobs"]}], {**COMPONENTS, "jobs": {**COMPONENTS["jobs"], "workers": -1}},
     "bad value -1 for workers"),
    ([{"name": "r", "path": ["jobs"]}], {**COMPONENTS, "jobs": {**COMPONENTS["jobs"], "lanes": 2}},
     "unknown key 'lanes' for a queue"),
])
def test_a_bad_queue_design_is_named_in_one_line(routes, components, words):
    """A queue in the middle of a route, a worker call to nothing, or a bad key is a UsageError naming it."""
    with pytest.raises(UsageError, match=words):
        parse(components, routes)


def test_a_standing_pull_takes_messages_up_to_its_credit_and_then_ends():
    """A pull with credit 3 takes what is ready, stays parked for more, and is done after the third."""
    node, ctx = started()
    node.on_message(ctx, "p", Enqueue(Msg("a")))
    node.on_message(ctx, "w1", Pull(1, True, 3))
    assert node.parked["w1"] == (1, True, 2)
    node.on_message(ctx, "p", Enqueue(Msg("b")))
    node.on_message(ctx, "p", Enqueue(Msg("c")))
    node.on_message(ctx, "p", Enqueue(Msg("d")))
    assert [(dst, m.pull_id, m.msg.msg_id) for dst, m in sent_of(ctx, Leased)] == \
        [("w1", 1, "a"), ("w1", 1, "b"), ("w1", 1, "c")]
    assert "w1" not in node.parked and list(node.ready_lo) == ["d"]
    wake(node, ctx, 500)
    assert not sent_of(ctx, Empty)  # a poll that spent its credit has nothing left to end


def test_standing_pulls_take_turns_and_end_with_empty_when_the_long_poll_is_up():
    """Two standing pulls share arrivals in turn; each is answered Empty when its poll's time runs out."""
    node, ctx = started()
    node.on_message(ctx, "w1", Pull(1, True, 10))
    node.on_message(ctx, "w2", Pull(7, True, 10))
    for mid in "abcd":
        node.on_message(ctx, "p", Enqueue(Msg(mid)))
    assert [(dst, m.msg.msg_id) for dst, m in sent_of(ctx, Leased)] == \
        [("w1", "a"), ("w2", "b"), ("w1", "c"), ("w2", "d")]
    wake(node, ctx, 500)
    assert sorted((dst, m.pull_id) for dst, m in sent_of(ctx, Empty)) == [("w1", 1), ("w2", 7)]
    assert not node.parked


def test_a_wake_grid_lets_a_lease_end_late_by_at_most_one_step():
    """With a 100 ms grid a lease taken at 30 ms with a 1 s timeout expires at 1.1 s, not 1.03 s."""
    node, ctx = started(wake_grid_ms=100.0)
    node.on_message(ctx, "p", Enqueue(Msg("a")))
    ctx.advance(30)
    node.on_message(ctx, "w1", Pull(1))
    wake(node, ctx, 1000)  # 1.03 s: the exact end has passed, the grid's has not
    assert not node.ready_lo and not kinds(ctx, "kit.redeliver")
    wake(node, ctx, 70)
    assert list(node.ready_lo) == ["a"] and len(kinds(ctx, "kit.redeliver")) == 1


def test_without_record_each_a_message_leaves_no_enqueue_lease_or_ack_record():
    """record_each False drops the three per-message records but keeps redeliveries."""
    node, ctx = started(record_each=False)
    for mid in "ab":
        node.on_message(ctx, "p", Enqueue(Msg(mid)))
    node.on_message(ctx, "w1", Pull(1))
    node.on_message(ctx, "w1", Ack("a"))
    node.on_message(ctx, "w1", Pull(2))
    wake(node, ctx, 1000)
    assert not kinds(ctx, "kit.enqueue") and not kinds(ctx, "kit.lease") and not kinds(ctx, "kit.ack")
    assert len(kinds(ctx, "kit.redeliver")) == 1 and "m/a" not in ctx.storage.snapshot()
