"""The processor of one component instance: ``cores`` CPUs, a FIFO queue and a service time per
operation.

Why not the host's cost model (``sim.add_node(..., cores=, service=)``)? The host picks a service
time by message class and queues *every* message for a core, replies included. A component needs
a service time per operation (``read`` against ``write``), replies from its downstreams handled at
once (a non-blocking server: a core is not held while a downstream works, so a chain of services
is a Jackson network), and its queue length and busy time visible so it can record them. So the
instance's host is plain (no ``service``) and this class does the queueing, with timers.

Simplifications: FIFO only; a job's service time is drawn when it starts; a crash loses the queue
and the jobs in service with the node object.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from ..engine.dists import Dist

TIMER = "kit.cpu."
_BATCH = 256


class Cpu:
    """``service``: operation -> Dist (``"*"`` for any other); ``queue_limit``: waiting jobs beyond
    which arrivals are dropped (``submit`` returns False)."""

    def __init__(self, cores: int, service: dict[str, Dist], queue_limit: int = 100_000):
        if cores < 1:
            raise ValueError(f"cores must be >= 1, got {cores}")
        self.cores = cores
        self.service = dict(service)
        self.queue_limit = queue_limit
        self.free = list(range(cores - 1, -1, -1))  # idle cores; core 0 is taken first
        self.names = [f"{TIMER}{i}" for i in range(cores)]
        self.core_of = {n: i for i, n in enumerate(self.names)}
        self.queue: deque = deque()
        self.running: dict[int, tuple[Any, str, int, int]] = {}  # core -> (job, op, arrived, started)
        self._draws: dict[str, list] = {}  # op -> pre-drawn service times in ns, reversed (pop() gives the next)
        self._fixed: dict[str, int] = {}  # op -> its service time, ns, when it is not random
        self.busy_ns = 0  # total service time given (utilisation = busy_ns / (cores * elapsed))

    def _draw_ns(self, ctx, op: str) -> int:
        buf = self._draws.get(op)
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
        # drawn in batches from the node's stream: one numpy call per 256 jobs
        buf = self._draws[op] = np.rint(dist.draw_ms(ctx.rng, _BATCH) * 1e6).astype(np.int64).tolist()
        buf.reverse()  # pop() from the end hands them out in drawn order
        return buf.pop()

    def submit(self, ctx, job: Any, op: str) -> bool:
        """Start ``job`` now if a core is free, else queue it; False if the queue is full."""
        free = self.free
        if free:
            # _start, inlined: most jobs find a core free
            core = free.pop()
            buf = self._draws.get(op)
            svc = buf.pop() if buf else self._draw_ns(ctx, op)
            self.busy_ns += svc
            now = ctx.now
            self.running[core] = (job, op, now, now)
            ctx.set_timer(self.names[core], svc / 1e6)
            return True
        if len(self.queue) >= self.queue_limit:
            return False
        self.queue.append((job, op, ctx.now))
        return True

    def _start(self, ctx, core: int, job: Any, op: str, arrived: int) -> None:
        svc = self._draw_ns(ctx, op)
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
