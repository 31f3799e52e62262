"""``RateLimiter``: admits or rejects each request by a limit, then forwards the admitted ones.

Parameters (:class:`RateLimiterSpec`; in TOML, the keys of a ``kind = "rate-limiter"`` component):

    algorithm        token-bucket | fixed-window | sliding-log | sliding-counter
    limit            requests admitted per window (windows), or the bucket's size (token bucket)
    window_ms        the window (windows); for the token bucket, ``limit`` tokens refill per window
    per              ``global`` (one limit) or ``key`` (one limit per request key)
    to               where admitted requests go when their route has no further hop (none: the
                     limiter answers ok itself, a pure admission check)
    replicas         limiter instances; each keeps its own state (no shared store yet)
    retry            the :class:`~simulator.kit.caller.RetryPolicy` of forwarded calls

What each algorithm promises (the slack a checker must allow):
    token-bucket     at most ``limit + rate * t`` in any interval of length t
    fixed-window     at most ``limit`` per aligned window, but up to 2x across a window boundary
    sliding-log      at most ``limit`` in any window-long interval (exact; memory grows with limit)
    sliding-counter  approximately ``limit`` per sliding window (weights the previous window by
                     its overlap; exact only for evenly spread traffic)

Records: ``kit.admit`` per decision (comp, key, admitted), ``kit.drop`` (reason "rate-limited").
Simplifications: state is local to each instance (N instances admit up to N times the limit); the
limiter costs no CPU; time is the node's local clock, so clock faults skew windows.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ..engine.node import Node
from .caller import Caller, RetryPolicy
from .directory import Directory
from .messages import Call, Probe, ProbeReply, Reply, answer, split_hop

ALGORITHMS = ("token-bucket", "fixed-window", "sliding-log", "sliding-counter")


class TokenBucket:
    def __init__(self, limit: int, window_ns: int):
        self.size = float(limit)
        self.per_ns = limit / window_ns
        self.tokens = float(limit)
        self.last = None

    def admit(self, now: int) -> bool:
        if self.last is not None:
            self.tokens = min(self.size, self.tokens + (now - self.last) * self.per_ns)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class FixedWindow:
    def __init__(self, limit: int, window_ns: int):
        self.limit, self.window = limit, window_ns
        self.index, self.count = None, 0

    def admit(self, now: int) -> bool:
        i = now // self.window
        if i != self.index:
            self.index, self.count = i, 0
        if self.count < self.limit:
            self.count += 1
            return True
        return False


class SlidingLog:
    def __init__(self, limit: int, window_ns: int):
        self.limit, self.window = limit, window_ns
        self.times: deque = deque()

    def admit(self, now: int) -> bool:
        times = self.times
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) < self.limit:
            times.append(now)
            return True
        return False


class SlidingCounter:
    def __init__(self, limit: int, window_ns: int):
        self.limit, self.window = limit, window_ns
        self.index, self.prev, self.count = None, 0, 0

    def admit(self, now: int) -> bool:
        i = now // self.window
        if i != self.index:
            self.prev = self.count if self.index is not None and i == self.index + 1 else 0
            self.index, self.count = i, 0
        overlap = 1.0 - (now % self.window) / self.window
        if self.prev * overlap + self.count < self.limit:
            self.count += 1
            return True
        return False


_CLASSES = {"token-bucket": TokenBucket, "fixed-window": FixedWindow, "sliding-log": SlidingLog,
            "sliding-counter": SlidingCounter}


def limiter(algorithm: str, limit: int, window_ms: float):
    if algorithm not in _CLASSES:
        raise ValueError(f"unknown algorithm {algorithm!r}: expected one of {', '.join(ALGORITHMS)}")
    return _CLASSES[algorithm](limit, int(window_ms * 1e6))


@dataclass(frozen=True)
class RateLimiterSpec:
    name: str
    algorithm: str = "token-bucket"
    limit: int = 100
    window_ms: float = 1000.0
    per: str = "global"
    to: str | None = None
    replicas: int = 1
    retry: RetryPolicy = RetryPolicy()

    def instance_ids(self) -> list[str]:
        return [self.name] if self.replicas == 1 else [f"{self.name}-{i + 1}" for i in range(self.replicas)]


class RateLimiter(Node):
    """One instance of the limiter ``spec.name``."""

    def __init__(self, spec: RateLimiterSpec, directory: Directory):
        limiter(spec.algorithm, 1, 1.0)  # validate early
        if spec.per not in ("global", "key"):
            raise ValueError(f"bad value {spec.per!r} for per: expected global or key")
        self.spec = spec
        self.limits: dict = {}
        self.caller = Caller(spec.name, spec.retry, directory.pick_random, self._done)

    def admit(self, now: int, key) -> bool:
        k = key if self.spec.per == "key" else None
        lim = self.limits.get(k)
        if lim is None:
            lim = self.limits[k] = limiter(self.spec.algorithm, self.spec.limit, self.spec.window_ms)
        return lim.admit(now)

    def on_message(self, ctx, src, msg):
        t = type(msg)
        if t is Call:
            ok = self.admit(ctx.now, msg.key)
            ctx.record("kit.admit", comp=self.spec.name, key=msg.key, admitted=ok)
            if not ok:
                ctx.record("kit.drop", comp=self.spec.name, reason="rate-limited")
                ctx.send(src, Reply(msg.rid, False, "rate-limited"))
            elif msg.rest:
                comp, op = split_hop(msg.rest[0])
                self.caller.call(ctx, comp, op, (src, msg.rid), key=msg.key, rest=msg.rest[1:], idem=msg.idem,
                                 value=msg.value)
            elif self.spec.to is not None:
                self.caller.call(ctx, self.spec.to, msg.op, (src, msg.rid), key=msg.key, idem=msg.idem,
                                 value=msg.value)
            else:
                ctx.send(src, Reply(msg.rid, True, None))
        elif t is Reply:
            self.caller.on_reply(ctx, msg)
        elif t is Probe:
            ctx.send(src, ProbeReply(msg.seq))

    def on_timer(self, ctx, name):
        self.caller.on_timer(ctx, name)

    def _done(self, ctx, token, ok, value) -> None:
        src, rid = token
        ctx.send(src, answer(rid, ok, value))
