"""The reverse proxy's nodes: the proxy and the upstream servers behind it.

A request's life at a proxy (Envoy's nouns: listener, route, cluster, endpoint):

1. **TLS termination.** A client connection carries ``keepalive_requests`` requests; the first
   pays a full handshake (``tls_handshake_ms`` of proxy CPU), every request pays ``request_ms``
   (parsing, routing, record encryption). The CPU is the kit's :class:`~simulator.kit.cpu.Cpu`.
2. **Routing by path.** The first rule whose prefix the path starts with names the cluster
   (``/api/`` -> ``api``, ``/static/`` -> ``static``); no match is a 404 answered at once.
3. **Balancing.** The policy picks among the cluster's endpoints that are healthy (active checks)
   and not ejected (outlier detection), avoiding endpoints this request already tried.
4. **The connection pool** (per upstream): an idle connection is reused; else a new one is opened
   (``connect_ms`` before the request leaves) up to ``pool_max_conns``; else the request waits in
   the pool (at most ``pool_max_pending``, then it fails "overflow"). An attempt that times out
   closes its connection (HTTP/1.1 cannot reuse a connection with a response still owed).
5. **Retries.** The kit's :class:`~simulator.kit.caller.Caller` runs each attempt under
   ``per_try_timeout_ms`` and retries with back-off and a retry budget, but only idempotent
   methods (GET): a POST that timed out may have taken effect, so it is answered 504.

**Active health checks** probe every endpoint each ``interval_ms``; an unanswered probe by
``timeout_ms`` is a failure, and ``unhealthy_threshold`` failures in a row take the endpoint out
until ``healthy_threshold`` probes in a row pass. **Outlier ejection** (passive) ejects an
endpoint after ``consecutive_errors`` failed attempts in a row (timeouts, 5xx) for
``base_ejection_ms`` x 2^(ejections in a row - 1), at most ``max_ejection_ms``, and for at most
``max_ejection_share`` of a cluster (always one). A slow or erroring upstream whose health
endpoint still answers is found only by ejection; a hung one is kept out only by active checks
(ejection ends by its timer).

Simplifications: the proxy's own ``Caller`` sends through the pool by way of a context wrapper
(the kit caller sends directly); probes skip the pool and the CPU; least-outstanding and p2c count
this proxy's attempts in flight (pool waits included); a client is one connection per proxy.
"""

from __future__ import annotations

import heapq
import zlib
from collections import deque
from dataclasses import dataclass

from simulator import Dist, Node
from simulator.kit.balancer import (
    POLICIES,
    HealthCheck,
    OutlierDetection,
    choose,
    ring_pick,
)
from simulator.kit.caller import Caller, RetryPolicy
from simulator.kit.cpu import Cpu
from simulator.kit.messages import Call, Probe, ProbeReply, Reply, answer

IDEMPOTENT = ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")
RETRY_ON = ("timeout", "gateway-timeout", "overloaded", "unavailable", "overflow")
OUTLIER_ERRORS = ("timeout", "overloaded", "unavailable")  # pool overflow is local, not the upstream's fault


@dataclass(frozen=True)
class Rule:
    """Requests whose path starts with ``prefix`` go to ``cluster``."""

    prefix: str
    cluster: str


@dataclass(frozen=True)
class ProxySpec:
    clusters: dict  # cluster -> its endpoints (upstream node ids), in order
    rules: tuple  # of Rule, first match wins
    policy: str = "p2c"
    vnodes: int = 100
    cores: int = 2
    tls_handshake_ms: float = 1.0
    request_ms: float = 0.05
    keepalive_requests: int = 100
    pool_max_conns: int = 64
    pool_max_pending: int = 1024
    connect_ms: float = 1.0
    per_try_timeout_ms: float = 100.0
    retries: int = 2
    health: HealthCheck = HealthCheck(interval_ms=500.0, timeout_ms=100.0, unhealthy_threshold=2,
                                      healthy_threshold=2)
    outlier: OutlierDetection = OutlierDetection(consecutive_errors=5, max_ejection_share=0.5,
                                                 base_ejection_ms=1000.0)
    max_ejection_ms: float = 3000.0


class _Endpoint:
    __slots__ = ("id", "cluster", "healthy", "fails", "passes", "answered", "errors", "ejected", "ejections",
                 "open", "busy", "holding", "pending")

    def __init__(self, node_id: str, cluster: str):
        self.id, self.cluster = node_id, cluster
        self.healthy, self.answered = True, True
        self.fails = self.passes = self.errors = self.ejections = 0
        self.ejected = False
        self.open = self.busy = 0  # connections open, of which carrying a request
        self.holding: dict[int, bool] = {}  # attempt rids on a connection (sent, or connecting)
        self.pending: deque = deque()  # (call, its attempt's deadline ns) waiting for a connection


class _Pooled:
    """The context the proxy's caller sees: its calls to upstreams go through the pool."""

    __slots__ = ("ctx", "proxy")

    def __init__(self, ctx, proxy):
        self.ctx, self.proxy = ctx, proxy

    def send(self, dst, msg):
        if type(msg) is Call:
            self.proxy._pool_send(self.ctx, dst, msg)
        else:
            self.ctx.send(dst, msg)

    def __getattr__(self, name):
        return getattr(self.ctx, name)


class Proxy(Node):
    """One proxy instance. ``bug``: ``retry-non-idempotent``, ``no-outlier-ejection``,
    ``health-check-ignores-timeout`` or None."""

    def __init__(self, spec: ProxySpec, bug: str | None = None):
        if spec.policy not in POLICIES:
            raise ValueError(f"unknown policy {spec.policy!r}: expected one of {', '.join(POLICIES)}")
        self.spec, self.bug = spec, bug
        self.eps = {e: _Endpoint(e, c) for c, es in spec.clusters.items() for e in es}
        self.cpu = Cpu(spec.cores, {"handshake": Dist("constant", spec.tls_handshake_ms + spec.request_ms),
                                    "*": Dist("constant", spec.request_ms)})
        base = RetryPolicy(timeout_ms=spec.per_try_timeout_ms, retries=spec.retries, retry_on=RETRY_ON)
        self.policies = {True: base, False: RetryPolicy(timeout_ms=spec.per_try_timeout_ms, retries=0)}
        if bug == "retry-non-idempotent":
            self.policies[False] = base
        self.caller = Caller("proxy", base, self._pick, self._done, on_attempt=self._observe)
        self.requests_on: dict[str, int] = {}  # client -> requests on its current connection
        self.rr: dict[str, int] = {c: 0 for c in spec.clusters}
        self.rings = {c: sorted((zlib.crc32(f"{e}#{i}".encode()), e) for e in es for i in range(spec.vnodes))
                      for c, es in spec.clusters.items()} if spec.policy == "ring-hash" else {}
        self.connecting: list = []  # heap of (ready ns, seq, endpoint, call, overflow): sends after connect_ms
        self.seq = 0
        self.probe_seq = 0

    # ---- handlers -----------------------------------------------------------------------------
    def on_start(self, ctx):
        ctx.record("px.start")  # a restarted proxy has forgotten its health and ejection state
        self.probe_seq = ctx.incarnation << 40  # a late answer to a probe of a previous life counts for none here
        if self.spec.health.interval_ms > 0:
            ctx.set_timer("px.hc", (0.0, self.spec.health.interval_ms))  # spread the first round

    def on_message(self, ctx, src, msg):
        t = type(msg)
        if t is Reply:
            ep = self.eps.get(src)
            if ep is not None and ep.holding.pop(msg.rid, None):
                self._release(ctx, ep)
            self.caller.on_reply(_Pooled(ctx, self), msg)
        elif t is Call:
            n = self.requests_on.get(src, 0)
            self.requests_on[src] = n + 1
            op = "handshake" if n % self.spec.keepalive_requests == 0 else "request"
            if not self.cpu.submit(ctx, (src, msg, ctx.now), op):
                ctx.send(src, Reply(msg.rid, False, "overloaded"))
        elif t is ProbeReply:
            self._probe_passed(ctx, src, msg.seq)

    def on_timer(self, ctx, name):
        if name == "px.hc":
            self._probe_round(ctx)
        elif name == "px.hc.deadline":
            self._probe_deadline(ctx)
        elif name == "px.connect":
            self._connected(ctx)
        elif name.startswith("px.uneject."):
            ep = self.eps[name[len("px.uneject."):]]
            ep.ejected, ep.errors = False, 0
            ctx.record("px.uneject", up=ep.id)
        elif (done := self.cpu.on_timer(ctx, name)) is not None:
            self._route(ctx, done[0])
        else:
            self.caller.on_timer(_Pooled(ctx, self), name)

    # ---- routing and balancing ----------------------------------------------------------------
    def _route(self, ctx, job) -> None:
        src, call, _ = job
        method, _, path = str(call.op).partition(" ")
        cluster = next((r.cluster for r in self.spec.rules if path.startswith(r.prefix)), None)
        if cluster is None:
            ctx.send(src, Reply(call.rid, False, "not-found"))
            return
        self.caller.call(_Pooled(ctx, self), cluster, call.op, job, key=call.key, idem=call.idem, value=call.value,
                         policy=self.policies[method in IDEMPOTENT])

    def _done(self, ctx, job, ok, value) -> None:
        src, call, _ = job
        ctx.send(src, answer(call.rid, ok, value))

    def available(self, cluster: str) -> list[str]:
        return [e for e in self.spec.clusters[cluster] if self.eps[e].healthy and not self.eps[e].ejected]

    def _pick(self, ctx, cluster, op, key, tried) -> str | None:
        pool = self.available(cluster)
        if tried and len(pool) > 1:
            pool = [e for e in pool if e not in tried] or pool
        if not pool:
            return None
        if self.spec.policy == "round-robin":
            self.rr[cluster] += 1
        picked = choose(self.spec.policy, pool, ctx.rng, self.caller.inflight, self.rr[cluster])
        if picked is not None:
            return picked
        return ring_pick(self.rings[cluster], set(pool), zlib.crc32(str(key).encode()))

    # ---- the connection pool ------------------------------------------------------------------
    def _pool_send(self, ctx, dst: str, call: Call) -> None:
        ep = self.eps[dst]
        if ep.busy < ep.open:
            ep.busy += 1
            self._send(ctx, ep, call)
        elif ep.open < self.spec.pool_max_conns:
            self._open(ctx, ep, call)
        elif len(ep.pending) < self.spec.pool_max_pending:
            # with its attempt's deadline: after a pause the caller's timeout may not have run yet
            ep.pending.append((call, ctx.now + round(self.spec.per_try_timeout_ms * 1e6)))
        else:  # answered through the connect heap so the caller is not re-entered mid-attempt
            self._later(ctx, ctx.now, dst, call, overflow=True)

    def _send(self, ctx, ep: _Endpoint, call: Call) -> None:
        ep.holding[call.rid] = True
        ctx.record("px.send", up=ep.id)
        ctx.send(ep.id, call)

    def _open(self, ctx, ep: _Endpoint, call: Call) -> None:
        ep.open += 1
        ep.busy += 1
        ep.holding[call.rid] = True
        self._later(ctx, ctx.now + round(self.spec.connect_ms * 1e6), ep.id, call)

    def _later(self, ctx, when: int, dst: str, call: Call, overflow: bool = False) -> None:
        self.seq += 1
        heapq.heappush(self.connecting, (when, self.seq, dst, call, overflow))
        if self.connecting[0][1] == self.seq:
            ctx.set_timer("px.connect", max(0, when - ctx.now) / 1e6)

    def _connected(self, ctx) -> None:
        while self.connecting and self.connecting[0][0] <= ctx.now:
            _, _, dst, call, overflow = heapq.heappop(self.connecting)
            if overflow:
                self.caller.on_reply(_Pooled(ctx, self), Reply(call.rid, False, "overflow"))
            elif self.eps[dst].holding.get(call.rid):  # else it timed out while connecting
                ctx.record("px.send", up=dst)
                ctx.send(dst, call)
        if self.connecting:
            ctx.set_timer("px.connect", max(0, self.connecting[0][0] - ctx.now) / 1e6)

    def _next_pending(self, ctx, ep: _Endpoint):
        while ep.pending:
            call, deadline = ep.pending.popleft()
            if call.rid in self.caller.out and ctx.now < deadline:  # else its attempt timed out waiting
                return call
        return None

    def _release(self, ctx, ep: _Endpoint) -> None:
        """A response came back: the connection is idle, or takes the next waiting request."""
        call = self._next_pending(ctx, ep)
        if call is None:
            ep.busy -= 1
        else:
            self._send(ctx, ep, call)

    def _close_timed_out(self, ctx, ep: _Endpoint) -> None:
        """Close the connections of attempts that timed out; open one per waiting request."""
        for rid in [r for r in ep.holding if r not in self.caller.out]:
            del ep.holding[rid]
            ep.open -= 1
            ep.busy -= 1
            call = self._next_pending(ctx, ep)
            if call is not None:
                self._open(ctx, ep, call)

    # ---- outlier ejection (passive) -----------------------------------------------------------
    def _observe(self, ctx, endpoint, ok, reason) -> None:
        ep = self.eps[endpoint]
        if reason == "timeout":
            self._close_timed_out(ctx, ep)
        if ok:
            ep.errors = ep.ejections = 0
            return
        if reason not in OUTLIER_ERRORS:
            return
        ep.errors += 1
        od = self.spec.outlier
        if self.bug == "no-outlier-ejection" or not od.consecutive_errors or ep.errors < od.consecutive_errors \
                or ep.ejected:
            return
        members = self.spec.clusters[ep.cluster]
        out = sum(self.eps[e].ejected for e in members)
        if out + 1 > max(1, int(od.max_ejection_share * len(members))):
            return
        ep.ejected = True
        ep.ejections += 1
        ms = min(od.base_ejection_ms * 2 ** (ep.ejections - 1), self.spec.max_ejection_ms)
        ctx.record("px.eject", up=endpoint, reason=reason, for_ms=ms)
        ctx.set_timer(f"px.uneject.{endpoint}", ms)

    # ---- active health checks -----------------------------------------------------------------
    def _probe_round(self, ctx) -> None:
        self.probe_seq += 1
        for ep in self.eps.values():
            ep.answered = False
            ctx.send(ep.id, Probe(self.probe_seq))
        ctx.set_timer("px.hc.deadline", self.spec.health.timeout_ms)
        ctx.set_timer("px.hc", self.spec.health.interval_ms)

    def _probe_passed(self, ctx, src, seq) -> None:
        ep = self.eps.get(src)
        if ep is None or seq != self.probe_seq or ep.answered:
            return  # late: that round already counted it
        ep.answered = True
        ep.fails = 0
        ep.passes += 1
        if not ep.healthy and ep.passes >= self.spec.health.healthy_threshold:
            ep.healthy = True
            ctx.record("px.health", up=src, healthy=True)

    def _probe_deadline(self, ctx) -> None:
        for ep in self.eps.values():
            if ep.answered:
                continue
            ep.answered = True
            if self.bug == "health-check-ignores-timeout":
                continue  # the bug: only an answer can fail a check, and a hung upstream gives none
            ep.passes = 0
            ep.fails += 1
            if ep.healthy and ep.fails >= self.spec.health.unhealthy_threshold:
                ep.healthy = False
                ctx.record("px.health", up=ep.id, healthy=False)


@dataclass(frozen=True)
class Degrade:
    """The upstream's plan, in its local time (ns): slow from ``slow_at`` (service x ``factor``),
    answering 503 at once from ``errors_at``, hung (no answers, not even probes) from ``hang_at``,
    well again from ``recover_at``."""

    slow_at: int
    errors_at: int
    hang_at: int
    recover_at: int
    factor: float

    def phase(self, now: int) -> str:
        if now < self.slow_at or now >= self.recover_at:
            return "well"
        return "slow" if now < self.errors_at else "errors" if now < self.hang_at else "hung"


class Upstream(Node):
    """An application server: ``cores`` CPUs with exponential service times; POSTs take effect
    (record ``px.effect`` with the request's idempotency key) when served. Its health endpoint
    answers at once, unless it is hung."""

    def __init__(self, service_ms: float, cores: int, degrade: Degrade | None = None, queue_limit: int = 1000):
        self.cpu = Cpu(cores, {"*": Dist("exponential", service_ms),
                               "slow": Dist("exponential", service_ms * (degrade.factor if degrade else 1.0))},
                       queue_limit)
        self.degrade = degrade

    def phase(self, ctx) -> str:
        return "well" if self.degrade is None else self.degrade.phase(ctx.now)

    def on_message(self, ctx, src, msg):
        t = type(msg)
        if t is Probe:
            if self.phase(ctx) != "hung":
                ctx.send(src, ProbeReply(msg.seq))
        elif t is Call:
            phase = self.phase(ctx)
            if phase == "errors":
                ctx.send(src, Reply(msg.rid, False, "unavailable"))
            elif phase != "hung" and not self.cpu.submit(ctx, (src, msg), "slow" if phase == "slow" else "*"):
                ctx.send(src, Reply(msg.rid, False, "overloaded"))

    def on_timer(self, ctx, name):
        done = self.cpu.on_timer(ctx, name)
        if done is None or self.phase(ctx) == "hung":
            return  # a hung server finishes nothing
        src, call = done[0]
        if str(call.op).startswith("POST"):
            ctx.record("px.effect", idem=call.idem)
        ctx.send(src, Reply(call.rid, True, ctx.id))
