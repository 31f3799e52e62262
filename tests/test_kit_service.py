"""Stories of one Service instance, told through a FakeContext."""

from __future__ import annotations

from simulator import Dist, FakeContext
from simulator.kit.caller import RetryPolicy
from simulator.kit.directory import Directory
from simulator.kit.messages import Call, Reply
from simulator.kit.service import Service, ServiceSpec


def fire(node, ctx, name):
    ctx.advance(ctx.timers.pop(name))
    node.on_timer(ctx, name)


def cpu_timers(ctx):
    return sorted((n for n in ctx.timers if n.startswith("kit.cpu.")), key=lambda n: int(n.rsplit(".", 1)[1]))


def make(cores=1, queue_limit=100, calls=(), parallel=False, retry=RetryPolicy()):
    d = Directory({"app": ["app-1"], "db": ["db"], "auth": ["auth-1"], "cache": ["cache-1"]})
    spec = ServiceSpec("app", cores=cores, service_ms={"*": Dist("constant", 5.0), "slow": Dist("constant", 50.0)},
                       queue_limit=queue_limit, calls=tuple(calls), parallel=parallel, retry=retry)
    return Service(spec, d), FakeContext("app-1")


def test_a_call_is_answered_after_its_service_time():
    """A call takes a core for its operation's service time, then the service answers ok and records it."""
    svc, ctx = make()
    svc.on_message(ctx, "c1", Call(7, "get"))
    assert ctx.sent == [] and list(ctx.timers.values()) == [5.0]
    fire(svc, ctx, cpu_timers(ctx)[0])
    assert ctx.sent == [("c1", Reply(7, True, None))]
    rec = [r for r in ctx.records if r["kind"] == "kit.served"][0]
    assert (rec["wait_ms"], rec["service_ms"], rec["total_ms"], rec["queue"]) == (0.0, 5.0, 5.0, 0)


def test_service_time_is_per_operation():
    """An operation with its own distribution takes its own time; others take the '*' one."""
    svc, ctx = make(cores=2)
    svc.on_message(ctx, "c1", Call(1, "slow"))
    svc.on_message(ctx, "c1", Call(2, "get"))
    assert sorted(ctx.timers.values()) == [5.0, 50.0]


def test_with_one_core_later_calls_wait_in_the_queue():
    """While the only core is busy later calls queue FIFO; each records the calls waiting ahead of
    it at arrival and the wait it had."""
    svc, ctx = make()
    for rid, src in ((1, "c1"), (2, "c2"), (3, "c3")):
        svc.on_message(ctx, src, Call(rid, "get"))
    assert len(cpu_timers(ctx)) == 1 and len(svc.cpu.queue) == 2
    for _ in range(3):
        fire(svc, ctx, cpu_timers(ctx)[0])
    served = [r for r in ctx.records if r["kind"] == "kit.served"]
    assert [(r["queue"], r["wait_ms"]) for r in served] == [(0, 0.0), (0, 5.0), (1, 10.0)]
    assert [dst for dst, _ in ctx.sent] == ["c1", "c2", "c3"]


def test_a_full_queue_refuses_with_overloaded():
    """Past queue_limit waiting calls, an arrival is refused at once and the drop is recorded."""
    svc, ctx = make(queue_limit=1)
    for rid in (1, 2, 3):
        svc.on_message(ctx, "c1", Call(rid, "get"))
    assert ctx.sent == [("c1", Reply(3, False, "overloaded"))]
    assert [r["reason"] for r in ctx.records if r["kind"] == "kit.drop"] == ["overloaded"]


def test_the_next_hop_of_the_route_is_called_and_its_answer_passed_back():
    """With hops left on the route, the service calls the next one after its service time and
    answers with the downstream's value once it replies."""
    svc, ctx = make()
    svc.on_message(ctx, "lb", Call(3, "get", key="k1", rest=("db:read",), idem="c1:0"))
    fire(svc, ctx, cpu_timers(ctx)[0])
    (dst, call), = ctx.take_sent()
    assert dst == "db" and (call.op, call.key, call.rest, call.idem) == ("read", "k1", (), "c1:0")
    svc.on_message(ctx, "db", Reply(call.rid, True, "v9"))
    assert ctx.sent == [("lb", Reply(3, True, "v9"))]


def test_sequential_calls_go_one_after_the_other():
    """Without parallel, the second downstream is called only once the first has answered."""
    svc, ctx = make(calls=["auth", "db:read"])
    svc.on_message(ctx, "lb", Call(1, "get"))
    fire(svc, ctx, cpu_timers(ctx)[0])
    (dst, first), = ctx.take_sent()
    assert dst == "auth-1"
    svc.on_message(ctx, dst, Reply(first.rid, True))
    (dst2, _), = ctx.take_sent()
    assert dst2 == "db"


def test_parallel_calls_go_at_once_and_one_failure_fails_the_request():
    """With parallel, all downstreams are called together; the answer waits for all and carries
    the first failure."""
    svc, ctx = make(calls=["auth", "cache"], parallel=True)
    svc.on_message(ctx, "lb", Call(1, "get"))
    fire(svc, ctx, cpu_timers(ctx)[0])
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
    svc.on_message(ctx, "lb", Call(1, "get"))
    fire(svc, ctx, cpu_timers(ctx)[0])
    ctx.take_sent()
    fire(svc, ctx, "kit.calls")
    assert ctx.sent == [("lb", Reply(1, False, "gateway-timeout"))]


def test_a_subclass_that_overrides_after_service_still_gets_the_job():
    """A leaf Service answers from its CPU timer directly, but a subclass with its own work after
    service (as the cache design's App has) is handed every job instead."""

    class Echo(Service):
        def _after_service(self, ctx, job):
            self._answer(ctx, job, True, ("echo", job.call.op))

    d = Directory({"app": ["app-1"]})
    node = Echo(ServiceSpec("app", service_ms={"*": Dist("constant", 5.0)}), d)
    ctx = FakeContext("app-1")
    node.on_message(ctx, "c1", Call(4, "get"))
    fire(node, ctx, cpu_timers(ctx)[0])
    assert ctx.sent == [("c1", Reply(4, True, ("echo", "get")))]
