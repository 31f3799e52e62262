"""The workload's Client: routes by share, idempotency keys, and how operations end."""

from __future__ import annotations

from collections import Counter

import numpy as np

from simulator import FakeContext, Operation
from simulator.kit.client import Client, Route, generator
from simulator.kit.directory import Directory
from simulator.kit.messages import Reply

ROUTES = [Route("read", ("lb", "app", "db:read"), share=0.9, timeout_ms=100.0),
          Route("write", ("lb", "app", "db:write"), share=0.1, timeout_ms=100.0, retries=1)]


def make():
    return Client(ROUTES, Directory({"lb": ["lb"], "app": ["app-1"], "db": ["db"]})), FakeContext("c1")


def test_routes_are_drawn_by_share():
    """Over many draws each route's share of operations is close to its weight; keys are spread."""
    gen = generator(ROUTES)
    rng = np.random.default_rng(5)
    draws = [gen(rng) for _ in range(5000)]
    share = Counter(f for f, _ in draws)["write"] / len(draws)
    assert 0.08 < share < 0.12 and len({k for _, k in draws}) > 900


def test_a_request_carries_its_route_and_an_idempotency_key_and_ends_ok():
    """The client sends the first hop a call with the rest of the path and an idempotency key, and
    completes the operation ok with the answer."""
    client, ctx = make()
    client.on_invoke(ctx, Operation(3, 0, "write", "k7"))
    (dst, call), = ctx.take_sent()
    assert dst == "lb" and call.rest == ("app", "db:write") and call.idem == 3 and call.key == "k7"
    client.on_message(ctx, "lb", Reply(call.rid, True, 12))
    assert ctx.completed == [(3, "ok", ("k7", 3, 12))]


def test_a_system_failure_ends_fail_and_the_clients_own_timeout_ends_info():
    """An error answer is a definite failure; when the client gives up (retries spent) the outcome
    is unknown, so the operation ends info; a retry keeps the idempotency key."""
    client, ctx = make()
    client.on_invoke(ctx, Operation(1, 0, "read", "k1"))
    (_, call), = ctx.take_sent()
    client.on_message(ctx, "lb", Reply(call.rid, False, "no-endpoint"))
    assert ctx.completed[-1] == (1, "fail", ("k1", 1, "no-endpoint"))
    client.on_invoke(ctx, Operation(2, 1, "write", "k2"))
    for _ in range(3):  # timeout, back-off, timeout
        ctx.advance(ctx.timers.pop("kit.calls"))
        client.on_timer(ctx, "kit.calls")
    calls = [m for _, m in ctx.take_sent()]
    assert len(calls) == 2 and {c.idem for c in calls} == {2}
    assert ctx.completed[-1] == (2, "info", ("k2", 2, "timeout"))


def test_request_value_reads_a_completion_as_kept_and_as_read_back_from_jsonl():
    """A kit client's completion value is (key, idem, result), a list once read back from the
    history's jsonl; request_value takes either and refuses anything else."""
    from simulator.kit.client import IDEM, KEY, RESULT, request_value

    client, ctx = make()
    client.on_invoke(ctx, Operation(5, 0, "read", "k2"))
    (_, call), = ctx.take_sent()
    client.on_message(ctx, "lb", Reply(call.rid, True, "v"))
    value = ctx.completed[-1][2]
    for v in (value, list(value)):
        got = request_value(v)
        assert (got[KEY], got[IDEM], got[RESULT]) == ("k2", 5, "v")
    assert request_value({"key": "k2"}) is None and request_value(None) is None and request_value(("k", 1)) is None
