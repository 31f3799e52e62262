"""The rate-limiter design: handler stories for the store and the gateways, its checkers on
hand-made decisions, and seeded runs of every strategy and planted bug."""

from __future__ import annotations

import shlex

import pytest

from simulator import FakeContext, build_config, execute, get_scenario
from simulator.cli import main
from simulator.pipeline import scenario as registry
from scenarios.rate_limiter.nodes import STORE, Ans, Counts, Gateway, Gossip, Peek, Put, Req, Store, Take, Took
from scenarios.rate_limiter.scenario import RateLimiter, limit_held, no_false_rejects, slack

P = {name: p.default for name, p in ((p.name, p) for p in RateLimiter.params)}


def params(**kw) -> dict:
    return {**P, **kw}


def take(store, ctx, user, rid=1, src="gw-1"):
    store.on_message(ctx, src, Take(rid, user))
    return ctx.take_sent()[-1][1]


def tick(node, ctx, n: int, tick_ms: float = 1.0) -> None:
    for _ in range(n):
        ctx.advance(tick_ms)
        node.on_timer(ctx, "tick")


def test_the_store_admits_a_user_up_to_the_limit_then_rejects_and_counts_atomically():
    """Take admits while the user's and the global count are under their limits, counts each
    admission at once, and rejects the request past the limit."""
    ctx = FakeContext(STORE)
    store = Store(params(limit_per_user=3), None)
    store.on_start(ctx)
    assert [take(store, ctx, 7, rid=i).admitted for i in range(4)] == [True, True, True, False]
    assert take(store, ctx, 8).admitted is True  # another user has its own limit
    assert [r["admitted"] for r in ctx.records if r["kind"] == "rl.store"] == [True, True, True, False, True]


def test_the_store_forgets_admissions_a_window_and_a_tick_later_and_a_clock_bump_does_not_expire_them():
    """Entries expire after window + tick of monotonic (timer) time; a forward jump of the wall
    clock alone moves the store's time by less than a tick."""
    ctx = FakeContext(STORE)
    store = Store(params(limit_per_user=1, window_ms=100.0), None)
    store.on_start(ctx)
    assert take(store, ctx, 1).admitted is True
    ctx.advance(5000)  # the wall clock jumps 5 s, no tick fired
    assert take(store, ctx, 1).admitted is False
    tick(store, ctx, 101)
    assert take(store, ctx, 1).admitted is True


def test_a_central_gateway_asks_the_store_and_answers_what_it_said():
    """A request becomes one Take to the store under a timeout timer; the store's answer goes back
    to the client and the timer is cancelled."""
    ctx = FakeContext("gw-1")
    gw = Gateway(params(strategy="central"), None, ["gw-2"])
    gw.on_message(ctx, "c1", Req(42, 3))
    (dst, msg), = ctx.take_sent()
    assert dst == STORE and type(msg) is Take and msg.user == 3 and msg.stamp is None
    assert f"s{msg.rid}" in ctx.timers
    gw.on_message(ctx, STORE, Took(msg.rid, True))
    assert ctx.take_sent() == [("c1", Ans(42, True))] and f"s{msg.rid}" not in ctx.timers


@pytest.mark.parametrize("mode,admitted", [("open", True), ("closed", False)])
def test_a_store_call_that_times_out_admits_when_failing_open_and_rejects_when_failing_closed(mode, admitted):
    """When the store does not answer in store_timeout_ms the gateway decides by on_store_unreachable,
    records the decision as a fallback, and ignores the store's late answer."""
    ctx = FakeContext("gw-1")
    gw = Gateway(params(strategy="central", on_store_unreachable=mode), None, [])
    gw.on_message(ctx, "c1", Req(1, 0))
    rid = ctx.take_sent()[0][1].rid
    gw.on_timer(ctx, f"s{rid}")
    assert ctx.take_sent() == [("c1", Ans(1, admitted))]
    assert ctx.records[-1]["via"] == "fallback"
    gw.on_message(ctx, STORE, Took(rid, not admitted))
    assert ctx.take_sent() == []


def test_the_read_modify_write_bug_lets_two_gateways_admit_on_the_same_read_count():
    """With the bug a gateway reads the counts, decides, then writes: two gateways that read the
    same count (limit - 1) both admit."""
    p = params(strategy="central", limit_per_user=2)
    ctxs = [FakeContext("gw-1"), FakeContext("gw-2")]
    gws = [Gateway(p, "read-modify-write-race", []) for _ in ctxs]
    for gw, ctx in zip(gws, ctxs):
        gw.on_message(ctx, "c1", Req(1, 5))
        assert type(ctx.take_sent()[0][1]) is Peek
    for gw, ctx in zip(gws, ctxs):
        gw.on_message(ctx, STORE, Counts(1, 1, 1))  # both read: one admitted so far
        assert ctx.take_sent() == [(STORE, Put(5)), ("c1", Ans(1, True))]


def test_a_local_gateway_enforces_its_share_of_the_limit():
    """Under local, each of N gateways admits at most ceil(limit / N) per user per window."""
    ctx = FakeContext("gw-1")
    gw = Gateway(params(strategy="local", limit_per_user=10), None, ["gw-2", "gw-3"])
    gw.on_start(ctx)
    for i in range(6):
        gw.on_message(ctx, "c1", Req(i, 0))
    assert [m.admitted for _, m in ctx.take_sent()] == [True] * 4 + [False] * 2


def test_a_sync_gateway_gossips_its_admissions_and_counts_the_others():
    """Under sync, a gateway sends what it admitted since its last gossip to every peer, and what
    peers gossip counts against its own limits."""
    ctx = FakeContext("gw-1")
    gw = Gateway(params(strategy="sync", limit_per_user=20), None, ["gw-2", "gw-3"])
    gw.on_start(ctx)
    gw.on_message(ctx, "c1", Req(1, 4))
    ctx.take_sent()
    gw.on_timer(ctx, "sync")
    assert ctx.take_sent() == [("gw-2", Gossip(((4, 1),))), ("gw-3", Gossip(((4, 1),)))]
    gw.on_message(ctx, "gw-2", Gossip(((4, 19),)))
    gw.on_message(ctx, "c1", Req(2, 4))
    assert ctx.take_sent() == [("c1", Ans(2, False))]


def test_limit_held_allows_the_strategys_slack_and_fails_beyond_it():
    """Admissions in one window above limit + slack fail limit-held; at limit + slack they pass."""
    ms = 1_000_000
    p = params(strategy="local", gateways=3, limit_per_user=10, limit_global=1000)
    s = slack(p, 10)
    assert s == 2  # 3 * ceil(10 / 3) - 10
    at_edge = [(i * ms, 1, True, "local") for i in range(10 + s)]
    assert limit_held(at_edge, p).valid is True
    assert limit_held(at_edge + [(500 * ms, 1, True, "local")], p).valid is False
    assert limit_held(at_edge + [(1500 * ms, 1, True, "local")], p).valid is True  # the next window


def test_under_fail_open_the_admissions_of_an_unreachable_store_are_not_held_to_the_limit():
    """limit-held follows on_store_unreachable: fallback admissions over the limit pass under open
    (and are reported) and fail under closed."""
    ms = 1_000_000
    ds = [(i * ms, 1, True, "store") for i in range(20)] + [(30 * ms + i, 1, True, "fallback") for i in range(5)]
    ds.sort()
    opened = limit_held(ds, params(on_store_unreachable="open"))
    assert opened.valid is True and opened.details["fallback_admits"] == 5
    assert opened.details["max_user_with_fallback"] == 25
    assert limit_held(ds, params(on_store_unreachable="closed")).valid is False


def test_a_rejection_under_the_limits_is_false_and_a_fail_closed_rejection_is_not():
    """no-false-rejects counts a rejection made while the user and global counts were under their
    limits, and counts fail-closed rejections apart."""
    ms = 1_000_000
    ds = [(i * ms, 1, True, "store") for i in range(5)] + [(10 * ms, 1, False, "store"), (11 * ms, 1, False, "fallback")]
    got = no_false_rejects(ds, params())
    assert got.details["false_rejects"] == 1 and got.details["rejected_fail_closed"] == 1 and got.valid is False


def short(strategy: str, **options):
    sc = get_scenario("rate-limiter")
    return execute(build_config(sc, seed=1, options={"time_limit_s": 5.0, **options}, sets={"strategy": strategy}))


@pytest.mark.parametrize("strategy", ["central", "local", "sync"])
def test_each_strategy_is_valid_at_the_defaults(strategy):
    """A short seeded run of every strategy at the design's defaults holds the limit within its
    slack and stays under its false-reject share."""
    out = short(strategy)
    assert out.valid is True, {k: c.message for k, c in out.checks.items()}
    assert out.metrics["figures"]["rejected"] > 0  # the limits bite: hot users are over theirs


def exposing(bug: str) -> list[str]:
    return registry.bug_commands(get_scenario("rate-limiter"))[bug]


def run_cli(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


@pytest.mark.slow
@pytest.mark.parametrize("bug", sorted(RateLimiter.bugs))
def test_each_bug_is_caught_by_its_command_and_the_same_command_without_it_is_valid(bug, tmp_path):
    """The exposes command of each planted bug exits 1, and the same run without --bug exits 0."""
    argv = exposing(bug)
    assert run_cli([*argv, "--no-plots", "--out", str(tmp_path / "bug")]) == 1
    i = argv.index("--bug")
    clean = argv[:i] + argv[i + 2:]
    assert run_cli([*clean, "--no-plots", "--out", str(tmp_path / "clean")]) == 0, shlex.join(clean)
