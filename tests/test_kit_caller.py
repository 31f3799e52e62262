"""Stories of a Caller: timeouts, retries with back-off and a budget, and the circuit breaker."""

from __future__ import annotations

import numpy as np

from simulator import FakeContext
from simulator.kit.caller import Breaker, BreakerPolicy, Caller, RetryPolicy
from simulator.kit.directory import Directory
from simulator.kit.messages import Reply


def fire(node, ctx, name):
    ctx.advance(ctx.timers.pop(name))
    node.on_timer(ctx, name)


def make(policy, breaker=None, instances=("s-1", "s-2")):
    d = Directory({"s": list(instances)})
    done = []
    caller = Caller("me", policy, d.pick_random, lambda ctx, tok, ok, v: done.append((tok, ok, v)), breaker=breaker)
    return caller, FakeContext("me"), done


def test_a_timed_out_attempt_is_retried_on_another_instance_after_a_back_off():
    """A timeout is retried after the back-off, on the instance not tried yet; a success then ends it."""
    caller, ctx, done = make(RetryPolicy(timeout_ms=100.0, retries=2, backoff_base_ms=10.0, jitter=False))
    caller.call(ctx, "s", "get", "t1")
    (first_dst, _), = ctx.take_sent()
    fire(caller, ctx, "kit.calls")  # the timeout
    assert done == [] and ctx.sent == [] and ctx.timers["kit.calls"] == 10.0
    fire(caller, ctx, "kit.calls")  # the back-off
    (second_dst, call), = ctx.take_sent()
    assert {first_dst, second_dst} == {"s-1", "s-2"}
    assert caller.on_reply(ctx, Reply(call.rid, True, "v"))
    assert done == [("t1", True, "v")]
    assert [(r["attempt"], r["reason"]) for r in ctx.records if r["kind"] == "kit.retry"] == [(2, "timeout")]


def test_each_retry_avoids_every_instance_tried_before():
    """With three instances and two retries, the three attempts of one call go to three different
    instances: a retry avoids all earlier attempts' instances, not just the last one's."""
    caller, ctx, done = make(RetryPolicy(timeout_ms=100.0, retries=2, backoff_base_ms=10.0, jitter=False),
                             instances=("s-1", "s-2", "s-3"))
    caller.call(ctx, "s", "get", "t1")
    dsts = [ctx.take_sent()[0][0]]
    for _ in range(2):
        fire(caller, ctx, "kit.calls")  # the timeout
        fire(caller, ctx, "kit.calls")  # the back-off
        dsts.append(ctx.take_sent()[0][0])
    assert sorted(dsts) == ["s-1", "s-2", "s-3"] and done == []


def test_when_retries_run_out_the_call_fails_with_the_last_reason():
    """After the last retry times out, the call fails 'timeout'."""
    caller, ctx, done = make(RetryPolicy(timeout_ms=50.0, retries=1, backoff_base_ms=1.0, jitter=False))
    caller.call(ctx, "s", "get", "t")
    fire(caller, ctx, "kit.calls")
    fire(caller, ctx, "kit.calls")
    fire(caller, ctx, "kit.calls")
    assert done == [("t", False, "timeout")] and len(ctx.sent) == 2


def test_a_late_reply_after_the_timeout_is_ignored():
    """A reply to an attempt that already timed out changes nothing."""
    caller, ctx, done = make(RetryPolicy(timeout_ms=50.0, retries=0))
    caller.call(ctx, "s", "get", "t")
    (_, call), = ctx.take_sent()
    fire(caller, ctx, "kit.calls")
    assert not caller.on_reply(ctx, Reply(call.rid, True))
    assert done == [("t", False, "timeout")]


def test_a_reply_to_a_previous_life_matches_no_call_of_this_one():
    """After a restart the caller's ids start from its incarnation, so a late reply to the first
    call of its previous life does not end the first call of this one (it used to, with that
    call's value)."""
    caller, ctx, done = make(RetryPolicy(timeout_ms=50.0, retries=0))
    caller.call(ctx, "s", "put", "old")
    (_, old_call), = ctx.take_sent()
    ctx.incarnation = 1  # the node crashed and came back: a fresh caller
    caller, _, _ = make(RetryPolicy(timeout_ms=50.0, retries=0))
    caller.on_done = lambda ctx, tok, ok, v: done.append((tok, ok, v))
    caller.call(ctx, "s", "put", "new")
    (_, new_call), = ctx.take_sent()
    assert new_call.rid != old_call.rid
    assert not caller.on_reply(ctx, Reply(old_call.rid, True, "stale"))
    assert done == []


def test_failures_not_listed_in_retry_on_are_not_retried():
    """A 'rate-limited' answer is final: no retry."""
    caller, ctx, done = make(RetryPolicy(retries=3))
    caller.call(ctx, "s", "get", "t")
    (_, call), = ctx.take_sent()
    caller.on_reply(ctx, Reply(call.rid, False, "rate-limited"))
    assert done == [("t", False, "rate-limited")] and "kit.calls" in ctx.timers


def test_back_off_doubles_up_to_its_cap_and_jitter_stays_below_it():
    """Back-off is base * 2^(n-1) capped at backoff_max_ms; full jitter draws within [0, that]."""
    p = RetryPolicy(backoff_base_ms=10.0, backoff_max_ms=50.0, jitter=False)
    rng = np.random.default_rng(1)
    assert [p.backoff_ms(n, rng) for n in (1, 2, 3, 4)] == [10.0, 20.0, 40.0, 50.0]
    j = RetryPolicy(backoff_base_ms=10.0, backoff_max_ms=50.0)
    draws = [j.backoff_ms(3, rng) for _ in range(200)]
    assert 0 <= min(draws) and max(draws) <= 40.0 and len(set(draws)) > 100


def test_the_retry_budget_caps_requests_on_a_retry():
    """With a budget of at most one retrying request, a second failing request is not retried."""
    caller, ctx, done = make(RetryPolicy(retries=1, budget_share=0.0, budget_min=1, jitter=False))
    caller.call(ctx, "s", "get", "a")
    caller.call(ctx, "s", "get", "b")
    (_, ca), (_, cb) = ctx.take_sent()
    caller.on_reply(ctx, Reply(ca.rid, False, "overloaded"))
    caller.on_reply(ctx, Reply(cb.rid, False, "overloaded"))
    assert done == [("b", False, "overloaded")]
    assert [r["reason"] for r in ctx.records if r["kind"] == "kit.drop"] == ["retry-budget"]


def test_the_breaker_opens_fails_fast_then_half_opens_and_closes_on_success():
    """After `failures` failures in a row the breaker opens: calls fail at once 'circuit-open'; after
    open_ms one trial goes through, and its success closes the breaker."""
    caller, ctx, done = make(RetryPolicy(retries=0), BreakerPolicy(failures=2, open_ms=1000.0))
    for tok in ("a", "b"):
        caller.call(ctx, "s", "get", tok)
        (_, c), = ctx.take_sent()
        caller.on_reply(ctx, Reply(c.rid, False, "overloaded"))
    caller.call(ctx, "s", "get", "c")
    assert ctx.sent == [] and done[-1] == ("c", False, "circuit-open")
    ctx.advance(1000.0)
    caller.call(ctx, "s", "get", "d")
    caller.call(ctx, "s", "get", "e")  # only one trial while half-open
    assert done[-1] == ("e", False, "circuit-open")
    (_, trial), = ctx.take_sent()
    caller.on_reply(ctx, Reply(trial.rid, True))
    assert [r["state"] for r in ctx.records if r["kind"] == "kit.breaker"] == ["open", "half-open", "closed"]


def test_a_failed_trial_reopens_the_breaker():
    """A failure while half-open opens the breaker again at once."""
    b = Breaker(BreakerPolicy(failures=1, open_ms=10.0))
    assert b.failure(0) == "open"
    assert b.allow(10_000_000) == (True, "half-open")
    assert b.failure(10_000_000) == "open" and b.allow(10_000_001) == (False, None)


def test_single_attempt_calls_end_as_the_retrying_path_would_with_no_retries():
    """Calls with no retries and no breaker (the cheap path) end ok, failed, timed out or with no
    endpoint exactly as they do through the retrying path, and leave nothing in flight."""
    outcomes = {}
    for breaker in (None, BreakerPolicy(failures=100)):  # a breaker that never opens takes the retrying path
        caller, ctx, done = make(RetryPolicy(timeout_ms=100.0, retries=0), breaker=breaker)
        seen = []
        caller.on_attempt = lambda ctx, inst, ok, why: seen.append((ok, why))
        for tok in ("ok", "fail", "slow"):
            caller.call(ctx, "s", "get", tok)
        calls = [m for _, m in ctx.take_sent()]
        caller.on_reply(ctx, Reply(calls[0].rid, True, "v"))
        caller.on_reply(ctx, Reply(calls[1].rid, False, "overloaded"))
        fire(caller, ctx, "kit.calls")
        assert not caller.on_reply(ctx, Reply(calls[2].rid, True, "late"))
        caller.call(ctx, "nowhere", "get", "lost")
        outcomes[breaker is None] = (done, seen, caller.active, sum(caller.inflight.values()),
                                     [r["reason"] for r in ctx.records if r["kind"] == "kit.drop"])
    assert outcomes[True] == outcomes[False]
    assert outcomes[True][0] == [("ok", True, "v"), ("fail", False, "overloaded"), ("slow", False, "timeout"),
                                 ("lost", False, "no-endpoint")]
    assert outcomes[True][2:] == (0, 0, ["no-endpoint"])
