"""The reverse-proxy design: handler stories for the proxy (TLS, routing, pool, retries, health
checks, ejection) and the upstreams, its checkers on hand-made records, seeded runs of every
policy, the planted bugs, bad parameters and the policies figure."""

from __future__ import annotations

import pytest

from simulator import FakeContext, RunData, build_config, execute, get_scenario
from simulator.cli import main
from simulator.kit.balancer import POLICIES, HealthCheck, OutlierDetection
from simulator.kit.messages import Call, Probe, ProbeReply, Reply
from simulator.pipeline import scenario as registry
from scenarios.reverse_proxy import policies
from scenarios.reverse_proxy.proxy import Degrade, Proxy, ProxySpec, Rule, Upstream
from scenarios.reverse_proxy.scenario import ReverseProxy, exactly_once, no_traffic_to_ejected, out_periods

MS = 1_000_000
SPEC = ProxySpec(clusters={"api": ["a1", "a2"], "static": ["s1"]},
                 rules=(Rule("/api/", "api"), Rule("/static/", "static")), policy="round-robin",
                 keepalive_requests=3, connect_ms=1.0, per_try_timeout_ms=100.0, retries=2,
                 health=HealthCheck(interval_ms=0.0),
                 outlier=OutlierDetection(consecutive_errors=3, base_ejection_ms=1000.0))
P = {p.name: p.default for p in ReverseProxy.params}


def fire(node, ctx, name: str) -> None:
    """Let the timer ``name`` come due and run it."""
    delay = ctx.timers.pop(name)
    ctx.advance(delay if isinstance(delay, (int, float)) else delay[1])
    node.on_timer(ctx, name)


def request(px, ctx, op="GET /api/items", rid=1, client="c1", connect=True):
    """A client request through the proxy's CPU, and through a new upstream connection if one opens."""
    px.on_message(ctx, client, Call(rid, op, "k1", (), f"{client}:{rid}"))
    fire(px, ctx, "kit.cpu.0")
    if connect and "px.connect" in ctx.timers:
        fire(px, ctx, "px.connect")
    return ctx.take_sent()


def test_routing_by_path_prefix_picks_the_cluster_and_an_unmatched_path_is_a_404():
    """/api/ paths go to an api upstream, /static/ to a static one; a path no rule matches is
    answered not-found at once."""
    ctx, px = FakeContext("proxy-1"), Proxy(SPEC)
    (dst, call), = request(px, ctx, "GET /api/items", rid=1)
    assert dst in ("a1", "a2") and call.op == "GET /api/items" and call.idem == "c1:1"
    (dst, _), = request(px, ctx, "GET /static/assets", rid=2)
    assert dst == "s1"
    assert request(px, ctx, "GET /admin", rid=3) == [("c1", Reply(3, False, "not-found"))]


def test_the_first_request_of_a_connection_pays_the_tls_handshake_and_keepalive_requests_later_another():
    """The proxy CPU charges handshake + request time on a connection's first request and after
    every keepalive_requests requests, request time alone otherwise."""
    ctx, px = FakeContext("proxy-1"), Proxy(SPEC)
    costs = []
    for rid in range(4):
        px.on_message(ctx, "c1", Call(rid, "GET /api/items", "k1", (), f"c1:{rid}"))
        costs.append(ctx.timers["kit.cpu.0"])
        fire(px, ctx, "kit.cpu.0")
    assert costs == pytest.approx([1.05, 0.05, 0.05, 1.05])


def test_the_pool_opens_a_connection_once_and_reuses_it_when_idle():
    """The first request to an upstream waits connect_ms for a new connection; after its response
    the next request to that upstream leaves on the same connection at once."""
    spec = ProxySpec(clusters={"api": ["a1"]}, rules=(Rule("/api/", "api"),), health=HealthCheck(interval_ms=0.0))
    ctx, px = FakeContext("proxy-1"), Proxy(spec)
    px.on_message(ctx, "c1", Call(1, "GET /api/items", "k1", (), "c1:1"))
    fire(px, ctx, "kit.cpu.0")
    assert ctx.take_sent() == [] and ctx.timers["px.connect"] == pytest.approx(1.0)
    fire(px, ctx, "px.connect")
    (dst, call), = ctx.take_sent()
    px.on_message(ctx, "a1", Reply(call.rid, True, "a1"))
    assert ctx.take_sent() == [("c1", Reply(1, True, "a1"))]
    sent = request(px, ctx, rid=2, connect=False)
    assert [d for d, _ in sent] == ["a1"] and "px.connect" not in ctx.timers
    assert px.eps["a1"].open == 1


def test_a_full_pool_queues_the_request_until_a_connection_is_free():
    """With pool_max_conns=1 a second request waits in the pool and leaves when the first's
    response frees the connection."""
    spec = ProxySpec(clusters={"api": ["a1"]}, rules=(Rule("/api/", "api"),), pool_max_conns=1,
                     health=HealthCheck(interval_ms=0.0))
    ctx, px = FakeContext("proxy-1"), Proxy(spec)
    (_, first), = request(px, ctx, rid=1)
    assert request(px, ctx, rid=2) == []
    px.on_message(ctx, "a1", Reply(first.rid, True, "a1"))
    sent = ctx.take_sent()
    assert ("c1", Reply(1, True, "a1")) in sent
    assert [m.idem for d, m in sent if d == "a1"] == ["c1:2"]


@pytest.mark.parametrize("bug,attempts", [(None, 1), ("retry-non-idempotent", 3)])
def test_a_post_that_times_out_is_answered_504_and_only_the_bug_retries_it(bug, attempts):
    """A GET is retried after a per-try timeout; a POST is not (it may have taken effect) unless
    the retry-non-idempotent bug is planted."""
    ctx, px = FakeContext("proxy-1"), Proxy(SPEC, bug)
    sent = request(px, ctx, "POST /api/orders")
    for _ in range(3):
        ctx.advance(100)
        px.on_timer(ctx, "kit.calls")
        if "kit.calls" in ctx.timers and ctx.timers["kit.calls"] < 100:  # a retry's back-off
            fire(px, ctx, "kit.calls")
        if "px.connect" in ctx.timers:
            fire(px, ctx, "px.connect")
        sent += ctx.take_sent()
    to_upstreams = [m for d, m in sent if d != "c1"]
    assert len(to_upstreams) == attempts and {m.idem for m in to_upstreams} == {"c1:1"}
    if bug is None:
        assert ("c1", Reply(1, False, "gateway-timeout")) in sent


def test_a_get_is_retried_on_the_other_endpoint():
    """A GET whose first attempt fails 503 goes to the endpoint it has not tried yet."""
    ctx, px = FakeContext("proxy-1"), Proxy(SPEC)
    (first, call), = request(px, ctx)
    px.on_message(ctx, first, Reply(call.rid, False, "unavailable"))
    fire(px, ctx, "kit.calls")
    if "px.connect" in ctx.timers:
        fire(px, ctx, "px.connect")
    (second, _), = ctx.take_sent()
    assert {first, second} == {"a1", "a2"}


@pytest.mark.parametrize("bug,ejected", [(None, True), ("no-outlier-ejection", False)])
def test_consecutive_errors_eject_an_upstream_for_the_base_time_unless_the_bug_is_planted(bug, ejected):
    """consecutive_errors failed attempts in a row eject the endpoint for base_ejection_ms (its
    timer brings it back); with no-outlier-ejection it stays in rotation."""
    ctx, px = FakeContext("proxy-1"), Proxy(SPEC, bug)
    for _ in range(3):
        px._observe(ctx, "a1", False, "unavailable")
    assert px.eps["a1"].ejected is ejected and ("a1" in px.available("api")) is not ejected
    if ejected:
        assert ctx.timers["px.uneject.a1"] == 1000.0
        px.on_timer(ctx, "px.uneject.a1")
        assert px.available("api") == ["a1", "a2"]
        for _ in range(3):
            px._observe(ctx, "a1", False, "timeout")
        assert ctx.timers["px.uneject.a1"] == 2000.0  # the second ejection in a row lasts twice as long


@pytest.mark.parametrize("bug,healthy", [(None, False), ("health-check-ignores-timeout", True)])
def test_unanswered_probes_take_an_upstream_out_unless_the_check_ignores_timeouts(bug, healthy):
    """unhealthy_threshold probe rounds without an answer mark the endpoint unhealthy; the bug
    counts no answer as no failure, so a hung upstream stays in rotation."""
    spec = ProxySpec(clusters={"api": ["a1", "a2"]}, rules=(Rule("/api/", "api"),),
                     health=HealthCheck(interval_ms=500.0, timeout_ms=100.0, unhealthy_threshold=2,
                                        healthy_threshold=2))
    ctx, px = FakeContext("proxy-1"), Proxy(spec, bug)
    for _ in range(2):
        px.on_timer(ctx, "px.hc")
        for dst, probe in ctx.take_sent():
            if dst == "a2":
                px.on_message(ctx, "a2", ProbeReply(probe.seq))
        px.on_timer(ctx, "px.hc.deadline")
    assert px.eps["a1"].healthy is healthy and px.eps["a2"].healthy is True
    if not healthy:
        for _ in range(2):  # healthy_threshold answered rounds bring it back
            px.on_timer(ctx, "px.hc")
            for dst, probe in ctx.take_sent():
                px.on_message(ctx, dst, ProbeReply(probe.seq))
        assert px.eps["a1"].healthy is True


def test_the_degraded_upstream_goes_slow_then_errors_then_hangs_then_recovers():
    """Its phases follow the plan: slow service (probes answered), 503 at once, nothing at all
    (not even probes), then well again; a POST it serves records its effect."""
    d = Degrade(slow_at=10 * MS, errors_at=20 * MS, hang_at=30 * MS, recover_at=40 * MS, factor=50.0)
    up, ctx = Upstream(2.0, 1, d), FakeContext("api-1")
    up.on_message(ctx, "proxy-1", Call(1, "POST /api/orders", None, (), "c1:1"))
    fire(up, ctx, "kit.cpu.0")
    assert ctx.take_sent() == [("proxy-1", Reply(1, True, "api-1"))]
    assert [r["idem"] for r in ctx.records if r["kind"] == "px.effect"] == ["c1:1"]
    ctx._now = 10 * MS
    up.on_message(ctx, "proxy-1", Call(2, "GET /api/items", None, (), "c1:2"))
    assert up.cpu.running[0][1] == "slow"
    up.on_message(ctx, "proxy-1", Probe(1))
    assert ctx.take_sent() == [("proxy-1", ProbeReply(1))]
    ctx._now = 20 * MS
    up.on_message(ctx, "proxy-1", Call(3, "GET /api/items", None, (), "c1:3"))
    assert ctx.take_sent() == [("proxy-1", Reply(3, False, "unavailable"))]
    ctx._now = 30 * MS
    up.on_message(ctx, "proxy-1", Probe(2))
    up.on_timer(ctx, "kit.cpu.0")  # the slow GET finishes while hung: no answer
    assert ctx.take_sent() == []
    ctx._now = 40 * MS
    up.on_message(ctx, "proxy-1", Probe(3))
    assert ctx.take_sent() == [("proxy-1", ProbeReply(3))]


def run_of(records, **params) -> RunData:
    cfg = build_config(get_scenario("reverse-proxy"), seed=1, sets={k: str(v) for k, v in params.items()})
    return RunData(cfg=cfg, history=[], records=records, faults=[], exposed={}, end_ns=22_000 * MS, heal_ns=20_000 * MS,
                   network={})


def rec(t_ms, kind, node="proxy-1", **f):
    return {"time_ns": int(t_ms * MS), "node": node, "kind": kind, **f}


def test_a_send_to_an_ejected_upstream_after_the_straggler_bound_is_caught_and_one_before_it_is_not():
    """no-traffic-to-ejected allows per_try_timeout + connect_ms after an ejection for requests the
    pool already held, and fails a send after that while the upstream is still out."""
    base = [rec(1000, "px.eject", up="api-2"), rec(1050, "px.send", up="api-2"), rec(3000, "px.uneject", up="api-2"),
            rec(3500, "px.send", up="api-2")]
    p = {**P, "degraded": "none"}
    assert out_periods(base) == {("proxy-1", "api-2"): [(1000 * MS, 3000 * MS)]}
    assert no_traffic_to_ejected(run_of(base, degraded="none"), p).valid is True
    late = base + [rec(1200, "px.send", up="api-2")]
    late.sort(key=lambda r: r["time_ns"])
    got = no_traffic_to_ejected(run_of(late, degraded="none"), p)
    assert got.valid is False and "proxy-1 sent 1 requests to api-2" in got.message


def test_a_send_to_the_hung_upstream_past_the_detection_bound_is_caught_unless_the_proxy_just_restarted():
    """With active checks on, a send to the hung upstream later than the detection bound after it
    hung fails the checker; a proxy that restarted gets the bound again from its start."""
    p = dict(P)  # hung from 12 s; bound 2 * 500 + 100 + 101 ms
    ok = no_traffic_to_ejected(run_of([rec(13000, "px.send", up="api-1")]), p)
    assert ok.valid is True and ok.details["detection_bound_ms"] == 1201.0
    assert no_traffic_to_ejected(run_of([rec(13300, "px.send", up="api-1")]), p).valid is False
    restarted = [rec(13000, "px.start"), rec(13300, "px.send", up="api-1")]
    assert no_traffic_to_ejected(run_of(restarted), p).valid is True


def test_exactly_once_fails_a_doubled_order_and_an_acknowledged_order_never_placed():
    """Two effects with one idempotency key, or an acknowledged POST with none, fail exactly-once."""
    def history(idem, rtype="ok"):
        return [{"type": "invoke", "f": "post-order", "process": 0, "time": 0, "value": "k1"},
                {"type": rtype, "f": "post-order", "process": 0, "time": 5 * MS, "value": ("k1", idem, None)}]
    run = run_of([rec(1, "px.effect", "api-2", idem=1), rec(2, "px.effect", "api-3", idem=1)])
    run.history = history(1)
    assert exactly_once(run).valid is False and "request 1 x2" in exactly_once(run).message
    run = run_of([])
    run.history = history(1)
    assert "never placed" in exactly_once(run).message
    run.history = history(1, "fail")
    assert exactly_once(run).valid is True


SHORT = {"time_limit_s": 10.0, "quiesce_s": 1.0, "rate": 400.0}
SHORT_PLAN = {"slow_at_s": 2.0, "errors_at_s": 3.0, "hang_at_s": 4.0, "recover_at_s": 6.0}


@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_is_valid_through_a_short_degradation(policy):
    """A short seeded run with the degradation compressed into ten seconds passes every checker
    under each balancing policy, and the degraded upstream is ejected and taken out."""
    out = execute(build_config(get_scenario("reverse-proxy"), seed=2, options=SHORT,
                               sets={**SHORT_PLAN, "policy": policy}))
    assert out.valid is True, {k: c.message for k, c in out.checks.items()}
    kinds = {(r["kind"], r.get("up")) for r in out.run.records}
    assert ("px.eject", "api-1") in kinds and ("px.health", "api-1") in kinds


def run_cli(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


@pytest.mark.slow
def test_the_defaults_are_valid(tmp_path):
    """dsim run reverse-proxy --seed 1 at the design's defaults exits 0 (the command every bug's
    exposing run differs from by --bug alone)."""
    assert run_cli(["run", "reverse-proxy", "--seed", "1", "--no-plots", "--out", str(tmp_path)]) == 0


@pytest.mark.slow
@pytest.mark.parametrize("bug,checker", [("retry-non-idempotent", "exactly-once"), ("no-outlier-ejection", "slo"),
                                         ("health-check-ignores-timeout", "no-traffic-to-ejected")])
def test_each_bug_is_caught_by_its_command_and_its_checker(bug, checker):
    """The exposes command of each planted bug gives an invalid verdict from the checker named
    for it, the others staying valid."""
    argv = registry.bug_commands(get_scenario("reverse-proxy"))[bug]
    assert argv[argv.index("--seed") + 1] == "1" and "--nemesis" not in argv
    out = execute(build_config(get_scenario("reverse-proxy"), seed=1, bug=bug))
    assert {k for k, c in out.checks.items() if c.valid is not True} == {checker}


@pytest.mark.parametrize("sets,named", [
    (["policy=fastest"], "policy"),
    (["degraded=api-9"], "degraded"),
    (["api_service_ms=2,x"], "api_service_ms"),
    (["hang_at_s=3", "errors_at_s=5"], "slow_at_s, errors_at_s"),
    (["hc_timeout_ms=600"], "hc_timeout_ms"),
    (["max_ejection_ms=10"], "max_ejection_ms"),
])
def test_bad_parameters_exit_2_with_one_line_naming_them(sets, named, capsys, tmp_path):
    """A bad --set value exits 2 with one line naming the parameter and what is accepted, and
    writes no results."""
    argv = ["run", "reverse-proxy", "--seed", "1", "--out", str(tmp_path / "run")]
    for s in sets:
        argv += ["--set", s]
    assert run_cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err and "expected" in err
    assert not (tmp_path / "run").exists()


def test_the_policies_script_writes_its_table_csv_and_figure(tmp_path, capsys):
    """python -m scenarios.reverse_proxy.policies on a tiny grid prints the table and writes
    policies.csv (a row per run) and policies.png."""
    policies.main(["--policies", "round-robin,p2c", "--loads", "300", "--time-limit", "1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "round-robin" in out and "p2c" in out and "figure:" in out
    assert (tmp_path / "policies.png").stat().st_size > 0
    assert len((tmp_path / "policies.csv").read_text().splitlines()) == 3
