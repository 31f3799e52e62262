"""The messages every kit component speaks: a call one hop down a route, and its reply.

A request travels a route (``["lb", "app", "db:write"]``) as a chain of calls: each component
answers the :class:`Call` it received with one :class:`Reply`, after calling the next hop
(``rest[0]``) itself. Replies go back the way the calls came, so every hop sees its downstream's
latency and failures, and can time out and retry. Health probes are answered at once, without
queueing for a core (a simplification: a real probe shares the CPU).
"""

from __future__ import annotations

from typing import Any

from ..engine.node import message


@message
class Call:
    """``rid`` is the caller's id for this attempt (unique per caller); ``op`` the operation at the
    target; ``rest`` the hops after the target, each ``"component"`` or ``"component:op"``;
    ``idem`` the request's idempotency key (the same across retries)."""

    rid: int
    op: str
    key: Any = None
    rest: tuple = ()
    idem: Any = None
    value: Any = None


@message
class Reply:
    """``ok`` False carries the reason in ``value`` (``"timeout"``, ``"overloaded"``...)."""

    rid: int
    ok: bool
    value: Any = None


@message
class Probe:
    """An active health check (load balancers, database routers)."""

    seq: int


@message
class ProbeReply:
    seq: int
    info: Any = None


_SPLIT: dict[str, tuple[str, str]] = {}


def split_hop(hop: str) -> tuple[str, str]:
    """``"db:write"`` -> ``("db", "write")``; ``"app"`` -> ``("app", "*")``."""
    out = _SPLIT.get(hop)
    if out is None:
        comp, _, op = hop.partition(":")
        out = (comp, op or "*")
        if len(_SPLIT) < 10_000:  # a design has a few dozen hops: remembered, not split per request
            _SPLIT[hop] = out
    return out


def answer(rid: int, ok: bool, value: Any) -> Reply:
    """The reply a component sends upstream. Its own caller's "timeout" becomes
    "gateway-timeout" (HTTP 504), so that only a client's own timeout reads "timeout"."""
    return Reply(rid, ok, "gateway-timeout" if not ok and value == "timeout" else value)


#: The columns of a ``kit.served`` row after its time and node, in order (times in ns of the
#: component's clock): ``RunData.table("kit.served")`` rows are ``(time_ns, node, *SERVED)``.
SERVED = ("comp", "op", "ok", "queue", "wait_ns", "service_ns", "total_ns")


def served(ctx, comp: str, op: str, ok: bool, queue: int, wait_ns: int, service_ns: int, total_ns: int) -> None:
    """Record one request a component answered: a row of the ``kit.served`` table (see
    :data:`SERVED`; ``queue`` = jobs waiting at its arrival). A row (``ctx.record_row``), not a
    record: there is one a request or more, and a record's dict and field names made it, kept
    and digested, several times dearer."""
    ctx.record_row("kit.served", (comp, op, ok, queue, wait_ns, service_ns, total_ns))


def refuse(ctx, comp: str, src: str, call: Call) -> None:
    """Refuse ``call`` for a full queue: a ``kit.drop`` record and an "overloaded" reply (HTTP 503)."""
    ctx.record("kit.drop", comp=comp, reason="overloaded")
    ctx.send(src, Reply(call.rid, False, "overloaded"))
