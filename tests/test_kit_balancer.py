"""Stories of a LoadBalancer: its policies, active health checks and outlier ejection."""

from __future__ import annotations

from collections import Counter

from simulator import FakeContext
from simulator.kit.balancer import BalancerSpec, HealthCheck, LoadBalancer, OutlierDetection
from simulator.kit.caller import RetryPolicy
from simulator.kit.directory import Directory
from simulator.kit.messages import Call, Probe, ProbeReply, Reply

APP = ["app-1", "app-2", "app-3", "app-4"]


def make(policy="round-robin", health=HealthCheck(interval_ms=0), outlier=OutlierDetection(consecutive_errors=0),
         retry=RetryPolicy(retries=0), seed=0):
    spec = BalancerSpec("lb", "app", policy=policy, health=health, outlier=outlier, retry=retry)
    lb = LoadBalancer(spec, Directory({"app": APP}))
    ctx = FakeContext("lb", seed=seed)
    lb.on_start(ctx)
    return lb, ctx


def send(lb, ctx, rid, key=None):
    lb.on_message(ctx, "c1", Call(rid, "*", key=key, rest=("app",)))
    return ctx.take_sent()[-1]


def test_round_robin_cycles_through_the_endpoints():
    """Round-robin sends consecutive requests to each endpoint in turn."""
    lb, ctx = make()
    dsts = [send(lb, ctx, i)[0] for i in range(8)]
    assert dsts[:4] == dsts[4:] and sorted(dsts[:4]) == APP


def test_random_spreads_requests_over_all_endpoints():
    """Random uses every endpoint, roughly evenly."""
    lb, ctx = make("random")
    counts = Counter(send(lb, ctx, i)[0] for i in range(400))
    assert sorted(counts) == APP and min(counts.values()) > 60


def test_least_outstanding_avoids_the_busy_endpoints():
    """With three endpoints holding a request each, least-outstanding picks the idle fourth."""
    lb, ctx = make("least-outstanding")
    first = {send(lb, ctx, i)[0] for i in range(3)}
    assert len(first) == 3
    assert send(lb, ctx, 9)[0] == (set(APP) - first).pop()


def test_p2c_picks_the_less_loaded_of_two_and_never_the_most_loaded():
    """Power of two choices: the endpoint with the most requests in flight is never chosen while
    the others are idle."""
    lb, ctx = make("p2c")
    lb.caller.inflight = {"app-1": 5}
    dsts = Counter(lb._pick(ctx, "app", "*", None, ()) for _ in range(200))
    assert "app-1" not in dsts and len(dsts) == 3


def test_ring_hash_keeps_a_key_on_one_endpoint_and_moves_only_an_ejected_endpoints_keys():
    """Consistent hashing sends a key to the same endpoint; removing one endpoint remaps only its keys."""
    lb, ctx = make("ring-hash")
    keys = [f"k{i}" for i in range(300)]
    before = {k: lb._pick(ctx, "app", "*", k, ()) for k in keys}
    assert before == {k: lb._pick(ctx, "app", "*", k, ()) for k in keys}
    assert len(set(before.values())) == 4
    lb.endpoints["app-2"].ejected = True
    after = {k: lb._pick(ctx, "app", "*", k, ()) for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert moved and all(before[k] == "app-2" for k in moved)


def test_the_answer_goes_back_to_the_caller():
    """The endpoint's reply is passed back to the client under the client's request id."""
    lb, ctx = make()
    dst, call = send(lb, ctx, 42)
    lb.on_message(ctx, dst, Reply(call.rid, True, "v"))
    assert ctx.sent == [("c1", Reply(42, True, "v"))]


def test_outlier_ejection_takes_an_endpoint_out_until_a_probe_succeeds():
    """After consecutive_errors failures an endpoint is ejected and gets no traffic; a health probe
    sent after the ejection that succeeds brings it back."""
    lb, ctx = make(health=HealthCheck(interval_ms=1000.0, timeout_ms=100.0),
                   outlier=OutlierDetection(consecutive_errors=2, max_ejection_share=0.5))
    for i in range(8):  # every request to app-1 fails
        dst, call = send(lb, ctx, i)
        lb.on_message(ctx, dst, Reply(call.rid, dst != "app-1", None if dst != "app-1" else "overloaded"))
    assert [r["endpoint"] for r in ctx.records if r["kind"] == "kit.eject"] == ["app-1"]
    assert "app-1" not in {send(lb, ctx, 100 + i)[0] for i in range(9)}
    ctx.advance(ctx.timers.pop("kit.hc")[1])
    lb.on_timer(ctx, "kit.hc")
    probes = ctx.take_sent()
    assert sorted(d for d, m in probes if type(m) is Probe) == APP
    lb.on_message(ctx, "app-1", ProbeReply(probes[0][1].seq))
    assert [r["endpoint"] for r in ctx.records if r["kind"] == "kit.uneject"] == ["app-1"]
    assert "app-1" in {send(lb, ctx, 200 + i)[0] for i in range(4)}


def test_ejection_stops_at_the_max_share():
    """With max_ejection_share 0.5 of four endpoints, a third failing endpoint stays in rotation."""
    lb, ctx = make(outlier=OutlierDetection(consecutive_errors=1, max_ejection_share=0.5))
    for e in APP[:3]:
        lb._observe(ctx, e, False, "timeout")
    assert [e for e in APP if lb.endpoints[e].ejected] == ["app-1", "app-2"]


def test_endpoints_failing_health_checks_leave_rotation_and_come_back_when_they_answer():
    """An endpoint that misses unhealthy_threshold probes in a row gets no traffic; one answered
    probe (healthy_threshold 1) returns it."""
    lb, ctx = make(health=HealthCheck(interval_ms=1000.0, timeout_ms=100.0, unhealthy_threshold=2))
    ctx.timers.pop("kit.hc")
    for _ in range(2):
        lb.on_timer(ctx, "kit.hc")
        for dst, m in ctx.take_sent():
            if dst != "app-3":
                lb.on_message(ctx, dst, ProbeReply(m.seq))
        lb.on_timer(ctx, "kit.hc.check")
    assert lb.available() == ["app-1", "app-2", "app-4"]
    lb.on_timer(ctx, "kit.hc")
    for dst, m in ctx.take_sent():
        lb.on_message(ctx, dst, ProbeReply(m.seq))
    assert lb.available() == APP
    assert [(r["endpoint"], r["healthy"]) for r in ctx.records if r["kind"] == "kit.health"] == \
        [("app-3", False), ("app-3", True)]


def test_with_no_endpoint_available_requests_fail_at_once():
    """When every endpoint is unhealthy the balancer answers 'no-endpoint' without sending anything."""
    lb, ctx = make()
    for ep in lb.endpoints.values():
        ep.healthy = False
    lb.on_message(ctx, "c1", Call(5, "*", rest=("app",)))
    assert ctx.sent == [("c1", Reply(5, False, "no-endpoint"))]


def test_a_balancer_with_a_proxy_cost_prices_its_calls_and_forwards_them_when_served():
    """With service_ms a balancer prices each call (its host queues it) and forwards it from
    on_job; probes and replies are free, and a balancer without a cost is not priced at all."""
    from simulator import Dist

    assert make()[0].cost_ns is None
    spec = BalancerSpec("lb", "app", service_ms={"*": Dist("constant", 0.2)}, health=HealthCheck(interval_ms=0))
    lb, ctx = LoadBalancer(spec, Directory({"app": APP})), FakeContext("lb")
    call = Call(1, "*", rest=("app",))
    assert lb.cost_ns(ctx, "c1", call) == 200_000 and lb.cost_ns(ctx, "app-1", Probe(1)) is None
    lb.on_job(ctx, "c1", call, 0, 0, 0)
    (dst, fwd), = ctx.take_sent()
    assert dst in APP and fwd.rid != 0
    lb.on_refused(ctx, "c2", Call(2, "*"))
    assert ctx.sent == [("c2", Reply(2, False, "overloaded"))]
