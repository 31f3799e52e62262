"""``Service``: one instance of a pool of stateless application servers.

Parameters (:class:`ServiceSpec`; in a TOML design, the keys of a ``kind = "service"`` component):

    replicas         instances in the pool (each a host; ids ``<name>-1`` ...)
    cores            CPUs per instance
    service_ms       service time per operation: op -> Dist ("*" for any other op)
    queue_limit      requests waiting for a core beyond which arrivals are refused ("overloaded")
    calls            downstream hops called after the service time when the request's route has
                     no further hop: ``["auth", "db:read"]``
    parallel         call ``calls`` all at once (True) or one after the other (False)
    retry            :class:`~simulator.kit.caller.RetryPolicy` of every downstream call
    breaker          :class:`~simulator.kit.caller.BreakerPolicy` per downstream component

What a request does: it waits for a core (FIFO), takes its service time, then calls its downstreams
(the next hop of its route, else ``calls``), and answers ok once all succeed, or fail with the
first failure's reason. A core is not held while downstreams work (a non-blocking server). The
instance prices each call (``cost_ns``) and its host queues it on ``cores`` cores (the runtime's
core queue); replies and probes are handled at once, and a call finding ``queue_limit`` waiting
is refused "overloaded".

Records: ``kit.served`` per answered request (a ``row``: comp, op, ok, queue = waiting at
arrival, wait_ns, service_ns, total_ns; :data:`~simulator.kit.messages.SERVED`), ``kit.drop`` (reason "overloaded"), and the caller's
``kit.retry`` / ``kit.breaker`` / ``kit.drop``.

Simplifications: no per-instance connection limits; an instance answers health probes at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..engine.dists import Dist
from ..engine.node import Node
from .caller import BreakerPolicy, Caller, RetryPolicy
from .cpu import ServiceTimes
from .directory import Directory
from .messages import Call, Probe, ProbeReply, Reply, answer, refuse, served, split_hop


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    replicas: int = 1
    cores: int = 1
    service_ms: dict = field(default_factory=lambda: {"*": Dist("exponential", 10.0)})
    queue_limit: int = 100_000
    calls: tuple[str, ...] = ()
    parallel: bool = False
    retry: RetryPolicy = RetryPolicy()
    breaker: BreakerPolicy = BreakerPolicy()

    def instance_ids(self) -> list[str]:
        return [f"{self.name}-{i + 1}" for i in range(self.replicas)]


class _Job:
    """A request between its service time and its answer, while it calls downstream (or while a
    subclass's ``_after_service`` holds it)."""

    __slots__ = ("src", "call", "arrived", "queue", "wait_ns", "svc_ns", "hops", "left", "failed")

    # hops, left and failed are set when the job calls downstream
    def __init__(self, src, call, arrived, queue, wait_ns, svc_ns):
        self.src, self.call, self.arrived, self.queue = src, call, arrived, queue
        self.wait_ns, self.svc_ns = wait_ns, svc_ns


class Service(Node):
    """One instance of the service ``spec.name``."""

    def __init__(self, spec: ServiceSpec, directory: Directory):
        self.spec = spec
        self.comp = spec.name
        self.times = ServiceTimes(spec.service_ms)
        self._draws = self.times.draws
        self.cores = spec.cores  # the host's cores and queue bound for this node's calls
        self.queue_limit = spec.queue_limit
        self.calls = spec.calls
        self.parallel = spec.parallel
        self.caller = Caller(spec.name, spec.retry, directory.pick_random, self._downstream_done,
                             breaker=spec.breaker)
        # A job with no hop to call is answered as its service time ends, with no _Job, unless a
        # subclass overrides _after_service (the hook then sees every job)
        self._leaves_answered = type(self)._after_service is Service._after_service

    def cost_ns(self, ctx, src, msg):
        if type(msg) is Call:
            buf = self._draws.get(msg.op)  # ServiceTimes.draw_ns's first step, inlined: once per call
            return buf.pop() if buf else self.times.draw_ns(ctx, msg.op)
        return None

    def on_job(self, ctx, src, call, arrived_ns, started_ns, queued):
        now = ctx.now
        if self._leaves_answered and not call.rest and not self.calls:
            self._reply(ctx, src, call, True, None, queued, started_ns - arrived_ns, now - started_ns, now - arrived_ns)
            return
        self._after_service(ctx, _Job(src, call, arrived_ns, queued, started_ns - arrived_ns, now - started_ns))

    def on_refused(self, ctx, src, msg):
        refuse(ctx, self.comp, src, msg)

    def on_message(self, ctx, src, msg):
        t = type(msg)
        if t is Reply:
            self.caller.on_reply(ctx, msg)
        elif t is Probe:
            ctx.send(src, ProbeReply(msg.seq))

    def on_timer(self, ctx, name):
        self.caller.on_timer(ctx, name)

    def _after_service(self, ctx, job: _Job) -> None:
        # job.hops holds the hops still to call after those in flight (job.left of them)
        call = job.call
        rest = call.rest
        if rest:  # the route's next hop (most jobs that call): no list of hops
            job.failed, job.hops, job.left = None, (), 1
            self._call(ctx, job, rest[0], rest[1:])
            return
        calls = self.calls
        if not calls:
            self._answer(ctx, job, True, None)
            return
        job.failed = None
        if self.parallel:
            job.hops, job.left = (), len(calls)
            for hop in calls:
                self._call(ctx, job, hop, ())
        else:
            job.hops, job.left = [(h, ()) for h in calls[1:]], 1
            self._call(ctx, job, calls[0], ())

    def _call(self, ctx, job: _Job, hop: str, rest: tuple) -> None:
        comp, op = split_hop(hop)
        c = job.call
        self.caller.call(ctx, comp, op, job, c.key, rest, c.idem, c.value)

    def _downstream_done(self, ctx, job: _Job, ok: bool, value) -> None:
        if not ok and job.failed is None:
            job.failed = value
        job.left -= 1
        if job.left > 0:
            return
        if job.failed is not None:
            self._answer(ctx, job, False, job.failed)
        elif not job.hops:
            self._answer(ctx, job, True, value)
        else:
            job.left = 1
            hop, rest = job.hops.pop(0)
            self._call(ctx, job, hop, rest)

    def _answer(self, ctx, job: _Job, ok: bool, value) -> None:
        self._reply(ctx, job.src, job.call, ok, value, job.queue, job.wait_ns, job.svc_ns, ctx.now - job.arrived)

    def _reply(self, ctx, src: str, call: Call, ok: bool, value, queue: int, wait_ns: int, svc_ns: int,
               total_ns: int) -> None:
        """Answer ``call`` and record its ``kit.served`` row."""
        ctx.send(src, Reply(call.rid, True, value) if ok else answer(call.rid, ok, value))
        served(ctx, self.comp, call.op, ok, queue, wait_ns, svc_ns, total_ns)
