"""Stories of one Service instance, told through a FakeContext (its host's core queue is the
runtime's, so queueing stories run on a Simulation)."""

from __future__ import annotations

from simulator import Dist, FakeContext
from simulator.engine.kernel import Simulation
from simulator.engine.node import Node
from simulator.kit.caller import RetryPolicy
from simulator.kit.directory import Directory
from simulator.kit.messages import SERVED, Call, Probe, ProbeReply, Reply
from simulator.kit.service import Service, ServiceSpec


def fire(node, ctx, name):
    ctx.advance(ctx.timers.pop(name))
    node.on_timer(ctx, name)


def serve(node, ctx, src, call):
    """What the host does for a call that finds a core free: price it, let the time pass, hand over the job."""
    arrived = ctx.now
    ctx.advance(node.cost_ns(ctx, src, call) / 1e6)
    node.on_job(ctx, src, call, arrived, arrived, 0)


class Sink(Node):
    def __init__(self, got):
        self.got = got

    def on_message(self, ctx, src, msg):
        self.got.append((ctx.now / 1e6, msg))


def on_a_host(svc, calls, latency_ms=1.0):
    """Run ``svc`` as host app-1 with calls sent by c1 at 0 ms; (arrival ms, reply) at c1, the records
    and the tables of rows."""
    sim = Simulation(1, latency=Dist("constant", latency_ms))
    got = []
    sim.add_node("app-1", lambda: svc)
    sim.add_node("c1", lambda: Sink(got))
    sim.at(0, lambda a, b: [sim.network.send("c1", "app-1", c) for c in calls])
    sim.run(1_000_000_000)
    return got, sim.records, sim.tables


def make(cores=1, queue_limit=100, calls=(), parallel=False, retry=RetryPolicy()):
    d = Directory({"app": ["app-1"], "db": ["db"], "auth": ["auth-1"], "cache": ["cache-1"]})
    spec = ServiceSpec("app", cores=cores, service_ms={"*": Dist("constant", 5.0), "slow": Dist("constant", 50.0)},
                       queue_limit=queue_limit, calls=tuple(calls), parallel=parallel, retry=retry)
    return Service(spec, d), FakeContext("app-1")


def test_a_call_is_answered_after_its_service_time():
    """A call takes a core for its operation's service time, then the service answers ok and records it."""
    svc, ctx = make()
    assert svc.cost_ns(ctx, "c1", Call(7, "get")) == 5_000_000
    serve(svc, ctx, "c1", Call(7, "get"))
    assert ctx.sent == [("c1", Reply(7, True, None))]
    (row,) = ctx.tables["kit.served"]
    assert row[:2] == (5_000_000, "app-1")  # the true time it was answered, and the instance
    assert dict(zip(SERVED, row[2:])) == {"comp": "app", "op": "get", "ok": True, "queue": 0, "wait_ns": 0,
                                             "service_ns": 5_000_000, "total_ns": 5_000_000}


def test_service_time_is_per_operation():
    """An operation with its own distribution takes its own time; others take the '*' one."""
    svc, ctx = make(cores=2)
    assert [svc.cost_ns(ctx, "c1", Call(1, op)) for op in ("slow", "get")] == [50_000_000, 5_000_000]


def test_replies_and_probes_are_not_priced():
    """Only calls take a core: a downstream's reply and a health probe are handled at once."""
    svc, ctx = make()
    assert svc.cost_ns(ctx, "db", Reply(1, True)) is None and svc.cost_ns(ctx, "lb", Probe(3)) is None
    svc.on_message(ctx, "lb", Probe(3))
    assert ctx.sent == [("lb", ProbeReply(3))]


def test_with_one_core_later_calls_wait_in_the_queue():
    """While the only core is busy later calls queue FIFO; each records the calls waiting ahead of
    it at arrival and the wait it had."""
    svc, _ = make()
    got, _, tables = on_a_host(svc, [Call(rid, "get") for rid in (1, 2, 3)])
    served = [dict(zip(SERVED, row[2:])) for row in tables["kit.served"]]
    assert [(r["queue"], r["wait_ns"] / 1e6) for r in served] == [(0, 0.0), (0, 5.0), (1, 10.0)]
    assert [(t, m.rid) for t, m in got] == [(7.0, 1), (12.0, 2), (17.0, 3)]


def test_a_full_queue_refuses_with_overloaded():
    """Past queue_limit waiting calls, an arrival is refused at once and the drop is recorded."""
    svc, _ = make(queue_limit=1)
    got, records, _ = on_a_host(svc, [Call(rid, "get") for rid in (1, 2, 3)])
    assert got[0] == (2.0, Reply(3, False, "overloaded"))
    assert [r["reason"] for r in records if r["kind"] == "kit.drop"] == ["overloaded"]


def test_the_next_hop_of_the_route_is_called_and_its_answer_passed_back():
    """With hops left on the route, the service calls the next one after its service time and
    answers with the downstream's value once it replies."""
    svc, ctx = make()
    serve(svc, ctx, "lb", Call(3, "get", key="k1", rest=("db:read",), idem="c1:0"))
    (dst, call), = ctx.take_sent()
    assert dst == "db" and (call.op, call.key, call.rest, call.idem) == ("read", "k1", (), "c1:0")
    svc.on_message(ctx, "db", Reply(call.rid, True, "v9"))
    assert ctx.sent == [("lb", Reply(3, True, "v9"))]


def test_sequential_calls_go_one_after_the_other():
    """Without parallel, the second downstream is called only once the first has answered."""
    svc, ctx = make(calls=["auth", "db:read"])
    serve(svc, ctx, "lb", Call(1, "get"))
    (dst, first), = ctx.take_sent()
    assert dst == "auth-1"
    svc.on_message(ctx, dst, Reply(first.rid, True))
    (dst2, _), = ctx.take_sent()
    assert dst2 == "db"


def test_parallel_calls_go_at_once_and_one_failure_fails_the_request():
    """With parallel, all downstreams are called together; the answer waits for all and carries
    the first failure."""
    svc, ctx = make(calls=["auth", "cache"], parallel=True)
    serve(svc, ctx, "lb", Call(1, "get"))
    out = ctx.take_sent()
    assert sorted(d for d, _ in out) == ["auth-1", "cache-1"]
    svc.on_message(ctx, out[0][0], Reply(out[0][1].rid, False, "rate-limited"))
    assert ctx.sent == []
    svc.on_message(ctx, out[1][0], Reply(out[1][1].rid, True))
    assert ctx.sent == [("lb", Reply(1, False, "rate-limited"))]


def test_a_downstream_timeout_is_answered_as_a_gateway_timeout():
    """When the downstream never answers, the service gives up after its timeout and answers
    'gateway-timeout', so the client can tell it from its own timeout."""
    svc, ctx = make(calls=["db:read"], retry=RetryPolicy(timeout_ms=100.0, retries=0))
    serve(svc, ctx, "lb", Call(1, "get"))
    ctx.take_sent()
    fire(svc, ctx, "kit.calls")
    assert ctx.sent == [("lb", Reply(1, False, "gateway-timeout"))]


def test_a_subclass_that_overrides_after_service_still_gets_the_job():
    """A subclass with its own work after service (as the cache design's App has) is handed
    every job once its service time is over."""

    class Echo(Service):
        def _after_service(self, ctx, job):
            self._answer(ctx, job, True, ("echo", job.call.op))

    d = Directory({"app": ["app-1"]})
    node = Echo(ServiceSpec("app", service_ms={"*": Dist("constant", 5.0)}), d)
    ctx = FakeContext("app-1")
    serve(node, ctx, "c1", Call(4, "get"))
    assert ctx.sent == [("c1", Reply(4, True, ("echo", "get")))]


def test_a_subclass_that_overrides_after_service_sees_every_job_a_leaf_one_included():
    """A leaf job (no hop to call) is answered as its service time ends, unless a subclass
    overrides _after_service: then the hook gets it, and answers it through _answer."""
    seen = []

    class Hooked(Service):
        def _after_service(self, ctx, job):
            seen.append(job.call.rid)
            self._answer(ctx, job, True, "from the hook")

    d = Directory({"app": ["app-1"]})
    spec = ServiceSpec("app", service_ms={"*": Dist("constant", 5.0)})
    plain, hooked = Service(spec, d), Hooked(spec, d)
    for svc in (plain, hooked):
        ctx = FakeContext("app-1")
        serve(svc, ctx, "c1", Call(3, "get"))
        (row,) = ctx.tables["kit.served"]
        assert dict(zip(SERVED, row[2:]))["total_ns"] == 5_000_000
        assert ctx.sent == [("c1", Reply(3, True, None if svc is plain else "from the hook"))]
    assert seen == [3]
