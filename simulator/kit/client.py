"""The workload's ``Client``: picks a route by weight, sends the request down it, and ends the
operation with what came back.

Parameters (:class:`Route`; in TOML, each ``[[routes]]`` table):

    name             the route, and the operation's ``f`` in the history
    share            weight among routes (normalised)
    path             hops, each ``"component"`` or ``"component:op"``: ``["lb", "app", "db:write"]``
    keys             requests pick a key uniformly from ``keys`` keys (for hashing and the database)
    timeout_ms       the client's per-attempt timeout
    retries          client retries (on timeouts and overload), with the caller's back-off
    retry_budget     share of the client's requests in flight that may be on a retry (at least 3)
    slo_p99_ms       the route's latency objective (checked by ``slo``; none: unchecked)
    idempotent       retries are safe: the idempotency key rides every attempt (always sent;
                     this says whether the design promises it, for the exactly-once checkers)

Each request carries an idempotency key, the same on every retry: the operation's id (an int,
unique in the run, since the workload numbers every client's operations from one counter). The
operation ends ``ok`` or ``fail`` when the system answers, and ``info`` with error ``"timeout"``
when the client gives up: the request may or may not have taken effect. Its value is a tuple
``(key, idem, result)``, the third item the failure's reason when it did not end ``ok``
(:data:`VALUE`; a list in the history's jsonl: ``["k7", 3, 12]``). A tuple, not a dict: there is one
per request, kept to the end of the run, and a dict of three keys is three times its size.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from ..engine.node import ClientNode
from .caller import Caller, RetryPolicy
from .directory import Directory
from .messages import Reply, split_hop

#: The fields of a kit client's operation value, in order (``KEY``, ``IDEM``, ``RESULT`` index them).
VALUE = ("key", "idem", "result")
KEY, IDEM, RESULT = 0, 1, 2


def request_value(value):
    """``(key, idem, result)`` of a completion's value, or None when it is not a kit client's (a
    tuple, or the list it reads back as from jsonl)."""
    return value if type(value) in (tuple, list) and len(value) == 3 else None


@dataclass(frozen=True)
class Route:
    name: str
    path: tuple[str, ...]
    share: float = 1.0
    keys: int = 1000
    timeout_ms: float = 5000.0
    retries: int = 0
    retry_budget: float = 0.2
    slo_p99_ms: float | None = None
    idempotent: bool = True

    def policy(self) -> RetryPolicy:
        return RetryPolicy(timeout_ms=self.timeout_ms, retries=self.retries, budget_share=self.retry_budget)


def generator(routes: list[Route]):
    """``generate(rng) -> (route name, key)`` for the workload: routes by share, keys uniform."""
    total = sum(r.share for r in routes)
    cum, acc = [], 0.0
    for r in routes:
        acc += r.share / total
        cum.append(acc)
    names = [r.name for r in routes]
    keys = [r.keys for r in routes]
    # each route's key names, made once (not an f-string per operation) unless there are very many
    key_names = [[f"k{j}" for j in range(n)] if n <= 100_000 else None for n in keys]

    buf: list = []
    last = len(cum) - 1
    bisect_right = bisect.bisect_right

    def generate(rng):
        if not buf:  # two uniforms per operation, drawn 512 operations at a time
            buf.extend(reversed(rng.random(1024).tolist()))
        u, v = buf.pop(), buf.pop()
        i = bisect_right(cum, u)
        if i > last:  # u beyond the last cumulative share, rounded below 1
            i = last
        j = int(v * keys[i])
        kn = key_names[i]
        return names[i], kn[j] if kn is not None else f"k{j}"

    return generate


class Client(ClientNode):
    """A client endpoint; each route's timeout and retries apply to its requests."""

    def __init__(self, routes: list[Route], directory: Directory):
        self.routes = {r.name: r for r in routes}
        self.policies = {r.name: r.policy() for r in routes}
        # route -> (first component, its op, the hops after it, the retry policy), split once
        self.starts = {r.name: (*split_hop(r.path[0]), r.path[1:], self.policies[r.name]) for r in routes}
        self.caller = Caller("client", RetryPolicy(), directory.pick_random, self._done)

    def on_invoke(self, ctx, op):
        comp, name, rest, policy = self.starts[op.f]
        # the operation is the call's token: its id and key are all the reply needs
        self.caller.call(ctx, comp, name, op, op.value, rest, op.id, None, policy)

    def on_message(self, ctx, src, msg):
        if type(msg) is Reply:
            self.caller.on_reply(ctx, msg)

    def on_timer(self, ctx, name):
        self.caller.on_timer(ctx, name)

    def _done(self, ctx, op, ok, value):
        op_id = op.id
        ctx.complete(op_id, "ok" if ok else "info" if value == "timeout" else "fail", (op.value, op_id, value))
