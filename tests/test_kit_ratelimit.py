"""The rate limiter's four algorithms and the RateLimiter node that admits, rejects and forwards."""

from __future__ import annotations

from simulator import FakeContext
from simulator.kit.directory import Directory
from simulator.kit.messages import Call, Reply
from simulator.kit.ratelimit import RateLimiter, RateLimiterSpec, limiter

MS = 1_000_000


def admitted(lim, times_ms):
    return [t for t in times_ms if lim.admit(int(t * MS))]


def test_token_bucket_allows_a_burst_then_the_refill_rate():
    """A full bucket of 5 admits 5 at once, then one more per 100 ms (5 per 500 ms)."""
    lim = limiter("token-bucket", 5, 500.0)
    assert len(admitted(lim, [0] * 8)) == 5
    assert admitted(lim, [50, 100, 150, 200]) == [100, 200]


def test_fixed_window_admits_twice_the_limit_across_a_boundary():
    """The fixed window's known weakness: limit at the end of one window, limit again at the start of the next."""
    lim = limiter("fixed-window", 10, 1000.0)
    got = admitted(lim, [990 + i * 0.5 for i in range(10)] + [1000 + i * 0.5 for i in range(10)])
    assert len(got) == 20  # 20 within 15 ms, against a limit of 10 per second


def test_sliding_log_never_admits_more_than_the_limit_in_any_window():
    """Over random traffic, every window-long interval holds at most `limit` admissions."""
    import numpy as np

    lim = limiter("sliding-log", 10, 1000.0)
    times = np.sort(np.random.default_rng(3).uniform(0, 5000, 400))
    got = np.array(admitted(lim, times))
    counts = [np.sum((got > t - 1000) & (got <= t)) for t in got]
    assert max(counts) == 10 and len(got) >= 45


def test_sliding_counter_weights_the_previous_window():
    """After a full previous window the estimate (previous count times its overlap, plus this
    window's count) starts at the limit and frees one slot per tenth of a window."""
    lim = limiter("sliding-counter", 10, 1000.0)
    assert len(admitted(lim, [500 + i for i in range(10)])) == 10
    assert admitted(lim, [1000, 1050, 1051, 1099]) == [1050]  # 9.5 + 0 < 10; then 9.5 + 1 and 9.01 + 1 >= 10


def node(algorithm="token-bucket", limit=2, per="global", to=None):
    spec = RateLimiterSpec("rl", algorithm=algorithm, limit=limit, window_ms=1000.0, per=per, to=to)
    return RateLimiter(spec, Directory({"api": ["api-1"]})), FakeContext("rl")


def test_the_node_rejects_past_the_limit_and_forwards_admitted_requests_down_the_route():
    """Admitted requests go to the next hop; the rest are answered 'rate-limited' and recorded."""
    rl, ctx = node()
    for rid in (1, 2, 3):
        rl.on_message(ctx, "c1", Call(rid, "get", key="u1", rest=("api",)))
    sent = ctx.take_sent()
    assert [d for d, _ in sent] == ["api-1", "api-1", "c1"] and sent[2][1] == Reply(3, False, "rate-limited")
    assert [r["admitted"] for r in ctx.records if r["kind"] == "kit.admit"] == [True, True, False]
    rl.on_message(ctx, "api-1", Reply(sent[0][1].rid, True, "v"))
    assert ctx.sent == [("c1", Reply(1, True, "v"))]


def test_per_key_limits_are_separate():
    """With per = key, one user's burst does not use another's allowance."""
    rl, ctx = node(per="key", limit=1)
    for rid, key in ((1, "u1"), (2, "u1"), (3, "u2")):
        rl.on_message(ctx, "c1", Call(rid, "check", key=key))
    assert [m.ok for _, m in ctx.sent] == [True, False, True]
