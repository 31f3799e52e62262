"""Stories of the Database: writes, replication (async with lag, sync), idempotency, reads by
policy, and the router's failover."""

from __future__ import annotations

from simulator import Dist, FakeContext
from simulator.kit.database import DatabaseSpec, DbNode, DbRouter, ReplAck, Replicate, Role, RoleAck, SyncReq
from simulator.kit.messages import Call, Reply


def fire(node, ctx, name):
    ctx.advance(ctx.timers.pop(name))
    node.on_timer(ctx, name)


def deliver(node, ctx, src, msg):
    """What the host does with a message: a call the node prices waits its service time and then
    runs as a job (here on an idle core); anything else is handled at once."""
    cost = node.cost_ns(ctx, src, msg)
    if cost is None:
        node.on_message(ctx, src, msg)
        return
    arrived = ctx.now
    ctx.advance(cost / 1e6)
    node.on_job(ctx, src, msg, arrived, arrived, 0)


SERVICE = {"read": Dist("constant", 1.0), "write": Dist("constant", 2.0)}


def primary(replication="async", lag="constant:20"):
    spec = DatabaseSpec("db", replicas=2, service_ms=SERVICE, replication=replication, lag_ms=Dist.parse(lag))
    node, ctx = DbNode(spec, "db"), FakeContext("db-0")
    node.on_start(ctx)
    node.on_message(ctx, "db", Role(1, "db-0", ("db-0", "db-1", "db-2")))
    ctx.take_sent()
    return node, ctx


def replica(node_id="db-1"):
    spec = DatabaseSpec("db", replicas=2, service_ms=SERVICE)
    node, ctx = DbNode(spec, "db"), FakeContext(node_id)
    node.on_start(ctx)
    node.on_message(ctx, "db", Role(1, "db-0", ("db-0", "db-1", "db-2")))
    ctx.take_sent()
    return node, ctx


def test_an_async_write_is_durable_and_acknowledged_at_once_then_shipped_after_the_lag():
    """An async write is synced to disk and acknowledged after its service time; replicas get it
    only once the replication lag has passed."""
    db, ctx = primary()
    deliver(db, ctx, "db", Call(1, "write", key="k1", idem="c1:0"))
    assert ctx.take_sent() == [("db", Reply(1, True, 1))]
    assert ctx.storage.fsyncs >= 1 and ctx.storage.get("log/1") == ("k1", "c1:0", 1)
    assert ctx.timers["kit.db.ship"] == 20.0
    fire(db, ctx, "kit.db.ship")
    assert sorted(d for d, m in ctx.sent if type(m) is Replicate) == ["db-1", "db-2"]


def test_a_sync_write_waits_for_every_live_replica():
    """A sync write is acknowledged only once every live replica has acknowledged it."""
    db, ctx = primary("sync")
    deliver(db, ctx, "db", Call(1, "write", key="k1", idem="a"))
    assert sorted(d for d, m in ctx.take_sent() if type(m) is Replicate) == ["db-1", "db-2"]
    db.on_message(ctx, "db-1", ReplAck(1, 1))
    assert ctx.sent == []
    db.on_message(ctx, "db-2", ReplAck(1, 1))
    assert ctx.sent == [("db", Reply(1, True, 1))]


def test_a_retried_write_with_the_same_idempotency_key_is_stored_once():
    """A write retried with the same idempotency key is acknowledged without a second log entry."""
    db, ctx = primary()
    for rid in (1, 2):
        deliver(db, ctx, "db", Call(rid, "write", key="k1", idem="c1:0"))
    assert len(db.log) == 1
    assert [m for _, m in ctx.sent if type(m) is Reply] == [Reply(1, True, 1), Reply(2, True, 1)]


def test_a_replica_refuses_writes_and_serves_reads():
    """A replica answers a write 'not-primary' and a read from its own copy."""
    r, ctx = replica()
    deliver(r, ctx, "db", Call(1, "write", key="k"))
    assert ctx.take_sent() == [("db", Reply(1, False, "not-primary"))]
    r.on_message(ctx, "db-0", Replicate(1, 1, (("k", "w1", 1),)))
    ctx.take_sent()
    deliver(r, ctx, "db", Call(2, "read", key="k"))
    assert ctx.sent == [("db", Reply(2, True, "w1"))]


def test_a_replica_applies_reordered_replication_in_log_order():
    """Entries that arrive before their predecessors wait, and are applied once the gap closes."""
    r, ctx = replica()
    r.on_message(ctx, "db-0", Replicate(1, 2, (("b", "w2", 1),)))
    assert r.log == [] and ctx.take_sent() == []
    r.on_message(ctx, "db-0", Replicate(1, 1, (("a", "w1", 1),)))
    assert [e[1] for e in r.log] == ["w1", "w2"]
    assert ctx.sent == [("db-0", ReplAck(1, 2))]


def test_a_replica_applies_in_order_replication_at_once_and_ignores_a_repeat():
    """Entries that arrive in order are applied at once and acknowledged; a repeat of entries
    already applied changes nothing and is not acknowledged again."""
    r, ctx = replica()
    r.on_message(ctx, "db-0", Replicate(1, 1, (("a", "w1", 1),)))
    r.on_message(ctx, "db-0", Replicate(1, 2, (("b", "w2", 1), ("a", "w3", 1))))
    assert [e[1] for e in r.log] == ["w1", "w2", "w3"] and r.kv == {"a": "w3", "b": "w2"}
    assert ctx.take_sent() == [("db-0", ReplAck(1, 1)), ("db-0", ReplAck(1, 3))]
    r.on_message(ctx, "db-0", Replicate(1, 2, (("b", "w2", 1),)))
    assert len(r.log) == 3 and ctx.take_sent() == [] and not r.ahead


def test_a_demoted_or_restarted_node_resyncs_and_drops_entries_the_new_primary_lacks():
    """A node that learns of a new epoch as a replica asks the primary for its whole log, and the
    snapshot replaces its own (entries only it had are gone)."""
    old, ctx = primary()
    deliver(old, ctx, "db", Call(1, "write", key="k", idem="lost"))
    ctx.take_sent()
    old.on_message(ctx, "db", Role(2, "db-1", ("db-0", "db-1")))
    assert ("db-1", SyncReq(2)) in ctx.take_sent()
    from simulator.kit.database import Snapshot
    old.on_message(ctx, "db-1", Snapshot(2, (("j", "kept", 2),)))
    assert [e[1] for e in old.log] == ["kept"] and old.role == "replica"


def test_the_router_promotes_the_replica_with_the_longest_log_after_the_detection_delay():
    """When the primary has been silent for detect_ms, the router promotes the live replica that
    reported the longest log, in a new epoch, and tells every node."""
    spec = DatabaseSpec("db", replicas=2, detect_ms=1000.0, heartbeat_ms=200.0)
    router, ctx = DbRouter(spec), FakeContext("db")
    router.on_start(ctx)
    for _ in range(6):  # 1.2 s: only the replicas answer
        ctx.take_sent()
        router.on_message(ctx, "db-1", RoleAck(1, 5))
        router.on_message(ctx, "db-2", RoleAck(1, 7))
        fire(router, ctx, "kit.db.hb")
    fo = [r for r in ctx.records if r["kind"] == "kit.failover"]
    assert [(r["frm"], r["to"], r["epoch"]) for r in fo] == [("db-0", "db-2", 2)]
    roles = [m for _, m in ctx.sent if type(m) is Role]
    assert roles and all(m.primary == "db-2" and m.epoch == 2 for m in roles)


def test_the_router_sends_writes_to_the_primary_and_reads_by_policy():
    """Writes go to the primary; with read_from = replica, reads go round-robin to live replicas."""
    spec = DatabaseSpec("db", replicas=2, read_from="replica")
    router, ctx = DbRouter(spec), FakeContext("db")
    router.on_start(ctx)
    ctx.take_sent()
    router.on_message(ctx, "app-1", Call(1, "write", key="k", idem="x"))
    reads = []
    for rid in range(2, 6):
        router.on_message(ctx, "app-1", Call(rid, "read", key="k"))
    sent = ctx.take_sent()
    assert sent[0][0] == "db-0"
    reads = [d for d, _ in sent[1:]]
    assert sorted(set(reads)) == ["db-1", "db-2"] and reads[0] != reads[1]
    router.on_message(ctx, "db-1", Reply(sent[1][1].rid, True, "v"))
    assert ctx.sent == [("app-1", Reply(2, True, "v"))]


def test_a_router_restarting_after_a_failover_keeps_the_new_primary():
    """The router keeps epoch and primary on disk: rebuilt after a crash, it still names the promoted node."""
    spec = DatabaseSpec("db", replicas=2, detect_ms=1000.0, heartbeat_ms=200.0)
    router, ctx = DbRouter(spec), FakeContext("db")
    router.on_start(ctx)
    for _ in range(6):
        router.on_message(ctx, "db-1", RoleAck(1, 5))
        router.on_message(ctx, "db-2", RoleAck(1, 3))
        fire(router, ctx, "kit.db.hb")
    reborn = DbRouter(spec)
    ctx.take_sent()
    reborn.on_start(ctx)
    assert (reborn.epoch, reborn.primary) == (2, "db-1")
    assert {m.primary for _, m in ctx.sent if type(m) is Role} == {"db-1"}


def test_a_node_prices_calls_it_serves_and_refuses_overload_in_words():
    """Calls a node will serve are priced by operation and queue on its cores (the host's); a
    write reaching a replica is answered at once; a call the full queue turns away is answered
    "overloaded" and counted as a drop."""
    db, ctx = primary()
    assert db.cost_ns(ctx, "db", Call(1, "read", key="k")) == 1_000_000
    assert db.cost_ns(ctx, "db", Call(2, "write", key="k")) == 2_000_000
    assert db.cost_ns(ctx, "db-1", ReplAck(1, 0)) is None
    r, rctx = replica()
    assert r.cost_ns(rctx, "db", Call(3, "write", key="k")) is None
    db.on_refused(ctx, "db", Call(4, "read", key="k"))
    assert ctx.take_sent() == [("db", Reply(4, False, "overloaded"))]
    assert [(x["kind"], x["reason"]) for x in ctx.records] == [("kit.drop", "overloaded")]
