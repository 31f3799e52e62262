"""``LoadBalancer``: a proxy in front of a pool, with a balancing policy, active health checks and
passive outlier ejection (Envoy's nouns: cluster = the pool ``to``, endpoints = its instances).

Parameters (:class:`BalancerSpec`; in TOML, the keys of a ``kind = "load-balancer"`` component):

    to               the component balanced over (its instances are the endpoints)
    policy           round-robin | random | least-outstanding | p2c | ring-hash
    vnodes           virtual nodes per endpoint on the ring (ring-hash)
    replicas         balancer instances (callers pick one at random)
    service_ms       proxy cost per request (op -> Dist; zero: none) on ``cores`` CPUs (the host's
                     core queue, as a service's; probes and replies are handled at once)
    retry / breaker  as for a service (a retry goes to another endpoint when there is one)
    health           :class:`HealthCheck`: interval_ms (0: off), timeout_ms, unhealthy_threshold,
                     healthy_threshold
    outlier          :class:`OutlierDetection`: consecutive_errors (0: off; failures and timeouts
                     of forwarded requests in a row), max_ejection_share

An endpoint gets traffic when it is healthy (active checks) and not ejected. An ejected endpoint
gets no traffic until an active probe sent after its ejection succeeds; without active checks it
returns after ``outlier.base_ejection_ms``. If no endpoint is available the request fails at once
("no-endpoint", Envoy's "no healthy upstream").

Records: ``kit.served`` per request, ``kit.eject`` / ``kit.uneject`` (endpoint, reason),
``kit.health`` (endpoint, healthy), and the caller's records.

Simplifications: least-outstanding and p2c count this instance's requests in flight only; the
ring hashes the request's ``key`` (or its idempotency key) with CRC-32.
"""

from __future__ import annotations

import bisect
import zlib
from dataclasses import dataclass, field

from ..engine.node import Node
from .caller import BreakerPolicy, Caller, RetryPolicy
from .cpu import ServiceTimes
from .directory import Directory
from .messages import Call, Probe, ProbeReply, Reply, answer, refuse, served, split_hop

POLICIES = ("round-robin", "random", "least-outstanding", "p2c", "ring-hash")


def choose(policy: str, pool: list[str], rng, inflight: dict, turn: int) -> str | None:
    """One pick from a non-empty ``pool`` (the endpoints in service, in a fixed order) by every
    policy but ring-hash, for which it returns None: that one needs the caller's ring and the
    request's key (``ring_pick``). ``turn`` is the caller's round-robin count, ``inflight`` its
    outstanding requests per endpoint; ``rng`` is anything with ``integers(n)`` (a numpy
    generator, or the kit's block draws, :class:`~simulator.kit.directory.Uniforms`). Shared by
    ``LoadBalancer`` and designs with their own balancing nodes, so a policy means the same
    everywhere."""
    n = len(pool)
    if policy == "p2c" and n > 1:  # first: the policy of most designs
        i = int(rng.integers(n))
        j = int(rng.integers(n - 1))
        a, b = pool[i], pool[j + (j >= i)]
        return b if inflight.get(b, 0) < inflight.get(a, 0) else a
    if policy == "round-robin":
        return pool[turn % n]
    if policy == "random" or n == 1:
        return pool[int(rng.integers(n))]
    if policy == "least-outstanding":
        least = min(inflight.get(e, 0) for e in pool)
        ties = [e for e in pool if inflight.get(e, 0) == least]
        return ties[int(rng.integers(len(ties)))]
    return None


def ring_pick(ring: list[tuple[int, str]], pool: set, point: int) -> str | None:
    """Consistent hashing: the first endpoint in ``pool`` clockwise from ``point`` on ``ring``
    (sorted (point, endpoint) pairs, virtual nodes included)."""
    i = bisect.bisect_left(ring, (point, ""))
    for k in range(len(ring)):
        e = ring[(i + k) % len(ring)][1]
        if e in pool:
            return e
    return None


@dataclass(frozen=True)
class HealthCheck:
    interval_ms: float = 1000.0
    timeout_ms: float = 250.0
    unhealthy_threshold: int = 2
    healthy_threshold: int = 1


@dataclass(frozen=True)
class OutlierDetection:
    consecutive_errors: int = 5
    max_ejection_share: float = 0.5
    base_ejection_ms: float = 5000.0


@dataclass(frozen=True)
class BalancerSpec:
    name: str
    to: str
    policy: str = "round-robin"
    vnodes: int = 100
    replicas: int = 1
    cores: int = 1
    service_ms: dict = field(default_factory=dict)
    retry: RetryPolicy = RetryPolicy()
    breaker: BreakerPolicy = BreakerPolicy()
    health: HealthCheck = HealthCheck()
    outlier: OutlierDetection = OutlierDetection()

    def instance_ids(self) -> list[str]:
        return [self.name] if self.replicas == 1 else [f"{self.name}-{i + 1}" for i in range(self.replicas)]


class _Endpoint:
    __slots__ = ("id", "healthy", "fails", "passes", "ejected", "ejected_seq", "errors", "probe_seq", "answered")

    def __init__(self, node_id: str):
        self.id = node_id
        self.healthy = True
        self.fails = self.passes = self.errors = 0
        self.ejected = False
        self.ejected_seq = 0
        self.probe_seq = 0
        self.answered = True


class LoadBalancer(Node):
    """One instance of the balancer ``spec.name``."""

    def __init__(self, spec: BalancerSpec, directory: Directory):
        if spec.policy not in POLICIES:
            raise ValueError(f"unknown policy {spec.policy!r}: expected one of {', '.join(POLICIES)}")
        self.spec = spec
        self.directory = directory
        self.endpoints = {e: _Endpoint(e) for e in directory.of(spec.to)}
        self.order = list(self.endpoints)
        times = ServiceTimes(spec.service_ms)
        if times.any_work():
            # a balancer with a proxy cost prices its calls and its host queues them; without one
            # it is not priced at all, so its messages take the runtime's direct path
            self.times = times
            self.cost_ns = self._cost_ns
            self.cores, self.queue_limit = spec.cores, 100_000
        self.caller = Caller(spec.name, spec.retry, self._pick, self._done, breaker=spec.breaker,
                             on_attempt=self._observe)
        self.rr = 0
        self._uniforms = None  # the node stream's block draws, looked up on the first pick
        self.probe_seq = 0
        self.ring: list[tuple[int, str]] = []
        if spec.policy == "ring-hash":
            self.ring = sorted((zlib.crc32(f"{e}#{i}".encode()), e) for e in self.order for i in range(spec.vnodes))

    # ---- handlers -----------------------------------------------------------------------------
    def on_start(self, ctx):
        if self.spec.health.interval_ms > 0:
            ctx.set_timer("kit.hc", (0.0, self.spec.health.interval_ms))  # spread the first round

    def on_message(self, ctx, src, msg):
        t = type(msg)
        if t is Call:
            self._forward(ctx, (src, msg, ctx.now))
        elif t is Reply:
            self.caller.on_reply(ctx, msg)
        elif t is ProbeReply:
            self._probe_result(ctx, src, msg.seq)
        elif t is Probe:
            ctx.send(src, ProbeReply(msg.seq))

    def _cost_ns(self, ctx, src, msg):
        return self.times.draw_ns(ctx, msg.op) if type(msg) is Call else None

    def on_job(self, ctx, src, call, arrived_ns, started_ns, queued):
        self._forward(ctx, (src, call, arrived_ns))

    def on_refused(self, ctx, src, msg):
        refuse(ctx, self.spec.name, src, msg)

    def on_timer(self, ctx, name):
        if name == "kit.hc":
            self._probe_round(ctx)
        elif name == "kit.hc.check":
            self._probe_deadline(ctx)
        elif name.startswith("kit.uneject."):
            ep = self.endpoints.get(name[len("kit.uneject."):])
            if ep is not None and ep.ejected:
                self._uneject(ctx, ep, "timer")
        else:
            self.caller.on_timer(ctx, name)

    # ---- forwarding ---------------------------------------------------------------------------
    def _forward(self, ctx, job) -> None:
        _src, call, _arrived = job
        if call.rest:
            comp, op = split_hop(call.rest[0])
            rest = call.rest[1:]
        else:
            comp, op, rest = self.spec.to, call.op, ()
        self.caller.call(ctx, comp, op, job, call.key, rest, call.idem, call.value)

    def _done(self, ctx, job, ok, value) -> None:
        src, call, arrived = job
        ctx.send(src, answer(call.rid, ok, value))
        served(ctx, self.spec.name, call.op, ok, 0, 0, 0, ctx.now - arrived)

    def available(self) -> list[str]:
        # self.endpoints is in self.order's order
        return [e for e, ep in self.endpoints.items() if ep.healthy and not ep.ejected]

    def _pick(self, ctx, comp, op, key, tried) -> str | None:
        spec = self.spec
        if comp != spec.to:
            return self.directory.pick_random(ctx, comp, op, key, tried)
        pool = [e for e, ep in self.endpoints.items() if ep.healthy and not ep.ejected]  # available(), inlined
        if tried and len(pool) > 1:
            pool = [e for e in pool if e not in tried] or pool
        if not pool:
            return None
        policy = spec.policy
        if policy == "round-robin":
            self.rr += 1
        u = self._uniforms
        if u is None:
            u = self._uniforms = self.directory.uniforms(ctx)
        picked = choose(policy, pool, u, self.caller.inflight, self.rr)
        return picked if picked is not None else self._ring_pick(ctx, key, set(pool))

    def _ring_pick(self, ctx, key, pool: set) -> str | None:
        h = zlib.crc32(str(key).encode()) if key is not None else int(ctx.rng.integers(2**32))
        return ring_pick(self.ring, pool, h)

    # ---- outlier detection --------------------------------------------------------------------
    def _observe(self, ctx, endpoint, ok, reason) -> None:
        ep = self.endpoints.get(endpoint)
        if ep is None:
            return
        if ok:
            ep.errors = 0
            return
        ep.errors += 1
        od = self.spec.outlier
        if od.consecutive_errors and ep.errors >= od.consecutive_errors and not ep.ejected:
            ejected = sum(e.ejected for e in self.endpoints.values())
            if ejected + 1 <= od.max_ejection_share * len(self.endpoints):
                ep.ejected, ep.ejected_seq = True, self.probe_seq
                ctx.record("kit.eject", comp=self.spec.name, endpoint=endpoint, reason=reason)
                if self.spec.health.interval_ms <= 0:
                    ctx.set_timer(f"kit.uneject.{endpoint}", od.base_ejection_ms)

    def _uneject(self, ctx, ep: _Endpoint, why: str) -> None:
        ep.ejected, ep.errors = False, 0
        ctx.record("kit.uneject", comp=self.spec.name, endpoint=ep.id, reason=why)

    # ---- active health checks -----------------------------------------------------------------
    def _probe_round(self, ctx) -> None:
        hc = self.spec.health
        self.probe_seq += 1
        for e in self.order:
            ep = self.endpoints[e]
            ep.probe_seq, ep.answered = self.probe_seq, False
            ctx.send(e, Probe(self.probe_seq))
        ctx.set_timer("kit.hc.check", hc.timeout_ms)
        ctx.set_timer("kit.hc", hc.interval_ms)

    def _probe_result(self, ctx, src, seq) -> None:
        ep = self.endpoints.get(src)
        if ep is None or seq != ep.probe_seq or ep.answered:
            return  # a late answer to an earlier round: it already counted as a failure
        ep.answered = True
        ep.fails = 0
        ep.passes += 1
        if not ep.healthy and ep.passes >= self.spec.health.healthy_threshold:
            ep.healthy = True
            ctx.record("kit.health", comp=self.spec.name, endpoint=src, healthy=True)
        if ep.ejected and seq > ep.ejected_seq:
            self._uneject(ctx, ep, "probe")

    def _probe_deadline(self, ctx) -> None:
        for e in self.order:
            ep = self.endpoints[e]
            if ep.answered:
                continue
            ep.answered = True  # settled: a failure
            ep.passes = 0
            ep.fails += 1
            if ep.healthy and ep.fails >= self.spec.health.unhealthy_threshold:
                ep.healthy = False
                ctx.record("kit.health", comp=self.spec.name, endpoint=e, healthy=False)
