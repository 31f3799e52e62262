"""A component's processor: a service time per operation (:class:`ServiceTimes`), and for the
components that queue work the runtime cannot see, a FIFO of jobs on ``cores`` CPUs (:class:`Cpu`).

Most components price the messages they receive and let their host queue them: a node with a
``cost_ns`` method (see :mod:`simulator.engine.node`) gets the runtime's own core queue, which is
the bare cost model's, with a service time per operation (``read`` against ``write``) rather than
per message class, replies and health probes handled at once (a non-blocking server: a core is
not held while a downstream works, so a chain of services is a Jackson network), and the job's
arrival and start handed to ``on_job``. ``Service``, ``LoadBalancer`` and the database's nodes do
that, drawing their service times from a :class:`ServiceTimes`.

:class:`Cpu` queues with timers instead, one per core, inside the node. It is for work that is not
a message's arrival, or that a node must be able to abandon: a queue worker's leased jobs, the
reverse proxy's handshakes and its upstream's phases. Simplifications: FIFO only; a job's service time is
drawn when it starts; a crash loses the queue and the jobs in service with the node object.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from ..engine.dists import Dist

TIMER = "kit.cpu."
_BATCH = 256


class ServiceTimes:
    """Service times per operation (``"*"`` for any other), drawn from the node's stream in
    batches of 256 (one numpy call per 256 jobs), in ns. ``draw_ns(ctx, op)``; hot paths may pop
    ``draws[op]`` themselves first (a list in reverse, pop() gives the next) and call
    ``draw_ns`` when it is empty or missing."""

    __slots__ = ("service", "draws", "_fixed")

    def __init__(self, service: dict[str, Dist]):
        self.service = dict(service)
        self.draws: dict[str, list] = {}  # op -> pre-drawn service times in ns, reversed
        self._fixed: dict[str, int] = {}  # op -> its service time, ns, when it is not random

    def any_work(self) -> bool:
        return any(not d.is_zero() for d in self.service.values())

    def draw_ns(self, ctx, op: str) -> int:
        buf = self.draws.get(op)
        if buf:
            return buf.pop()
        fixed = self._fixed.get(op)
        if fixed is not None:
            return fixed
        dist = self.service.get(op) or self.service.get("*")
        if dist is None or dist.is_zero():
            self._fixed[op] = 0
            return 0
        if dist.kind == "constant":
            self._fixed[op] = ns = int(round(dist.mean_ms * 1e6))
            return ns
        buf = self.draws[op] = np.rint(dist.draw_ms(ctx.rng, _BATCH) * 1e6).astype(np.int64).tolist()
        buf.reverse()
        return buf.pop()


class Cpu:
    """``service``: operation -> Dist (``"*"`` for any other); ``queue_limit``: waiting jobs beyond
    which arrivals are dropped (``submit`` returns False)."""

    def __init__(self, cores: int, service: dict[str, Dist], queue_limit: int = 100_000):
        if cores < 1:
            raise ValueError(f"cores must be >= 1, got {cores}")
        self.cores = cores
        self.times = ServiceTimes(service)
        self.queue_limit = queue_limit
        self.free = list(range(cores - 1, -1, -1))  # idle cores; core 0 is taken first
        self.names = [f"{TIMER}{i}" for i in range(cores)]
        self.core_of = {n: i for i, n in enumerate(self.names)}
        self.queue: deque = deque()
        self.running: dict[int, tuple[Any, str, int, int]] = {}  # core -> (job, op, arrived, started)
        self.busy_ns = 0  # total service time given (utilisation = busy_ns / (cores * elapsed))

    def submit(self, ctx, job: Any, op: str) -> bool:
        """Start ``job`` now if a core is free, else queue it; False if the queue is full."""
        free = self.free
        if free:
            self._start(ctx, free.pop(), job, op, ctx.now)
            return True
        if len(self.queue) >= self.queue_limit:
            return False
        self.queue.append((job, op, ctx.now))
        return True

    def _start(self, ctx, core: int, job: Any, op: str, arrived: int) -> None:
        svc = self.times.draw_ns(ctx, op)
        self.busy_ns += svc
        self.running[core] = (job, op, arrived, ctx.now)
        # one timer name per core, not per job: names are interned in the trace, so a name per
        # job would grow the intern table with every request
        ctx.set_timer(self.names[core], svc / 1e6)

    def on_timer(self, ctx, name: str):
        """If ``name`` is a CPU timer: the finished ``(job, op, wait_ns, service_ns)``, else None.
        The core goes to the next queued job at once."""
        core = self.core_of.get(name)
        if core is None:
            return None
        job, op, arrived, started = self.running.pop(core)
        if self.queue:
            nxt, nop, narr = self.queue.popleft()
            self._start(ctx, core, nxt, nop, narr)
        else:
            self.free.append(core)
        return job, op, started - arrived, ctx.now - started

    @property
    def busy(self) -> int:
        return self.cores - len(self.free)
