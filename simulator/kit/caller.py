"""Calling a downstream: per-attempt timeout, retries with exponential back-off and jitter, a retry
budget, and an optional circuit breaker. Every kit component that calls another uses a
:class:`Caller`.

Nouns follow Envoy's route retry policy and retry budget (``timeout_ms``, ``retries``,
``backoff_base_ms``, ``backoff_max_ms``, ``budget_share``, ``budget_min``) and the classic
closed / open / half-open breaker (Envoy's own circuit breakers are concurrency thresholds; the
closed/open/half-open one is Hystrix's).

Simplifications: one breaker per downstream component (not per instance); the budget counts
requests in flight at this caller only; every attempt has the same timeout; a late reply to an
attempt that already timed out is ignored (its side effects, if any, stay: that is what the
exactly-once checkers look for). Deadlines share one timer (``kit.calls``) set at the earliest.

Deadlines of attempts with the same timeout come in the order they were set, so each timeout has
a FIFO (a deque: no heap sifting per attempt); back-offs, and a deadline set earlier than the last
of its FIFO (the local clock stepped back), go on a heap. Due entries run in (deadline, order set)
order whichever structure holds them.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Callable

from .messages import Call, Reply

TIMER = "kit.calls"
_ORDER = itemgetter(0, 1)  # (when ns, seq) of a heap or FIFO entry


@dataclass(frozen=True)
class RetryPolicy:
    """timeout_ms       time an attempt may take before it counts as failed ("timeout")
    retries            extra attempts after the first (0: none)
    backoff_base_ms    back-off before the first retry; doubles for each further retry
    backoff_max_ms     cap on the back-off
    jitter             full jitter: the back-off is drawn uniformly from [0, back-off]
    budget_share       retries in flight may be at most this share of requests in flight...
    budget_min         ...but at least this many (Envoy's min_retry_concurrency)
    retry_on           failure reasons that are retried"""

    timeout_ms: float = 1000.0
    retries: int = 0
    backoff_base_ms: float = 25.0
    backoff_max_ms: float = 250.0
    jitter: bool = True
    budget_share: float = 0.2
    budget_min: int = 3
    retry_on: tuple[str, ...] = ("timeout", "gateway-timeout", "overloaded", "not-primary")

    def __post_init__(self):
        # computed once: every attempt reads it (not a field, so equality and replace() ignore it)
        object.__setattr__(self, "_timeout_ns", round(self.timeout_ms * 1e6))

    @property
    def timeout_ns(self) -> int:
        return self._timeout_ns

    def backoff_ms(self, retry: int, rng) -> float:
        """Back-off before retry number ``retry`` (1 for the first retry)."""
        b = min(self.backoff_max_ms, self.backoff_base_ms * 2 ** (retry - 1))
        return float(rng.random() * b) if self.jitter else b


@dataclass(frozen=True)
class BreakerPolicy:
    """failures          consecutive failed calls that open the breaker (0: no breaker)
    open_ms              how long it stays open (calls fail at once with "circuit-open")
    half_open_calls      trial calls let through when half-open; one success closes it, a failure reopens it"""

    failures: int = 0
    open_ms: float = 1000.0
    half_open_calls: int = 1


class Breaker:
    """The state machine of one breaker; ``changed`` is the new state after a transition, else None."""

    def __init__(self, policy: BreakerPolicy):
        self.policy = policy
        self.state = "closed"
        self.consecutive = 0
        self.opened_ns = 0
        self.trials = 0

    def allow(self, now_ns: int) -> tuple[bool, str | None]:
        changed = None
        if self.state == "open" and now_ns - self.opened_ns >= self.policy.open_ms * 1e6:
            self.state, self.trials, changed = "half-open", 0, "half-open"
        if self.state == "open":
            return False, changed
        if self.state == "half-open":
            if self.trials >= self.policy.half_open_calls:
                return False, changed
            self.trials += 1
        return True, changed

    def success(self) -> str | None:
        self.consecutive = 0
        if self.state != "closed":
            self.state = "closed"
            return "closed"
        return None

    def failure(self, now_ns: int) -> str | None:
        self.consecutive += 1
        if self.state == "half-open" or (self.state == "closed" and self.consecutive >= self.policy.failures):
            self.state, self.opened_ns = "open", now_ns
            return "open"
        return None


def _trim(fifo: deque, out: dict) -> None:
    """Drop the deadlines at the head of ``fifo`` whose attempts are no longer awaited."""
    while fifo and out.get(fifo[0][4]) is not fifo[0][3]:
        fifo.popleft()


class _Req:
    __slots__ = ("token", "comp", "op", "key", "rest", "idem", "value", "attempt", "instance", "tried", "rid",
                 "policy")

    def __init__(self, token, comp, op, key, rest, idem, value, policy):
        self.token, self.comp, self.op, self.key = token, comp, op, key
        self.rest, self.idem, self.value = rest, idem, value
        self.attempt = 0
        self.instance = None
        self.tried: tuple = ()
        self.rid = 0
        self.policy = policy


#: How a first attempt with no breaker is awaited (``Caller.out`` and the deadline entries): a tuple
#: of these, in this order, instead of a :class:`_Req`, which is built only for a retry.
FIRST = ("token", "instance", "comp", "op", "key", "rest", "idem", "value", "policy")

Pick = Callable[[Any, str, str, Any, tuple], "str | None"]  # (ctx, component, op, key, tried) -> instance
Done = Callable[[Any, Any, bool, Any], None]  # (ctx, token, ok, value)


class Caller:
    """Outstanding calls of one node. ``pick`` chooses the instance of a component for an attempt
    (None: no endpoint, the call fails "no-endpoint"); ``on_done`` gets each call's final outcome;
    ``on_attempt(ctx, instance, ok, reason)``, if given, sees every attempt (outlier detection)."""

    def __init__(self, owner: str, policy: RetryPolicy, pick: Pick, on_done: Done, *,
                 breaker: BreakerPolicy | None = None, on_attempt: Callable | None = None):
        self.owner = owner
        self.policy = policy
        self.pick = pick
        self.on_done = on_done
        self.on_attempt = on_attempt
        self.breaker_policy = breaker if breaker is not None and breaker.failures > 0 else None
        self.breakers: dict[str, Breaker] = {}
        self.out: dict[int, _Req] = {}  # rid -> request, attempts awaiting a reply
        self.inflight: dict[str, int] = {}  # instance -> attempts awaiting a reply
        self.active = 0  # requests not yet done
        self.retrying = 0  # of which on a retry (in flight or backing off)
        self._heap: list = []  # (when ns, seq, kind, req, rid): back-offs, and deadlines out of order
        self._fifos: dict[int, deque] = {}  # timeout ns -> deadlines (when ns, seq, "timeout", req, rid) in order
        self._seq = 0
        self._rid: int | None = None  # the last request id sent (None: none yet in this life)
        self._timer_at: int | None = None

    # ---- the API ------------------------------------------------------------------------------
    def call(self, ctx, comp: str, op: str, token: Any, key=None, rest: tuple = (), idem=None, value=None,
             policy: RetryPolicy | None = None) -> None:
        """Call ``comp`` (``op``); ``on_done(ctx, token, ok, value)`` follows, perhaps at once.
        ``policy`` overrides the caller's retry policy for this call (a node has one caller, so
        one timer and one id space). The hot callers (a client's request, a service's hop) pass
        every argument by position: a keyword per argument cost a name match each, per call."""
        p = policy or self.policy
        self.active += 1
        if self.breaker_policy is None:
            # A first attempt with no breaker (nearly every call) is awaited as a tuple of the call
            # (FIRST); a _Req is built only if it fails and may be retried (_settle_first)
            instance = self.pick(ctx, comp, op, key, ())
            if instance is None:
                self._drop(ctx, comp, "no-endpoint")
                self.active -= 1
                self.on_done(ctx, token, False, "no-endpoint")
            else:
                self._send(ctx, (token, instance, comp, op, key, rest, idem, value, p), instance, op, key, rest,
                           idem, value, p._timeout_ns)
            return
        self._attempt(ctx, _Req(token, comp, op, key, rest, idem, value, p))

    def on_reply(self, ctx, reply: Reply) -> bool:
        """Handle a reply; False if it is not an attempt this caller awaits (late, or not ours)."""
        req = self.out.pop(reply.rid, None)
        if req is None:
            return False
        if type(req) is tuple:  # a first attempt with no breaker: nearly every reply
            self._settle_first(ctx, req, reply.ok, reply.value)
        else:  # a retry, or a call through a breaker
            self._settle(ctx, req, reply.ok, reply.value)
        return True

    def on_timer(self, ctx, name: str) -> bool:
        if name != TIMER:
            return False
        self._timer_at = None
        now = ctx.now
        heap = self._heap
        out = self.out
        while True:
            due = []
            while heap and heap[0][0] <= now:
                due.append(heapq.heappop(heap))
            for fifo in self._fifos.values():
                while fifo and fifo[0][0] <= now:
                    entry = fifo.popleft()
                    if out.get(entry[4]) is entry[3]:  # still awaiting its reply
                        due.append(entry)
            if not due:
                break
            # Entries set while these run are due no earlier than now and were set later, so they
            # come after all of these, as one heap would have ordered them.
            due.sort(key=_ORDER)
            for _, _, kind, req, rid in due:
                if kind == "timeout":
                    if out.get(rid) is req:
                        del out[rid]
                        if type(req) is tuple:
                            self._settle_first(ctx, req, False, "timeout")
                        else:
                            self._settle(ctx, req, False, "timeout")
                else:
                    self._attempt(ctx, req)
        self._arm(ctx)
        return True

    # ---- inside -------------------------------------------------------------------------------
    def _push(self, ctx, when: int, kind: str, req: _Req, rid: int) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, kind, req, rid))
        if self._timer_at is None or when < self._timer_at:
            self._arm(ctx)

    def _arm(self, ctx) -> None:
        heap, out = self._heap, self.out
        # Deadlines of attempts already answered are dropped here rather than when the reply comes
        # (neither a heap nor a FIFO can remove from the middle): the timer then waits for a live
        # deadline.
        while heap and heap[0][2] == "timeout" and out.get(heap[0][4]) is not heap[0][3]:
            heapq.heappop(heap)
        first = heap[0][:2] if heap else None
        for fifo in self._fifos.values():
            _trim(fifo, out)
            if fifo and (first is None or fifo[0][:2] < first):
                first = fifo[0][:2]
        if first is not None:
            self._timer_at = first[0]
            ctx.set_timer(TIMER, max(0, first[0] - ctx.now) / 1e6)

    def _breaker(self, comp: str) -> Breaker | None:
        if self.breaker_policy is None:
            return None
        b = self.breakers.get(comp)
        if b is None:
            b = self.breakers[comp] = Breaker(self.breaker_policy)
        return b

    def _note_breaker(self, ctx, comp: str, state: str | None) -> None:
        if state is not None:
            ctx.record("kit.breaker", comp=self.owner, to=comp, state=state)

    def _attempt(self, ctx, req: _Req) -> None:
        req.attempt += 1
        if self.breaker_policy is not None:
            b = self._breaker(req.comp)
            allowed, changed = b.allow(ctx.now)
            self._note_breaker(ctx, req.comp, changed)
            if not allowed:
                self._drop(ctx, req.comp, "circuit-open")
                self._finish(ctx, req, False, "circuit-open")
                return
        # req.tried holds the instances of earlier attempts only: it grows when a retry is
        # scheduled, so a first attempt (nearly all of them) builds no tuple
        instance = self.pick(ctx, req.comp, req.op, req.key, req.tried)
        if instance is None:
            self._drop(ctx, req.comp, "no-endpoint")
            self._finish(ctx, req, False, "no-endpoint")
            return
        req.instance = instance
        req.rid = self._send(ctx, req, instance, req.op, req.key, req.rest, req.idem, req.value,
                             req.policy._timeout_ns)

    def _drop(self, ctx, comp: str, reason: str) -> None:
        ctx.record("kit.drop", comp=self.owner, to=comp, reason=reason)

    def _send(self, ctx, awaited, instance: str, op, key, rest, idem, value, timeout: int) -> int:
        """Send one attempt to ``instance`` and await its reply (``awaited``: a _Req, or a first
        attempt's tuple, FIRST) until its deadline; returns its rid."""
        rid = self._rid
        if rid is None:  # the first call of this life: its ids carry the incarnation, so that a late
            rid = ctx.incarnation << 40  # reply to the node's previous life matches no call of this one
        self._rid = rid = rid + 1
        self.out[rid] = awaited
        inflight = self.inflight
        inflight[instance] = inflight.get(instance, 0) + 1
        ctx.send(instance, Call(rid, op, key, rest, idem, value))
        # the attempt's deadline: due after its policy's timeout
        when = ctx.now + timeout
        self._seq = seq = self._seq + 1
        entry = (when, seq, "timeout", awaited, rid)
        fifo = self._fifos.get(timeout)
        if fifo is None:
            fifo = self._fifos[timeout] = deque()
        else:
            # Answered attempts leave the head here, a few at a time while they are recent, rather
            # than all at the next firing: with a timeout as long as the run a FIFO held every
            # attempt made, and the timer's pass over them touched memory long gone cold.
            _trim(fifo, self.out)
        if not fifo or fifo[-1][0] <= when:
            fifo.append(entry)
        else:
            heapq.heappush(self._heap, entry)
        at = self._timer_at
        if at is None or when < at:
            self._arm(ctx)
        return rid

    def _settle_first(self, ctx, first: tuple, ok: bool, value: Any) -> None:
        """A first attempt awaited as a tuple (FIRST) ended: a success, or a failure its policy
        does not retry, is the call's outcome; a failure it may retry goes on as a _Req."""
        if not ok and first[8].retries:
            req = _Req(*first[:1], *first[2:])
            req.attempt, req.instance = 1, first[1]
            self._settle(ctx, req, ok, value)
            return
        self.inflight[first[1]] -= 1
        if self.on_attempt is not None:
            self.on_attempt(ctx, first[1], ok, None if ok else value)
        self.active -= 1
        self.on_done(ctx, first[0], ok, value)

    def _settle(self, ctx, req: _Req, ok: bool, value: Any) -> None:
        """An attempt ended: succeed, retry or fail the request."""
        self.inflight[req.instance] -= 1
        if self.on_attempt is not None:
            self.on_attempt(ctx, req.instance, ok, None if ok else value)
        if self.breaker_policy is not None:
            b = self._breaker(req.comp)
            self._note_breaker(ctx, req.comp, b.success() if ok else b.failure(ctx.now))
        if ok:
            self.active -= 1
            if req.attempt > 1:
                self.retrying -= 1
            self.on_done(ctx, req.token, True, value)
            return
        p = req.policy
        if req.attempt <= p.retries and value in p.retry_on:
            if self.retrying < max(p.budget_min, p.budget_share * self.active) or req.attempt > 1:
                if req.attempt == 1:
                    self.retrying += 1
                req.tried += (req.instance,)
                ctx.record("kit.retry", comp=self.owner, to=req.comp, attempt=req.attempt + 1, reason=value)
                self._push(ctx, ctx.now + round(p.backoff_ms(req.attempt, ctx.rng) * 1e6), "retry", req, 0)
                return
            self._drop(ctx, req.comp, "retry-budget")
        self._finish(ctx, req, False, value)

    def _finish(self, ctx, req: _Req, ok: bool, value: Any) -> None:
        self.active -= 1
        if req.attempt > 1:
            self.retrying -= 1
        self.on_done(ctx, req.token, ok, value)
