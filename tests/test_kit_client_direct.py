"""A client whose routes never retry calls without a Caller: the same calls, timers and endings."""

from __future__ import annotations

import numpy as np

from simulator import FakeContext, Operation
from simulator.kit.caller import TIMER
from simulator.kit.client import Client, Route
from simulator.kit.directory import Directory
from simulator.kit.messages import Reply

DIRECTORY = {"lb": ["lb-1", "lb-2", "lb-3"], "app": ["app-1"]}
ONCE = [Route("read", ("lb", "app"), share=0.7, timeout_ms=100.0),
        Route("write", ("app:write",), share=0.3, timeout_ms=40.0)]


def make(routes=ONCE, seed=0):
    return Client(routes, Directory(DIRECTORY)), FakeContext("c1", seed=seed)


def test_a_client_whose_routes_never_retry_has_no_caller_and_one_that_retries_keeps_it():
    """The direct path is taken only when no route of the client retries."""
    assert make()[0].direct
    assert not Client(ONCE + [Route("again", ("app",), retries=1)], Directory(DIRECTORY)).direct


def test_a_direct_request_ends_ok_or_fail_with_its_answer_and_a_late_answer_is_ignored():
    """The answer ends the operation (ok, or fail with the reason); an answer after the client's
    own timeout changes nothing, and the timed-out operation ends info "timeout"."""
    client, ctx = make()
    client.on_invoke(ctx, Operation(1, 0, "read", "k1"))
    client.on_invoke(ctx, Operation(2, 1, "write", "k2"))
    client.on_invoke(ctx, Operation(3, 2, "write", "k3"))
    (_, c1), (d2, c2), (_, c3) = ctx.take_sent()
    assert d2 == "app-1" and c2.op == "write" and c2.rest == () and c2.idem == "c1:2"
    client.on_message(ctx, "lb-1", Reply(c1.rid, True, 5))
    client.on_message(ctx, "app-1", Reply(c2.rid, False, "overloaded"))
    assert ctx.timers[TIMER] == 40.0  # the earliest deadline still awaited: the writes'
    ctx.advance(40.0)
    client.on_timer(ctx, TIMER)
    client.on_message(ctx, "app-1", Reply(c3.rid, True, 9))  # too late
    assert ctx.completed == [(1, "ok", {"key": "k1", "idem": "c1:1", "result": 5}),
                             (2, "fail", {"key": "k2", "idem": "c1:2", "error": "overloaded"}),
                             (3, "info", {"key": "k3", "idem": "c1:3", "error": "timeout"})]


def run_story(client, ctx, story_seed=3):
    """A random interleaving of invokes, answers (some late) and timer firings; what the client
    sent, the timers it set and how each operation ended."""
    rng = np.random.default_rng(story_seed)
    open_calls, timers, sent = [], [], []
    for op_id in range(300):
        ctx.advance(float(rng.exponential(3.0)))
        client.on_invoke(ctx, Operation(op_id, op_id, "read" if rng.random() < 0.7 else "write", f"k{op_id}"))
        for dst, call in ctx.take_sent():
            sent.append((dst, call.op, call.key, call.rest, call.idem))
            open_calls.append((dst, call))
        if open_calls and rng.random() < 0.6:
            dst, call = open_calls.pop(int(rng.integers(len(open_calls))))
            client.on_message(ctx, dst, Reply(call.rid, bool(rng.random() < 0.9), "overloaded"))
        due = ctx.timers.get(TIMER)
        if due is not None and rng.random() < 0.5:
            timers.append((ctx.now, due))
            ctx.advance(due)
            del ctx.timers[TIMER]
            client.on_timer(ctx, TIMER)
    return sent, timers, ctx.completed


def test_the_direct_path_sends_times_out_and_ends_exactly_as_the_caller_does():
    """Over a random story, a direct client and one forced through its Caller send the same calls
    to the same instances, set the deadline timer at the same instants, and end every operation
    the same way (which is why the pinned digests of designs with such clients did not move)."""
    direct, ctx_a = make(seed=11)
    via_caller, ctx_b = make(seed=11)
    from simulator.kit.caller import Caller, RetryPolicy
    via_caller.direct = False
    via_caller.caller = Caller("client", RetryPolicy(), Directory(DIRECTORY).pick_random, via_caller._done)
    a, b = run_story(direct, ctx_a), run_story(via_caller, ctx_b)
    assert len(a[2]) > 100 and {t for _, t, _ in a[2]} == {"ok", "fail", "info"}
    assert a == b
